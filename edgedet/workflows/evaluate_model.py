"""`edgedet eval`: one entry point for .pth checkpoints and .onnx models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from edgedet.data.coco import CocoDetection, DatasetError
from edgedet.eval.coco_eval import EVAL_CONF, EVAL_IOU, Metrics
from edgedet.runtime.progress import ProgressCallback

__all__ = ["EvalError", "evaluate_model"]


class EvalError(ValueError):
    """An evaluation that cannot run, with a one-line reason."""


def evaluate_model(
    model: str, data_dir: str, split: str = "val", model_name: Optional[str] = None,
    input_size: Optional[Tuple[int, int]] = None, limit: Optional[int] = None, provider: str = "auto",
    json_out: Optional[str] = None, progress: Optional[ProgressCallback] = None,
) -> Metrics:
    """mAP of ``model`` (a ``.pth`` or ``.onnx`` path) on ``data_dir``'s ``split``, with a
    progress event after each image."""
    try:
        dataset = CocoDetection.from_dir(data_dir, split)
    except DatasetError as e:
        raise EvalError(str(e)) from None
    path = Path(model)
    if not path.is_file():
        raise EvalError(f"{model}: no such model file")
    if path.suffix.lower() == ".onnx":
        from edgedet.eval.coco_eval import evaluate_detector
        from edgedet.runtime import Detector

        try:
            detector = Detector(path, providers=provider, conf=EVAL_CONF, iou=EVAL_IOU, max_det=300)
        except (ValueError, FileNotFoundError) as e:
            raise EvalError(str(e)) from None
        if detector.metadata.num_classes != dataset.num_classes:
            raise EvalError(f"{model} has {detector.metadata.num_classes} classes, {data_dir} has {dataset.num_classes}")
        metrics = evaluate_detector(detector, dataset, limit=limit, progress=progress)
    else:
        from edgedet.eval.coco_eval import evaluate_torch
        from edgedet.models import build_model, fuse_model, get_spec, load_checkpoint, read_checkpoint
        from edgedet.models.checkpoint import num_classes_of

        try:
            state, extra = read_checkpoint(path)
            classes = num_classes_of(state)
            if classes is not None and classes != dataset.num_classes:
                # Loading it would re-initialise the class head and score random class predictions.
                raise EvalError(f"{model} predicts {classes} classes, {data_dir} has {dataset.num_classes}: "
                                f"evaluate it on a dataset with its classes")
            name = model_name or extra.get("model_name")
            if not name:
                raise EvalError(f"{model}: the checkpoint does not say its model; pass -m/--model")
            size = tuple(input_size or extra.get("input_size") or get_spec(name).test_size)
            net = build_model(name, num_classes=dataset.num_classes).eval()
            load_checkpoint(net, path)
        except ValueError as e:
            raise EvalError(str(e)) from None
        metrics = evaluate_torch(fuse_model(net), dataset, size, limit=limit, progress=progress)
    if json_out:
        from edgedet.runtime.fileio import atomic_write_json

        try:
            atomic_write_json(json_out, metrics.to_dict())
        except OSError as e:  # the metrics are in the message, not lost with the file
            raise EvalError(f"{json_out}: could not write the metrics ({e.strerror or e}); they were: AP "
                            f"{metrics.AP:.4f}, AP50 {metrics.AP50:.4f} on {metrics.images} images") from None
    return metrics
