"""`edgedet export`: a YOLOX model to one deployable, self-describing ``.onnx`` file.

Steps, each in its own module: wrap (``wrappers``), torch -> ONNX (``onnx_export``),
simplify (``simplify``), fp16 (``fp16``), end-to-end NMS (``nms``), metadata, onnx.checker,
parity against PyTorch (``parity``), then an atomic write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnx

from edgedet import __version__
from edgedet.data.coco_names import COCO_CLASSES
from edgedet.data.synth import render_sample
from edgedet.models import build_model, fuse_model, get_spec, load_checkpoint, read_checkpoint
from edgedet.models.checkpoint import num_classes_of
from edgedet.models.flops import count_cost
from edgedet.runtime.fileio import atomic_write_bytes, check_writable
from edgedet.runtime.letterbox import preprocess
from edgedet.runtime.metadata import OUTPUT_FORMATS, ModelMetadata, NmsSettings, to_props

from .fp16 import convert_fp16
from edgedet.onnx_graph import count_nodes, set_metadata
from .nms import append_nms
from .onnx_export import DEFAULT_OPSET, torch_to_onnx
from .parity import FP16_TOLERANCE, FP32_TOLERANCE, ParityError, ParityReport, check_parity
from .simplify import SimplifyReport, simplify as simplify_graph
from .wrappers import wrap_for_export

__all__ = ["ExportError", "ExportResult", "export_model", "parse_class_names", "sha256_file"]

log = logging.getLogger(__name__)


class ExportError(ValueError):
    """Bad export request (model, size, checkpoint, output path), with a one-line reason."""


@dataclass
class ExportResult:
    path: Path
    metadata: ModelMetadata
    parity: ParityReport
    simplify: Optional[SimplifyReport]
    nodes: int
    size_mb: float
    seconds: float
    random_weights: bool
    kept_float: List[str] = field(default_factory=list)


def sha256_file(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_class_names(path: Union[str, Path]) -> Tuple[str, ...]:
    """Class names from a file: a JSON list, or one name per line (blank lines ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ExportError(f"{path}: cannot read class names ({e.strerror})") from e
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise ExportError(f"{path}: invalid JSON list of class names ({e})") from e
        if not all(isinstance(n, str) for n in names):
            raise ExportError(f"{path}: class names must all be strings")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ExportError(f"{path}: no class names in the file")
    return tuple(names)


def parity_images(input_size: Tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """Pre-processed synthetic images (shapes on textured backgrounds), float32 [count, 3, H, W].

    The images are rendered at 3/4 of the input height and full width so the letterbox's
    resize and padding are exercised too.
    """
    rng = np.random.default_rng(seed)
    h, w = input_size
    batch = np.empty((count, 3, h, w), dtype=np.float32)
    for i in range(count):
        sample = render_sample(rng, (max(h * 3 // 4, 32), w))
        preprocess(sample.image, input_size, out=batch[i])
    return batch


def _check_output_path(output: Path) -> None:
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise ExportError(f"{output}: is a folder; give a file name ending in .onnx")
    if not parent.is_dir():
        raise ExportError(f"{output}: folder {parent} does not exist")
    try:
        check_writable(parent)  # os.access says yes to root on read-only mounts and /proc
    except OSError as e:
        raise ExportError(str(e)) from None


def export_model(
    model_name: str,
    output: Union[str, Path],
    *,
    ckpt: Optional[Union[str, Path]] = None,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    input_size: Optional[Tuple[int, int]] = None,
    opset: int = DEFAULT_OPSET,
    batch: Optional[int] = 1,
    output_format: str = "decoded",
    fp16: bool = False,
    simplify: bool = True,
    max_det: int = 300,
    conf: float = 0.25,
    iou: float = 0.45,
    num_parity_images: int = 4,
    echo: Callable[[str], None] = log.info,
) -> ExportResult:
    """Export a zoo model (random or checkpoint weights) to ``output``.

    Args:
        model_name: ``yolox-nano`` .. ``yolox-x``.
        ckpt: an official or edgedet checkpoint; its class count (and names, when it holds
            them) are used. Without it the weights are random, and the result says so.
        num_classes, class_names: override or supply the classes; they must agree with the
            checkpoint. Default names: COCO's for 80 classes, ``class0``.. otherwise.
        input_size: (H, W), multiples of 32; default the size an edgedet checkpoint was
            trained at, else the model's official test size.
        batch: fixed batch size, or None for a dynamic batch axis.
        output_format: ``decoded`` [B, N, 5+C], ``raw`` (official layout) or ``nms``
            (end-to-end, with ``max_det``, ``conf`` and ``iou`` baked in).
        fp16: float16 weights and compute, float32 inputs and outputs.

    Raises ExportError for a bad request and ParityError when the ONNX model does not
    reproduce PyTorch; in both cases nothing is written.
    """
    start = time.perf_counter()
    output = Path(output)
    try:
        spec = get_spec(model_name)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if output_format not in OUTPUT_FORMATS:
        raise ExportError(f"unknown output format {output_format!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    size = tuple(input_size) if input_size else None
    if batch is not None and batch < 1:
        raise ExportError(f"batch must be at least 1, got {batch}")
    if not 0 <= conf <= 1 or not 0 <= iou <= 1 or max_det < 1:
        raise ExportError("conf and iou must be in [0, 1] and max_det at least 1")
    _check_output_path(output)

    names = tuple(class_names) if class_names else None
    checkpoint_hash = None
    if ckpt is not None:
        try:
            state, extra = read_checkpoint(ckpt)
        except ValueError as e:
            raise ExportError(str(e)) from None
        ckpt_classes = num_classes_of(state)
        if num_classes is not None and ckpt_classes is not None and num_classes != ckpt_classes:
            raise ExportError(f"{ckpt}: checkpoint has {ckpt_classes} classes but --num-classes is {num_classes}")
        num_classes = ckpt_classes or num_classes
        if names is None and isinstance(extra.get("class_names"), (list, tuple)):
            names = tuple(str(n) for n in extra["class_names"])
        checkpoint_hash = sha256_file(ckpt)
        recorded = extra.get("input_size")  # an edgedet checkpoint records the size it is meant to run at
        if size is None and isinstance(recorded, (list, tuple)) and len(recorded) == 2:
            size = (int(recorded[0]), int(recorded[1]))
            echo(f"input size {size[0]}x{size[1]}, from the checkpoint (--input-size overrides)")
    size = size or spec.test_size
    if any(s % 32 or s <= 0 for s in size):
        raise ExportError(f"input size {size[0]}x{size[1]} must be positive multiples of 32")
    if num_classes is None:
        num_classes = len(names) if names else 80
    if names is None:
        names = COCO_CLASSES if num_classes == 80 else tuple(f"class{i}" for i in range(num_classes))
    if len(names) != num_classes:
        raise ExportError(f"{len(names)} class names given for a model with {num_classes} classes")

    model = build_model(spec.name, num_classes=num_classes).eval()
    if ckpt is not None:
        try:
            load_checkpoint(model, ckpt, strict=True)
        except ValueError as e:
            raise ExportError(str(e)) from None
    else:
        echo(f"WARNING: no --ckpt given: exporting {spec.name} with RANDOM weights; its detections are meaningless")
    cost = count_cost(model, size)
    model = fuse_model(model)

    wrapper = wrap_for_export(model, output_format)
    output_names = ["nms_boxes", "nms_scores"] if output_format == "nms" else ["output"]
    try:
        graph = torch_to_onnx(wrapper, size, output_names, batch=batch, opset=opset)
    except ValueError as e:
        raise ExportError(str(e)) from None
    report = None
    if simplify:
        graph, report = simplify_graph(graph)
        echo(f"simplified with {report.tool}: {report.nodes_before} -> {report.nodes_after} nodes"
             + (f" ({report.note})" if report.note else ""))
    kept_float: List[str] = []
    if fp16:
        graph, kept_float = convert_fp16(graph)
        echo(f"fp16: {len(kept_float)} tail nodes kept in float32")
    # Parity runs before NMS is appended: the candidates (boxes, scores) are compared
    # numerically; the NMS itself is ONNX's operator, tested on its own.
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    step = batch or 2
    images = parity_images(size, max(step, (num_parity_images // step) * step))
    parity = check_parity(wrapper, graph.SerializeToString(), images, tolerance, batch)
    precision = "fp16" if fp16 else "fp32"
    echo(f"parity ({precision}): {parity.summary()}")
    if not parity.ok:
        raise ParityError(
            f"{spec.name} {output_format} {precision}: ONNX output differs from PyTorch by "
            f"{parity.worst_rel:.2e} of the output scale, above the tolerance {tolerance:.0e} ({parity.summary()}); "
            f"nothing was written"
        )
    nms = NmsSettings(max_det, conf, iou, False) if output_format == "nms" else None
    if nms is not None:
        graph = append_nms(graph, max_det, conf, iou)

    meta = ModelMetadata(
        model_name=spec.name, input_size=size, class_names=names, strides=spec.strides,
        output_format=output_format, precision=precision, batch=batch,
        nms=nms, gflops=round(cost.gflops, 4), source_checkpoint_sha256=checkpoint_hash,
        edgedet_version=__version__,
    )
    graph.producer_name, graph.producer_version = "edgedet", __version__
    set_metadata(graph, to_props(meta))
    onnx.checker.check_model(graph, full_check=True)
    data = graph.SerializeToString()
    atomic_write_bytes(output, data)
    return ExportResult(
        path=output, metadata=meta, parity=parity, simplify=report, nodes=count_nodes(graph),
        size_mb=len(data) / 1e6, seconds=time.perf_counter() - start, random_weights=ckpt is None,
        kept_float=kept_float,
    )
