"""`edgedet demo`: the pipeline end to end on the embedded default, with no downloads.

Export the shipped yolox-nano demo checkpoint (random weights, said loudly, where an
installation has none) to ONNX, run ``infer`` on ``examples/images``, and, with trained
weights, evaluate the ONNX model on a freshly generated synthetic validation set.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

__all__ = ["run_demo"]

EXAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "examples" / "images"


def run_demo(out: Path = Path("runs/demo"), echo: Callable[[str], None] = print, eval_images: int = 50,
             images: Optional[Path] = None) -> dict:
    """Run the demo into ``out`` and return what it measured."""
    from edgedet import demo_checkpoint
    from edgedet.tables import format_table
    from exporters import export_model

    from .runtime import Detector
    from .runtime.infer import infer_images
    from .runtime.sources import resolve_source

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    try:
        ckpt = demo_checkpoint()
    except FileNotFoundError as e:
        ckpt = None
        echo(f"note: {e}; the demo runs on random weights")
    model_path = out / "yolox-nano.onnx"
    echo("[1/3] export yolox-nano to ONNX (simplify, metadata, parity check)")
    result = export_model("yolox-nano", model_path, ckpt=ckpt, echo=lambda m: echo("      " + m))
    echo("[2/3] infer on the example images")
    source = resolve_source(str(images or EXAMPLE_IMAGES))
    detector = Detector(model_path, threads=1)
    summary = infer_images(detector, source, out / "infer")
    rows = [("fp32 ONNX", f"{result.size_mb:.1f}", f"{summary.images_per_second:.1f}", str(summary.detections))]
    metrics = None
    if ckpt is not None and eval_images:
        echo(f"[3/3] evaluate on {eval_images} new synthetic validation images (seed 1)")
        from .data.coco import CocoDetection
        from .data.synth_dataset import write_synth_dataset
        from .eval import EVAL_CONF, EVAL_IOU, evaluate_detector

        data = write_synth_dataset(out / "synth-val", {"val": eval_images}, size=(416, 416), seed=1)
        evaluator = Detector(model_path, conf=EVAL_CONF, iou=EVAL_IOU, threads=None)
        metrics = evaluate_detector(evaluator, CocoDetection.from_dir(data, "val"))
        rows = [r + (f"{metrics.AP:.3f}", f"{metrics.AP50:.3f}") for r in rows]
    else:
        echo("[3/3] evaluation skipped (no trained weights)")
        rows = [r + ("-", "-") for r in rows]
    echo("")
    echo(format_table(("model", "MB", "infer img/s", "detections", "AP", "AP50"), rows))
    echo(f"\noutputs: {model_path}, {out / 'infer'} (predictions.jsonl, coco_results.json, images/)"
         f"; finished in {time.perf_counter() - start:.0f}s")
    return {"export": result, "infer": summary, "metrics": metrics}
