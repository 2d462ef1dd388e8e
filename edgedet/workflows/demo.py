"""`edgedet demo`: the pipeline end to end on the embedded default, with no downloads.

Export the shipped yolox-nano demo checkpoint (random weights, said loudly, where an
installation has none) to fp32 ONNX, quantize it to INT8 on newly generated synthetic
training images, run ``infer`` on the shipped example images (``edgedet.example_images()``),
evaluate both models on a newly generated synthetic validation set (another seed), benchmark
both, and print one table.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def run_demo(out: Path = Path("runs/demo"), echo: Callable[[str], None] = log.info, eval_images: int = 100,
             calib_images: int = 100, images: Optional[Path] = None, bench_iters: int = 30) -> dict:
    """Run the demo into ``out`` and return what it measured."""
    from edgedet.calibration import quantize_model
    from edgedet import demo_checkpoint, example_images
    from edgedet.tables import format_table
    from edgedet.exporters import export_model

    from edgedet.data.coco import CocoDetection
    from edgedet.data.synth_dataset import write_synth_dataset
    from edgedet.eval import EVAL_CONF, EVAL_IOU, evaluate_detector
    from edgedet.runtime import Detector
    from edgedet.runtime.bench import benchmark
    from edgedet.runtime.infer import infer_images
    from edgedet.runtime.sources import resolve_source

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    try:
        ckpt = demo_checkpoint()
    except FileNotFoundError as e:
        ckpt = None
        echo(f"note: {e}; the demo runs on random weights")
    fp32_path, int8_path = out / "yolox-nano.onnx", out / "yolox-nano-int8.onnx"
    echo("[1/5] export yolox-nano to ONNX (simplify, metadata, parity check against PyTorch)")
    exported = export_model("yolox-nano", fp32_path, ckpt=ckpt, echo=lambda m: echo("      " + m))
    echo(f"[2/5] quantize to INT8 on {calib_images} new synthetic training images")
    data = write_synth_dataset(out / "synth", {"train": calib_images, "val": eval_images}, size=(416, 416), seed=1)
    quantized = quantize_model(fp32_path, data, int8_path, num_images=calib_images, cache_dir=out / "calib-cache",
                               measure_latency=False)
    echo(f"      {quantized.qdq_nodes} Q/DQ nodes, {len(quantized.excluded)} tail nodes kept in float")
    echo("[3/5] infer on the example images")
    summary = infer_images(Detector(fp32_path, threads=1), resolve_source(str(images or example_images())), out / "infer")
    metrics = {}
    if ckpt is not None and eval_images:
        echo(f"[4/5] evaluate both on {eval_images} new synthetic validation images")
        dataset = CocoDetection.from_dir(data, "val")
        for name, path in (("fp32", fp32_path), ("int8", int8_path)):
            metrics[name] = evaluate_detector(Detector(path, conf=EVAL_CONF, iou=EVAL_IOU), dataset)
    else:
        echo("[4/5] evaluation skipped (random weights)")
    echo("[5/5] benchmark both (1 thread, interleaved)")
    bench = benchmark([str(fp32_path), str(int8_path)], providers="cpu", threads=1, iters=bench_iters, warmup=2)
    rows = []
    for name, b in zip(("fp32", "int8"), bench):
        m = metrics.get(name)
        rows.append((name, f"{m.AP:.3f}" if m else "-", f"{m.AP50:.3f}" if m else "-", f"{b.p50_ms:.1f}",
                     f"{b.images_per_s:.1f}", f"{b.size_mb:.2f}"))
    echo("")
    echo(format_table(("yolox-nano", "AP", "AP50", "p50 ms", "img/s", "MB"), rows))
    lost = metrics["fp32"].AP - metrics["int8"].AP if metrics else 0.0
    if lost > 0.005:
        echo(f"\nplain INT8 lost {lost:.3f} AP. To win it back by fine-tuning the weights through the same "
             f"quantization (2 epochs: 0.0085 AP lost instead, about 25 min on 2 cores; docs/int8.md):\n"
             f"  edgedet qat --ckpt demo --data TRAINDATA --epochs 2 -o runs/qat\n"
             f"or to keep the most sensitive layers in float until the loss is within a budget:\n"
             f"  edgedet quantize {fp32_path} --calib {data} --eval VALDATA --max-ap-drop 0.01\n"
             f"  (TRAINDATA: a COCO-format set with a train split, e.g. edgedet data synth; VALDATA: one with a val "
             f"split, other than the one you report AP on)")
    echo(f"\noutputs: {fp32_path}, {int8_path}, {out / 'infer'} (predictions.jsonl, coco_results.json, images/), "
         f"{data}; {summary.done} example images, {summary.detections} detections; "
         f"finished in {time.perf_counter() - start:.0f}s")
    return {"export": exported, "quantize": quantized, "infer": summary, "metrics": metrics, "bench": bench}
