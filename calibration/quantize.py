"""INT8 post-training quantization with ONNX Runtime's own tooling.

File in, file out, scratch hidden: the model is pre-processed (shape inference and graph
optimisation, ``quant_pre_process``) and quantized (``quantize_static``, QDQ format) inside
a temporary folder; the result gets edgedet metadata and is written atomically.

Activation types per target, chosen by measurement:

- ``cpu``: unsigned int8 activations, signed int8 weights (U8S8). ONNX Runtime's x86 int8
  kernels are built on the u8 x s8 multiply-add (VPMADDUBSW / VNNI); signed activations
  (S8S8) have no such fast path on x86 and are run through conversions, which is what
  made S8S8 slower than fp32 in the measurements this project started from.
- ``tensorrt``: signed symmetric int8 activations and weights, as TensorRT requires of
  Q/DQ models.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnx

from edgedet.runtime.errors import first_line
from edgedet.runtime.progress import ProgressCallback, report
from edgedet.runtime.fileio import atomic_write_bytes, check_writable
from edgedet.runtime.metadata import PREFIX, MetadataError, ModelMetadata, from_props, to_props

from edgedet.onnx_graph import set_metadata

from .calibration_set import CalibrationSet

__all__ = ["QuantizeError", "QuantizeResult", "METHODS", "TARGETS", "quantize_model", "auto_exclusions", "resolve_exclusions", "evaluate_pair", "check_eval_data",
           "read_metadata"]

log = logging.getLogger(__name__)

# average: the mean over calibration images of each image's min and max (ranges that one extreme
# image cannot stretch); minmax: the extremes over all images.
METHODS = ("average", "minmax", "entropy", "percentile")
TARGETS = ("cpu", "tensorrt")


class QuantizeError(ValueError):
    """A quantization request that cannot run, with a one-line reason."""


@dataclass
class QuantizeResult:
    path: Path
    method: str
    target: str
    excluded: List[str]
    num_images: int
    fp32_mb: float
    int8_mb: float
    qdq_nodes: int
    calibration_cached: bool
    channel_scaled: int = 0  # depthwise sites given per-channel activation scales (channel_scales.py)
    latency_ms: Dict[str, float] = field(default_factory=dict)  # fp32 / int8 (/ fp16) medians
    fp16: Optional[Dict] = None  # an fp16 sibling written beside it: path, size_mb, parity_rel, kept_float

    def report(self) -> Dict:
        return {"output": str(self.path), "method": self.method, "target": self.target, "num_images": self.num_images,
                "excluded_nodes": self.excluded, "size_mb": {"fp32": round(self.fp32_mb, 3), "int8": round(self.int8_mb, 3)},
                "qdq_nodes": self.qdq_nodes, "channel_scaled_sites": self.channel_scaled, "latency_ms": self.latency_ms,
                "latency_ratio": (round(self.latency_ms["int8"] / self.latency_ms["fp32"], 3)
                                  if self.latency_ms else None),
                **({"fp16": self.fp16} if self.fp16 else {})}


def load_onnx(path: Path, load_external_data: bool = True) -> onnx.ModelProto:
    """``onnx.load`` with a one-line QuantizeError naming the file when it is not an ONNX model."""
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as e:  # protobuf's DecodeError, or OSError for a file that cannot be read
        raise QuantizeError(f"{path}: not an ONNX model ({first_line(e)})") from None
    if not model.graph.node:
        raise QuantizeError(f"{path}: not an ONNX model (no graph; an empty or unrelated file?)")
    return model


def read_metadata(model: onnx.ModelProto, path: Path, input_size: Optional[Tuple[int, int]] = None) -> ModelMetadata:
    """The model's edgedet metadata; for a model edgedet did not export, metadata built from
    ``input_size`` and the graph (see ``plain_model_metadata``), or an error saying so."""
    props = {p.key: p.value for p in model.metadata_props}
    if PREFIX + "format_version" not in props and input_size is not None:
        return plain_model_metadata(model, path, input_size)
    try:
        meta = from_props(props)
    except MetadataError as e:
        hint = "; for a model edgedet did not export, give --input-size" if PREFIX + "format_version" not in props else ""
        raise QuantizeError(f"{path}: {e}{hint}") from None
    if input_size is not None and tuple(input_size) != tuple(meta.input_size):
        own = meta.input_size
        raise QuantizeError(f"{path}: --input-size {input_size[0]}x{input_size[1]} is for models without edgedet "
                            f"metadata; this one was exported at {own[0]}x{own[1]} (export again for another size)")
    return meta


def plain_model_metadata(model: onnx.ModelProto, path: Path, input_size: Tuple[int, int]) -> ModelMetadata:
    """Metadata for a YOLOX ONNX file without edgedet's, as the official export writes it: BGR
    0..255 input letterboxed with pad 114, raw [B, N, 5 + C] output (boxes not decoded) whose C
    gives the class count."""
    inputs = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    outputs = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    if len(inputs) != 4 or len(outputs) != 3 or outputs[-1] <= 5:
        raise QuantizeError(f"{path}: without edgedet metadata the model must take [B, 3, H, W] and give "
                            f"[B, N, 5 + classes]; it has input {inputs} and output {outputs}")
    if inputs[2] and inputs[3] and (inputs[2], inputs[3]) != tuple(input_size):
        raise QuantizeError(f"{path}: --input-size {input_size[0]}x{input_size[1]} does not match the model's "
                            f"input {inputs[2]}x{inputs[3]}")
    return ModelMetadata(model_name=path.stem, input_size=tuple(input_size),
                         class_names=tuple(f"class{i}" for i in range(outputs[-1] - 5)), output_format="raw",
                         batch=inputs[0] or None,
                         extra={"metadata": "from --input-size: no edgedet metadata in the source model"})


def auto_exclusions(model: onnx.ModelProto) -> List[str]:
    """The nodes ``--exclude auto`` keeps in float: the head's tail after the last
    prediction convs (per-level concat of box/objectness/class outputs, flatten and level
    concat, sigmoids, decode), found structurally by ``edgedet.onnx_graph.tail_nodes``.
    Quantizing that concat per tensor is what collapses YOLOX's accuracy: box coordinates
    in the hundreds and probabilities in 0..1 would share one scale."""
    from edgedet.onnx_graph import ensure_node_names, tail_nodes

    ensure_node_names(model)
    return tail_nodes(model)


def resolve_exclusions(model: onnx.ModelProto, exclude: Union[str, Sequence[str]]) -> List[str]:
    """Node names to keep in float: ``"auto"``, ``"none"``, or names (comma-separated or a
    list), where the word ``auto`` among them adds the automatic set. Names every node first."""
    from edgedet.onnx_graph import ensure_node_names

    ensure_node_names(model)
    items = [e.strip() for e in (exclude.split(",") if isinstance(exclude, str) else exclude) if e.strip()]
    if items in ([], ["none"]):
        return []
    names = {n.name for n in model.graph.node}
    unknown = [n for n in items if n not in names and n != "auto"]
    if unknown:
        raise QuantizeError(f"--exclude names nodes not in the model: {', '.join(unknown[:5])}")
    chosen = auto_exclusions(model) if "auto" in items else []
    return chosen + [n for n in items if n != "auto" and n not in chosen]


def _count_qdq(model: onnx.ModelProto) -> int:
    return sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


# ORT's entropy calibrator defaults to 128 histogram bins and 128 quantized bins, which leaves its
# threshold search a single candidate, the full range: Entropy then equals MinMax exactly (every
# activation scale identical). quantize_static does not forward the bin counts, so
# entropy ranges are computed with ORT's calibrator at these counts and handed over as a
# calibration cache.
ENTROPY_NUM_BINS = 512
ENTROPY_NUM_QUANTIZED_BINS = 128


# ORT's histogram calibrators (Entropy, Percentile) keep every intermediate output of every image
# before building histograms: 200 images of yolox-nano at 416 took more than 24 GB and were killed.
# Histograms merge, so the images are fed in chunks of this many batches. (MinMax and average ranges
# come from ``extreme_ranges``, which keeps only per-batch extremes: ORT's MinMax calibrator in 1.32
# drops the outputs collected before each chunk boundary when CalibMaxIntermediateOutputs is set.)
CALIBRATION_CHUNK = 16


class _Chunk:
    """At most ``count`` batches of a calibration reader, then None."""

    def __init__(self, reader, count: int) -> None:
        self.reader, self.left = reader, count

    def get_next(self):
        if self.left <= 0:
            return None
        self.left -= 1
        return self.reader.get_next()


def _calibration_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"average": CalibrationMethod.MinMax, "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method]


def _float_tensors(model: onnx.ModelProto) -> List[onnx.ValueInfoProto]:
    """The model's input and every float node output with a known type (after shape inference)."""
    infos = {v.name: v for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    names = [model.graph.input[0].name] + [o for n in model.graph.node for o in n.output]
    return [infos[n] for n in dict.fromkeys(names)
            if n in infos and infos[n].type.tensor_type.elem_type == onnx.TensorProto.FLOAT]


def extreme_ranges(prepared: Path, calib, channel_tensors: Sequence[str] = (),
                   progress: Optional[ProgressCallback] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """Per-batch minima and maxima of every float tensor of ``prepared`` over ``calib``, reduced to
    ``{"minmax": {tensor: (low, high)}, "average": {...}, "channels": {tensor: (low[C], high[C])}}``:
    the extremes over all batches, their means over batches, and for ``channel_tensors`` the
    per-channel (axis 1) means. One pass, one batch in memory at a time; a progress event
    after each batch when ``calib`` has a length."""
    from edgedet.runtime.providers import cpu_session

    model = onnx.load(str(prepared))
    infos = _float_tensors(model)
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(v for v in infos if v.name not in present)
    session = cpu_session(model.SerializeToString())
    names = [v.name for v in infos]
    input_name = model.graph.input[0].name
    lows: Dict[str, List[float]] = {n: [] for n in names}
    highs: Dict[str, List[float]] = {n: [] for n in names}
    channel_lows: Dict[str, List[np.ndarray]] = {n: [] for n in channel_tensors}
    channel_highs: Dict[str, List[np.ndarray]] = {n: [] for n in channel_tensors}
    wanted = [n for n in names if n != input_name]
    total = -(-len(calib) // getattr(calib, "batch", 1)) if hasattr(calib, "__len__") else 0
    for done, feed in enumerate(calib, 1):
        values = dict(zip(wanted, session.run(wanted, feed)))
        values[input_name] = feed[input_name]
        for name in names:
            x = values[name]
            lows[name].append(float(x.min()))
            highs[name].append(float(x.max()))
            if name in channel_lows:
                axes = tuple(i for i in range(x.ndim) if i != 1)
                channel_lows[name].append(x.min(axis=axes))
                channel_highs[name].append(x.max(axis=axes))
        if total:
            report(progress, "calibrate", min(done, total), total)
    if not names or not lows[names[0]]:
        raise QuantizeError("no calibration batches")
    return {"minmax": {n: (min(lows[n]), max(highs[n])) for n in names},
            "average": {n: (float(np.mean(lows[n])), float(np.mean(highs[n]))) for n in names},
            "channels": {n: (np.mean(channel_lows[n], 0), np.mean(channel_highs[n], 0)) for n in channel_tensors}}


def _write_ranges(ranges: Dict[str, Tuple[float, float]], path: Path) -> Path:
    """Ranges as ORT's calibration cache JSON (``quantize_static``'s ``calibration_cache_path``)."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    data = {name: TensorData(lowest=np.array(low, np.float32), highest=np.array(high, np.float32))
            for name, (low, high) in ranges.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), path)
    return path


def calibration_ranges(prepared: Path, calib, op_types: Optional[Sequence[str]], scratch: Path, method: str,
                       percentile: float) -> Path:
    """Activation ranges of ``prepared`` for ``entropy`` (KL) or ``percentile``, collected chunk by
    chunk with ORT's calibrator, written as ORT's calibration cache JSON."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    options = ({"num_bins": ENTROPY_NUM_BINS, "num_quantized_bins": ENTROPY_NUM_QUANTIZED_BINS} if method == "entropy"
               else {"percentile": percentile})
    calibrator = create_calibrator(
        prepared, list(op_types) if op_types else None, augmented_model_path=str(scratch / "augmented.onnx"),
        calibrate_method=_calibration_method(method), providers=["CPUExecutionProvider"], extra_options=options,
    )
    calib.rewind()
    batches = -(-len(calib) // calib.batch)
    for _ in range(0, batches, CALIBRATION_CHUNK):
        calibrator.collect_data(_Chunk(calib, CALIBRATION_CHUNK))
    cache = scratch / f"{method}_ranges.json"
    save_tensors_data(calibrator.compute_data(), cache)
    return cache


def quantize_qdq(prepared: Path, output: Path, ranges: Path, method: str, *, per_channel: bool = True,
                 target: str = "cpu", op_types: Optional[Sequence[str]] = None,
                 nodes_to_exclude: Optional[Sequence[str]] = None,
                 nodes_to_quantize: Optional[Sequence[str]] = None) -> None:
    """``quantize_static`` in QDQ format on precomputed ``ranges``: the activation and weight
    types of ``target`` (see the module docstring), symmetric int8 weights."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    symmetric_activations = target == "tensorrt"
    quantize_static(
        str(prepared), str(output), None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
        op_types_to_quantize=list(op_types) if op_types else None,
        activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8, nodes_to_exclude=list(nodes_to_exclude or []),
        nodes_to_quantize=list(nodes_to_quantize) if nodes_to_quantize else None,
        calibrate_method=_calibration_method(method), calibration_providers=["CPUExecutionProvider"],
        extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True},
        calibration_cache_path=str(ranges),
    )


def prepare_and_calibrate(model_path: Path, calib, method: str, percentile: float,
                          op_types: Optional[Sequence[str]], workdir: Path,
                          progress: Optional[ProgressCallback] = None) -> Tuple[Path, Path, Path]:
    """``(prepared model, ranges, channel ranges)`` in ``workdir``: ``quant_pre_process`` output with
    every node named (the names exclusions refer to), its calibration ranges (ORT cache JSON) and the
    per-channel ranges of its depthwise sites (``.npz``, see ``channel_scales``); all reused when
    ``workdir`` already holds them for this method."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgedet.onnx_graph import ensure_node_names

    from .channel_scales import depthwise_sites

    prepared = workdir / "prepared.onnx"
    if not prepared.is_file():
        quant_pre_process(str(model_path), str(workdir / "pre.onnx"), skip_symbolic_shape=True)
        pre = onnx.load(str(workdir / "pre.onnx"))
        ensure_node_names(pre)
        onnx.save(pre, str(prepared))
    ranges = workdir / f"{method}_{percentile if method == 'percentile' else ''}ranges.json"
    channels = workdir / "channel_ranges.npz"
    if not channels.is_file() or (method in ("average", "minmax") and not ranges.is_file()):
        log.info("calibrating (%s) on %d images ...", "average" if method not in ("average", "minmax") else method,
                 len(calib))
        sites = depthwise_sites(onnx.load(str(prepared)))
        extremes = extreme_ranges(prepared, calib, [t for s in sites for t in (s.pre, s.post)], progress)
        for name in ("average", "minmax"):
            _write_ranges(extremes[name], workdir / f"{name}_ranges.json")
        buffer = io.BytesIO()
        np.savez(buffer, **{f"{k}|{side}": v for k, pair in extremes["channels"].items()
                            for side, v in zip(("low", "high"), pair)})
        atomic_write_bytes(channels, buffer.getvalue())
    if not ranges.is_file():
        log.info("calibrating (%s) on %d images ...", method, len(calib))
        try:
            calibration_ranges(prepared, calib, op_types, workdir, method, percentile).replace(ranges)
        except ValueError as e:  # e.g. numpy's histogram on a constant tensor (entropy/percentile)
            raise QuantizeError(f"{model_path}: ONNX Runtime's {method} calibration failed ({e}); "
                                f"try --method average") from e
    return prepared, ranges, channels


def load_channel_ranges(path: Path) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The per-channel ranges ``prepare_and_calibrate`` saved: ``{tensor: (low[C], high[C])}``."""
    with np.load(path, allow_pickle=False) as data:
        keys = {k.rsplit("|", 1)[0] for k in data.files}
        return {k: (data[f"{k}|low"], data[f"{k}|high"]) for k in keys}


def quantize_model(
    model_path: Union[str, Path],
    calib_source: Union[str, Path],
    output: Union[str, Path],
    *,
    num_images: int = 200,
    seed: int = 0,
    method: str = "average",
    percentile: float = 99.99,
    per_channel: bool = True,
    channel_scales: bool = True,
    target: str = "cpu",
    exclude: Union[str, Sequence[str]] = "auto",
    cache_dir: Optional[Path] = None,
    measure_latency: bool = True,
    calib_split: str = "train",
    op_types: Optional[Sequence[str]] = None,
    input_size: Optional[Tuple[int, int]] = None,
    time_with: Optional[Dict[str, bytes]] = None,
    workdir: Optional[Path] = None,
    progress: Optional[ProgressCallback] = None,
) -> QuantizeResult:
    """Quantize an edgedet fp32 ``.onnx`` to INT8 (QDQ) calibrated on ``calib_source``.

    ``exclude``: ``"auto"`` (the head's tail, see ``auto_exclusions``), ``"none"``, or node
    names. ``channel_scales`` gives the inputs of depthwise convs per-channel activation scales
    that ONNX Runtime's int8 conv still runs (``channel_scales.py``; needs ``per_channel``).
    ``op_types`` limits quantization to these operator types (default: all that ONNX Runtime
    can quantize). ``input_size`` makes a model without edgedet metadata usable (see
    ``plain_model_metadata``). ``time_with`` names further serialized models to time in the same
    interleaved runs as fp32 and int8 (an fp16 sibling, say).
    ``workdir`` keeps the pre-processed model and its calibration ranges for further calls
    (the accuracy-aware loop re-quantizes without calibrating again). Progress events
    follow the calibration pass over the images.
    Raises QuantizeError for an unusable request; nothing is written then.
    """
    model_path, output = Path(model_path), Path(output)
    if method not in METHODS:
        raise QuantizeError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if target not in TARGETS:
        raise QuantizeError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
    if not 90.0 <= percentile <= 100.0:
        raise QuantizeError(f"percentile must be in [90, 100], got {percentile}")
    if not model_path.is_file():
        raise QuantizeError(f"{model_path}: no such model file")
    if not output.parent.is_dir():
        raise QuantizeError(f"{output}: folder {output.parent} does not exist")
    try:
        check_writable(output.parent)
    except OSError as e:
        raise QuantizeError(str(e)) from None
    model = load_onnx(model_path)
    meta = read_metadata(model, model_path, input_size)
    if meta.precision == "int8" or _count_qdq(model):
        raise QuantizeError(f"{model_path}: already quantized (precision {meta.precision}); quantize the fp32 export")
    if meta.precision != "fp32":
        raise QuantizeError(f"{model_path}: is {meta.precision}; INT8 calibration needs the fp32 export")
    calib = CalibrationSet(calib_source, meta, num_images=num_images, seed=seed, batch=meta.batch or 1,
                           cache_dir=cache_dir, split=calib_split, input_name=model.graph.input[0].name)

    with tempfile.TemporaryDirectory(prefix="edgedet-quant-") as scratch:
        prepared, ranges, channel_ranges = prepare_and_calibrate(model_path, calib, method, percentile, op_types,
                                                                 Path(workdir) if workdir else Path(scratch), progress)
        prepared_model = onnx.load(str(prepared))
        excluded = resolve_exclusions(prepared_model, exclude)
        quantized = Path(scratch) / "int8.onnx"
        quantize_qdq(prepared, quantized, ranges, method, per_channel=per_channel, target=target, op_types=op_types,
                     nodes_to_exclude=excluded)
        q_model = onnx.load(str(quantized))
        scaled = 0
        if channel_scales and per_channel:
            from .channel_scales import apply_channel_scales, depthwise_sites

            scaled = apply_channel_scales(q_model, depthwise_sites(prepared_model), load_channel_ranges(channel_ranges))
    calibration = {"method": method, "percentile": percentile if method == "percentile" else None,
                   "num_images": len(calib), "images_fingerprint": calib.images_fingerprint, "seed": seed,
                   "source": Path(calib_source).name, "per_channel": per_channel, "target": target,
                   "channel_scaled_sites": scaled,
                   "activation_type": "int8" if target == "tensorrt" else "uint8", "weight_type": "int8",
                   "excluded_nodes": excluded}
    int8_meta = meta.with_changes(precision="int8", calibration=calibration)
    set_metadata(q_model, to_props(int8_meta))
    onnx.checker.check_model(q_model)
    data = q_model.SerializeToString()
    latency = {}
    if measure_latency:
        from edgedet.runtime.bench import cpu_latency_ms

        timed = {"fp32": str(model_path), "int8": data, **(time_with or {})}
        log.info("timing %s (interleaved runs, 1 thread) ...", ", ".join(timed))
        latency = cpu_latency_ms(timed, sample=calib.subset(meta.batch or 1))
    atomic_write_bytes(output, data)
    return QuantizeResult(output, method, target, excluded, len(calib), model_path.stat().st_size / 1e6,
                          len(data) / 1e6, _count_qdq(q_model), calib.cache_hit, scaled, latency)


def check_eval_data(model_path: Path, data_dir: Union[str, Path]):
    """The val split of ``data_dir``, checked against the model's classes before any work."""
    from edgedet.data.coco import CocoDetection, DatasetError

    try:
        dataset = CocoDetection.from_dir(data_dir, "val")
    except DatasetError as e:
        raise QuantizeError(str(e)) from None
    meta = read_metadata(load_onnx(model_path, load_external_data=False), model_path)
    if meta.num_classes != dataset.num_classes:
        raise QuantizeError(f"{data_dir}: the evaluation set has {dataset.num_classes} classes, "
                            f"{model_path} has {meta.num_classes}")
    return dataset


def evaluate_pair(fp32_path: Path, int8_path: Path, data_dir: Union[str, Path], limit: Optional[int] = None,
                  fp16_path: Optional[Path] = None, latency_ms: Optional[Dict[str, float]] = None) -> Dict:
    """AP of the fp32 and int8 (and fp16) models on ``data_dir``'s val split (official eval
    settings), stored in the int8 model's calibration metadata as well (rewritten atomically),
    with the measured ``latency_ms`` when given."""
    from edgedet.eval import EVAL_CONF, EVAL_IOU, evaluate_detector
    from edgedet.runtime import Detector

    dataset = check_eval_data(fp32_path, data_dir)
    scores = {}
    for name, path in (("fp32", fp32_path), ("int8", int8_path), ("fp16", fp16_path)):
        if path is None:
            continue
        log.info("evaluating %s on %d images of %s ...", name, min(limit or len(dataset), len(dataset)), data_dir)
        det = Detector(path, providers="cpu", conf=EVAL_CONF, iou=EVAL_IOU)
        m = evaluate_detector(det, dataset, limit=limit)
        scores[name] = {"AP": round(m.AP, 4), "AP50": round(m.AP50, 4)}
    scores["ap_drop"] = round(scores["fp32"]["AP"] - scores["int8"]["AP"], 4)
    store_eval(int8_path, scores, data_dir, latency_ms)
    return scores


def store_eval(int8_path: Path, scores: Dict, data_dir: Union[str, Path],
               latency_ms: Optional[Dict[str, float]] = None) -> None:
    """Put measured AP ``scores`` (and ``latency_ms``) into the int8 model's calibration
    metadata (rewritten atomically)."""
    model = onnx.load(str(int8_path))
    meta = read_metadata(model, int8_path)
    measured = {"eval": scores, "eval_data": Path(data_dir).name, **({"latency_ms": latency_ms} if latency_ms else {})}
    meta = meta.with_changes(calibration={**(meta.calibration or {}), **measured})
    set_metadata(model, to_props(meta))
    atomic_write_bytes(int8_path, model.SerializeToString())
