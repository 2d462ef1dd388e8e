import json
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from edgedet.calibration import CalibrationError, CalibrationSet, QuantizeError, quantize_model
from edgedet.calibration.quantize import read_metadata
from edgedet.cli import cli
from edgedet.data.synth_dataset import write_synth_dataset
from edgedet.runtime import Detector


@pytest.fixture(scope="module")
def calib_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    write_synth_dataset(root, {"train": 12, "val": 4}, size=(128, 160), seed=3)
    return root


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, exported, calib_data):
    out = tmp_path_factory.mktemp("int8") / "nano-int8.onnx"
    result = quantize_model(exported["decoded"], calib_data, out, num_images=8, cache_dir=out.parent / "cache")
    return out, result


def test_output_is_qdq_and_runs(quantized, sample_images):
    out, result = quantized
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    assert result.qdq_nodes == ops.count("QuantizeLinear") + ops.count("DequantizeLinear")
    weights = {i.name: i for i in model.graph.initializer}
    assert any(w.data_type == onnx.TensorProto.INT8 for w in weights.values())  # int8 weights
    meta = read_metadata(model, out)
    assert meta.precision == "int8"
    assert meta.calibration["method"] == "average" and meta.calibration["num_images"] == 8
    assert meta.calibration["activation_type"] == "uint8" and meta.calibration["excluded_nodes"] == result.excluded
    det = Detector(out, threads=1)(sample_images[0])
    assert det.image_shape == sample_images[0].shape[:2]
    assert result.int8_mb < result.fp32_mb and set(result.latency_ms) == {"fp32", "int8"}


def test_excluded_tail_stays_float(quantized):
    out, result = quantized
    model = onnx.load(str(out))
    by_name = {n.name: n for n in model.graph.node}
    assert {"Exp", "Sigmoid"} <= {by_name[n].op_type for n in result.excluded}
    excluded_outputs = {o for n in result.excluded for o in by_name[n].output}
    quantized_inputs = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert not excluded_outputs & quantized_inputs


def test_calibration_is_deterministic_and_cached(exported, calib_data, tmp_path, caplog):
    meta = read_metadata(onnx.load(str(exported["decoded"])), exported["decoded"])
    a = CalibrationSet(calib_data, meta, num_images=5, seed=1, cache_dir=tmp_path)
    b = CalibrationSet(calib_data, meta, num_images=5, seed=1, cache_dir=tmp_path)
    c = CalibrationSet(calib_data, meta, num_images=5, seed=2, cache_dir=tmp_path)
    assert a.paths == b.paths and a.paths != c.paths
    assert not a.cache_hit and b.cache_hit and np.array_equal(a.tensors, b.tensors)
    assert a.tensors.shape == (5, 3, 128, 160) and a.tensors.dtype == np.float32
    assert len(list(a)) == 5 and a.get_next() is None
    with caplog.at_level(logging.WARNING):
        many = CalibrationSet(calib_data, meta, num_images=50, cache_dir=tmp_path)
    assert len(many) == 12 and "fewer than the 50 asked for" in caplog.text


def _save_without_metadata(src, dst):
    bare = onnx.load(str(src))
    del bare.metadata_props[:]
    onnx.save(bare, str(dst))


