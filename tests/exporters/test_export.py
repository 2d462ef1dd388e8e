"""Export round trips through ONNX Runtime, for each output format and precision."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgedet.runtime.metadata import from_props
from edgedet.exporters import ExportError, ParityError, export_model
from edgedet.exporters.export import parity_images
from tests.conftest import assert_matches_golden, reference_state_dict

SIZE = (128, 160)


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _meta(path):
    return from_props(_session(path).get_modelmeta().custom_metadata_map)


@pytest.fixture(scope="module")
def ckpt_nano(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "nano.pth"
    torch.save({"model": reference_state_dict("nano")}, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("size", ["nano", "s"])
@pytest.mark.parametrize("fmt", ["decoded", "raw"])
def test_fp32_export_reproduces_official_outputs(tmp_path, golden, size, fmt):
    ckpt = tmp_path / "ref.pth"
    torch.save({"model": reference_state_dict(size)}, ckpt)
    out = tmp_path / "m.onnx"
    result = export_model(f"yolox-{size}", out, ckpt=ckpt, input_size=(256, 256), output_format=fmt)
    (got,) = _session(out).run(None, {"images": golden["input"]})
    assert_matches_golden(got, golden, size, decoded=fmt == "decoded")
    meta = _meta(out)
    assert meta.output_format == fmt and meta.precision == "fp32" and meta.input_size == (256, 256)
    assert meta.source_checkpoint_sha256 == result.metadata.source_checkpoint_sha256 and len(meta.class_names) == 80
    assert not result.random_weights and result.parity.ok


@pytest.mark.slow
def test_dynamic_batch_gives_same_per_image_results(tmp_path, ckpt_nano):
    out = tmp_path / "dyn.onnx"
    export_model("yolox-nano", out, ckpt=ckpt_nano, input_size=SIZE, batch=None, output_format="raw")
    session = _session(out)
    assert session.get_inputs()[0].shape[0] == "batch" and session.get_inputs()[0].name == "images"
    images = parity_images(SIZE, 4, seed=3)
    (four,) = session.run(None, {"images": images})
    ones = np.concatenate([session.run(None, {"images": images[i:i + 1]})[0] for i in range(4)])
    np.testing.assert_allclose(four, ones, rtol=1e-5, atol=1e-5)
    assert _meta(out).batch is None


@pytest.mark.slow
def test_fp16_keeps_io_float32_and_tail_in_float(tmp_path, ckpt_nano):
    out = tmp_path / "fp16.onnx"
    result = export_model("yolox-nano", out, ckpt=ckpt_nano, input_size=SIZE, fp16=True)
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    dtypes = {i.data_type for i in model.graph.initializer if i.name in conv_weights}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    exp_nodes = [n.name for n in model.graph.node if n.op_type == "Exp"]
    assert exp_nodes and set(exp_nodes) <= set(result.kept_float)
    assert _meta(out).precision == "fp16"
    assert result.parity.worst_rel < 2e-2
    assert result.size_mb < 0.6 * 3.6  # weights halved


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["raw", "nms"])
def test_fp16_dynamic_batch_formats(tmp_path, ckpt_nano, fmt):
    out = tmp_path / f"{fmt}16.onnx"
    result = export_model("yolox-nano", out, ckpt=ckpt_nano, input_size=SIZE, fp16=True, batch=None, output_format=fmt)
    assert result.parity.ok and result.metadata.precision == "fp16" and result.metadata.batch is None
    session = _session(out)
    outputs = session.run(None, {"images": parity_images(SIZE, 3, seed=2)})
    assert all(o.shape[0] == 3 for o in outputs)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, None], ids=["static", "dynamic"])
def test_nms_format_outputs(tmp_path, ckpt_nano, batch):
    out = tmp_path / "nms.onnx"
    export_model("yolox-nano", out, ckpt=ckpt_nano, input_size=SIZE, batch=batch, output_format="nms",
                 max_det=50, conf=0.05, iou=0.5)
    session = _session(out)
    assert [o.name for o in session.get_outputs()] == ["num_dets", "boxes", "scores", "class_ids"]
    images = parity_images(SIZE, 1 if batch else 3, seed=1)
    num_dets, boxes, scores, class_ids = session.run(None, {"images": images})
    assert num_dets.shape == (len(images), 1) and boxes.shape == (len(images), 50, 4)
    assert scores.shape == class_ids.shape == (len(images), 50)
    assert num_dets.dtype == np.int64 and class_ids.dtype == np.int64
    for i in range(len(images)):
        n = int(num_dets[i, 0])
        assert np.all(scores[i, :n] >= 0.05) and np.all(np.diff(scores[i, :n]) <= 0)
        assert np.all(class_ids[i, n:] == -1) and np.all(scores[i, n:] == 0)
    meta = _meta(out)
    assert (meta.nms.max_det, meta.nms.conf, meta.nms.iou) == (50, 0.05, 0.5)


def test_bad_requests_leave_no_file(tmp_path, ckpt_nano):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="unknown model 'yolox-q'; known models: yolox-nano"):
        export_model("yolox-q", out)
    with pytest.raises(ExportError, match="input size 100x128 must be positive multiples of 32"):
        export_model("yolox-nano", out, input_size=(100, 128))
    with pytest.raises(ExportError, match="does not exist"):
        export_model("yolox-nano", tmp_path / "no" / "such" / "dir.onnx")
    with pytest.raises(ExportError, match=r"does not fit yolox-s \(it looks like yolox-nano"):
        export_model("yolox-s", out, ckpt=ckpt_nano)
    with pytest.raises(ExportError, match="checkpoint has 80 classes but --num-classes is 3"):
        export_model("yolox-nano", out, ckpt=ckpt_nano, num_classes=3)
    assert list(tmp_path.iterdir()) == []


def test_parity_failure_writes_nothing(tmp_path, monkeypatch):
    import edgedet.exporters.export as export_module

    monkeypatch.setattr(export_module, "FP32_TOLERANCE", 0.0)
    out = tmp_path / "m.onnx"
    with pytest.raises(ParityError, match="above the tolerance 0e\\+00.*nothing was written"):
        export_model("yolox-nano", out, input_size=(64, 64), simplify=False)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_outputs_fail_parity():
    # NaN - NaN is NaN, which max() skipped: a NaN model used to pass with 0.00e+00.
    import numpy as np

    from edgedet.exporters.parity import ParityReport, _compare

    report = ParityReport(images=1, tolerance=1e-4)
    ref = np.full((1, 4, 6), np.nan, np.float32)
    _compare(report, "boxes", ref, ref)
    assert not report.ok and report.worst_rel == float("inf")