def test_bad_inputs(exported, quantized, calib_data, tmp_path):
    with pytest.raises(QuantizeError, match="already quantized"):
        quantize_model(quantized[0], calib_data, tmp_path / "x.onnx", num_images=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images found"):
        quantize_model(exported["decoded"], tmp_path / "empty", tmp_path / "x.onnx", num_images=2)
    _save_without_metadata(exported["decoded"], tmp_path / "bare.onnx")
    with pytest.raises(QuantizeError, match="not exported by edgedet"):
        quantize_model(tmp_path / "bare.onnx", calib_data, tmp_path / "x.onnx", num_images=2)
    with pytest.raises(QuantizeError, match="nodes not in the model: nope"):
        quantize_model(exported["decoded"], calib_data, tmp_path / "x.onnx", num_images=2, exclude="nope")
    assert not (tmp_path / "x.onnx").exists()


def test_eval_set_with_other_classes_is_refused_before_any_work(exported, calib_data, tmp_path):
    out = tmp_path / "x-int8.onnx"
    result = CliRunner().invoke(cli, ["quantize", str(exported["decoded"]), "--calib", str(calib_data), "-o", str(out),
                                      "--eval", str(calib_data)])
    assert result.exit_code == 1
    assert "the evaluation set has 6 classes" in result.output and "has 80" in result.output
    assert not out.exists()


@pytest.mark.slow
def test_cli_tensorrt_target_with_eval(calib_data, tmp_path):
    from edgedet.exporters import export_model

    fp32 = tmp_path / "six.onnx"
    export_model("yolox-nano", fp32, num_classes=6, input_size=(128, 160), batch=None, output_format="raw",
                 echo=lambda _m: None)
    out = tmp_path / "trt-int8.onnx"
    result = CliRunner().invoke(cli, ["quantize", str(fp32), "--calib", str(calib_data), "-o", str(out),
                                      "--num-images", "4", "--target", "tensorrt", "--method", "minmax",
                                      "--eval", str(calib_data), "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "kept in float" in result.output and "latency int8/fp32" in result.output
    meta = read_metadata(onnx.load(str(out)), out)
    assert meta.calibration["activation_type"] == "int8" and meta.calibration["method"] == "minmax"
    assert set(meta.calibration["eval"]) == {"fp32", "int8", "ap_drop"}
    assert meta.calibration["latency_ms"]["int8"] > 0 and meta.calibration["latency_ms"]["fp32"] > 0
    assert (tmp_path / "trt-int8.json").is_file()
    from onnx import numpy_helper

    # activation zero points (scalars): signed and 0, i.e. symmetric, as TensorRT needs
    zero_points = [i for i in onnx.load(str(out)).graph.initializer
                   if i.name.endswith("zero_point") and not i.dims and i.data_type != onnx.TensorProto.INT32]
    assert zero_points and all(z.data_type == onnx.TensorProto.INT8 for z in zero_points)
    assert all(int(numpy_helper.to_array(z)) == 0 for z in zero_points)
    assert ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_inputs()[0].name == "images"


@pytest.mark.slow
def test_accuracy_aware_loop_moves_layers_to_float_and_says_when_impossible(calib_data, tmp_path):
    from edgedet.exporters import export_model

    fp32 = tmp_path / "six.onnx"
    export_model("yolox-nano", fp32, num_classes=6, input_size=(128, 160), echo=lambda _m: None)
    out = tmp_path / "aa-int8.onnx"
    result = CliRunner().invoke(cli, ["quantize", str(fp32), "--calib", str(calib_data), "-o", str(out), "--num-images",
                                      "4", "--eval", str(calib_data), "--max-ap-drop", "-1", "--max-steps", "2",
                                      "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 1
    steps = [line for line in result.output.splitlines() if line.startswith("step ")]
    counts = [int(line.split(":")[1].split()[0]) for line in steps]
    assert len(steps) == 3 and counts[0] < counts[1] < counts[2]  # more layers in float each step
    assert "no model within budget after 3 tries" in result.output and "nothing written" in result.output
    assert not out.exists() and not list(tmp_path.glob(".aa-int8*"))

    # A budget any model meets: the first step is kept, written with the measured AP in its metadata.
    report = tmp_path / "aa.json"
    result = CliRunner().invoke(cli, ["quantize", str(fp32), "--calib", str(calib_data), "-o", str(out), "--num-images",
                                      "4", "--eval", str(calib_data), "--max-ap-drop", "1", "--report", str(report),
                                      "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "within budget with" in result.output and out.exists()
    calibration = read_metadata(onnx.load(str(out)), out).calibration
    assert calibration["eval"]["max_ap_drop"] == 1 and "AP" in calibration["eval"]["int8"]
    assert calibration["latency_ms"]["int8"] > 0
    saved = json.loads(report.read_text())
    assert len(saved["accuracy_steps"]) == 1 and saved["ap"]["ap_drop"] == calibration["eval"]["ap_drop"]
    assert sorted(saved["excluded_nodes"]) == sorted(calibration["excluded_nodes"])


def _conv_and_reader(tmp_path, outlier_images):
    """A one-Conv model and a reader of 4 images whose first ``outlier_images`` hold one 200."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], [weight])
    model_path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(model_path))

    class Reader:
        batch = 1

        def __len__(self):
            return 4

        def rewind(self):
            pass

        def __init__(self):
            batches = []
            for i in range(4):
                x = rng.normal(size=(1, 3, 16, 16)).astype(np.float32)
                if i < outlier_images:
                    x[0, 0, 0, 0] = 200.0
                batches.append({"x": x})
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    return model_path, Reader()


def _input_range(tmp_path, reader, model_path, method, percentile=99.0):
    from onnxruntime.quantization.calibrate import load_tensors_data

    import edgedet.calibration.quantize as quantize

    ranges = load_tensors_data(quantize.calibration_ranges(model_path, reader, ["Conv"], tmp_path, method, percentile))
    return tuple(float(np.asarray(v).reshape(-1)[0]) for v in ranges.data["x"].range_value)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_ranges_clip_outliers_when_collected_in_chunks(tmp_path, monkeypatch, method):
    # ORT's default 128/128 bins make Entropy return the MinMax range; ours must clip the outliers,
    # also when the images are collected in several chunks (here one image per chunk).
    import edgedet.calibration.quantize as quantize

    monkeypatch.setattr(quantize, "CALIBRATION_CHUNK", 1)
    model_path, reader = _conv_and_reader(tmp_path, outlier_images=4)
    low, high = _input_range(tmp_path, reader, model_path, method)
    assert 1 < high < 150 and -150 < low < -1  # MinMax would give 200 (measured: entropy 97.7, percentile 99: 2.5)


def test_extreme_ranges_minmax_and_average(tmp_path):
    # One image holds an outlier of 200: minmax keeps it, average is the mean of the per-image extremes.
    from edgedet.calibration.quantize import extreme_ranges

    model_path, reader = _conv_and_reader(tmp_path, outlier_images=1)
    feeds = list(iter(reader.get_next, None))
    ranges = extreme_ranges(model_path, feeds, channel_tensors=["x"])
    maxima = [float(f["x"].max()) for f in feeds]
    assert ranges["minmax"]["x"][1] == 200.0
    assert ranges["average"]["x"][1] == pytest.approx(np.mean(maxima))
    low, high = ranges["channels"]["x"]
    assert low.shape == (3,) and high[0] == pytest.approx(np.mean([f["x"][0, 0].max() for f in feeds]))
    assert "y" in ranges["average"]  # every float tensor, not only the inputs


def _conv_silu_depthwise(tmp_path):
    """x [1,4,12,12] -> 1x1 Conv -> SiLU -> 3x3 depthwise Conv -> y, where channel 1 is 100x smaller
    than the others before the SiLU and its depthwise gain is 80 (as BatchNorm folding makes them)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    channel_gain = np.array([1.0, 0.01, 1.0, 0.5], np.float32)
    w1 = (np.eye(4, dtype=np.float32) * 3 * channel_gain[:, None]).reshape(4, 4, 1, 1)
    w2 = rng.normal(size=(4, 1, 3, 3)).astype(np.float32) * np.array([1, 80, 1, 2], np.float32).reshape(4, 1, 1, 1)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(4, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.full(4, 0.1, np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["pre"], name="conv1"),
             helper.make_node("Sigmoid", ["pre"], ["sig"], name="sigmoid"),
             helper.make_node("Mul", ["pre", "sig"], ["post"], name="silu"),
             helper.make_node("Conv", ["post", "w2", "b2"], ["y"], name="dw", group=4, pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 12, 12])], inits)
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    path = tmp_path / "dw.onnx"
    onnx.save(model, str(path))
    feeds = [{"x": rng.normal(size=(1, 4, 12, 12)).astype(np.float32) * 2} for _ in range(6)]
    return path, feeds


def test_channel_scales_keep_small_depthwise_channels_on_the_int8_conv(tmp_path):
    from edgedet.calibration.channel_scales import apply_channel_scales, depthwise_sites
    from edgedet.calibration.quantize import _write_ranges, extreme_ranges, quantize_qdq

    path, feeds = _conv_silu_depthwise(tmp_path)
    model = onnx.load(str(path))
    sites = depthwise_sites(model)
    assert [(s.producer, s.sigmoid, s.mul, s.depthwise) for s in sites] == [("conv1", "sigmoid", "silu", ("dw",))]
    ranges = extreme_ranges(path, feeds, channel_tensors=["pre", "post"])
    quantize_qdq(path, tmp_path / "q.onnx", _write_ranges(ranges["average"], tmp_path / "r.json"), "average")

    def channel1_error(m: onnx.ModelProto) -> float:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        q = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
        f = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        errors = [np.abs(q.run(None, x)[0] - f.run(None, x)[0])[0, 1].mean() / np.abs(f.run(None, x)[0][0, 1]).mean()
                  for x in feeds]
        return float(np.mean(errors))

    plain = onnx.load(str(tmp_path / "q.onnx"))
    scaled = onnx.load(str(tmp_path / "q.onnx"))
    assert apply_channel_scales(scaled, sites, ranges["channels"]) == 1
    onnx.checker.check_model(scaled)
    # One scale per tensor leaves channel 1 a level or two (measured: 68% error); per channel, 5%
    # (what is left comes from the zero point all channels share).
    plain_error, scaled_error = channel1_error(plain), channel1_error(scaled)
    assert plain_error > 0.3 and scaled_error < plain_error / 5
    # The depthwise conv still reads a per-tensor quantized input (scale 1), which is what lets ONNX
    # Runtime fuse it into QLinearConv; the channel scales moved into its weight scales.
    init = {t.name: onnx.numpy_helper.to_array(t) for t in scaled.graph.initializer}
    producer = {o: n for n in scaled.graph.node for o in n.output}
    dw = next(n for n in scaled.graph.node if n.name == "dw")
    x_dq = producer[dw.input[0]]
    assert x_dq.op_type == "DequantizeLinear" and init[x_dq.input[1]].shape == () and init[x_dq.input[1]] == 1.0
    assert init[producer[dw.input[1]].input[1]].shape == (4,)


def test_model_without_edgedet_metadata_is_quantized_with_input_size(exported, calib_data, tmp_path):
    _save_without_metadata(exported["decoded"], tmp_path / "bare.onnx")
    with pytest.raises(QuantizeError, match="give --input-size"):
        quantize_model(tmp_path / "bare.onnx", calib_data, tmp_path / "x.onnx", num_images=2)
    with pytest.raises(QuantizeError, match="does not match the model's input 128x160"):
        quantize_model(tmp_path / "bare.onnx", calib_data, tmp_path / "x.onnx", num_images=2, input_size=(128, 128))
    assert not (tmp_path / "x.onnx").exists()
    result = quantize_model(tmp_path / "bare.onnx", calib_data, tmp_path / "x.onnx", num_images=2, input_size=(128, 160),
                            cache_dir=tmp_path / "c", measure_latency=False)
    meta = read_metadata(onnx.load(str(result.path)), result.path)
    assert meta.precision == "int8" and meta.input_size == (128, 160) and meta.num_classes == 80
    assert meta.output_format == "raw"  # the official export's layout
    assert Detector(result.path, threads=1)(np.zeros((100, 120, 3), np.uint8)).image_shape == (100, 120)


def test_also_fp16_sits_beside_int8_in_one_report(exported, calib_data, tmp_path):
    import json
    import shutil

    model = tmp_path / "nano.onnx"
    shutil.copy(exported["decoded"], model)
    result = CliRunner().invoke(cli, ["quantize", str(model), "--calib", str(calib_data), "--num-images", "2",
                                      "--also-fp16", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    fp16 = tmp_path / "nano-fp16.onnx"
    assert "fp16: parity" in result.output and str(fp16) in result.output
    assert any(line.split()[:1] == ["fp16"] for line in result.output.splitlines())  # a row of the table
    report = json.loads((tmp_path / "nano-int8.json").read_text())
    assert set(report["latency_ms"]) == {"fp32", "int8", "fp16"} and all(v > 0 for v in report["latency_ms"].values())
    assert 0 < report["fp16"]["parity_rel"] < 2e-2 and report["fp16"]["size_mb"] < 0.6 * report["size_mb"]["fp32"]
    meta = read_metadata(onnx.load(str(fp16)), fp16)
    assert meta.precision == "fp16"
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(fp16)).graph.initializer)


def test_input_size_is_refused_on_an_edgedet_model_of_another_size(exported, calib_data, tmp_path):
    with pytest.raises(QuantizeError, match="--input-size 320x320 is for models without edgedet metadata"):
        quantize_model(exported["decoded"], calib_data, tmp_path / "x.onnx", num_images=2, input_size=(320, 320))


def test_an_output_folder_that_cannot_be_written_is_refused_first(exported, calib_data):
    with pytest.raises(QuantizeError, match="/proc: cannot write there"):
        quantize_model(exported["decoded"], calib_data, "/proc/x-int8.onnx", num_images=2)
