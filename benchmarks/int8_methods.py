"""INT8 calibration methods side by side: MinMax, Entropy and Percentile on one fp32 model, with
the same calibration images, evaluated on the same validation set (official eval settings), and
the int8 / fp32 latency (CPU provider, one thread, interleaved medians).

    python benchmarks/int8_methods.py --calib data/synth --data data/synth-eval --num-images 200

Default model: the shipped demo checkpoint (yolox-nano), exported at its training size.

With ``--max-ap-drop X --select DATA2`` each method also gets an accuracy-aware row: the
``edgedet quantize --max-ap-drop`` loop chooses which layers stay in float by AP on DATA2's val
split, and the chosen model is then evaluated on ``--data`` like the others, so the reported drop
is measured on images the choice never saw.

    python benchmarks/int8_methods.py --calib data/synth --data data/synth-eval --num-images 200 \
        --max-ap-drop 0.005 --select data/synth-select --methods minmax
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ap_scorer(dataset, limit: Optional[int] = None) -> Callable[[Path], dict]:
    """``ap(model_path) -> {"AP", "AP50"}`` on ``dataset`` with the official eval settings, 1 thread."""
    from edgedet.eval import EVAL_CONF, EVAL_IOU, evaluate_detector
    from edgedet.runtime import Detector

    def ap(path: Path) -> dict:
        detector = Detector(path, providers="cpu", conf=EVAL_CONF, iou=EVAL_IOU, threads=1)
        metrics = evaluate_detector(detector, dataset, limit=limit)
        return {"AP": round(metrics.AP, 4), "AP50": round(metrics.AP50, 4)}

    return ap


def demo_fp32(folder: Path) -> Path:
    """The demo checkpoint exported (fp32, at its input size) into ``folder``."""
    from edgedet import demo_checkpoint
    from edgedet.exporters import export_model

    path = folder / "demo-nano.onnx"
    export_model("yolox-nano", path, ckpt=demo_checkpoint(), echo=lambda _m: None)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="fp32 edgedet .onnx (default: the demo checkpoint)")
    parser.add_argument("--calib", required=True, help="calibration source (its train split)")
    parser.add_argument("--data", required=True, help="COCO-format set whose val split is evaluated")
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="minmax,entropy,percentile")
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=30, help="latency runs per model")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--max-ap-drop", type=float, default=None,
                        help="add an accuracy-aware row per method, chosen on --select")
    parser.add_argument("--select", default=None, help="COCO-format set whose val split the accuracy-aware loop uses")
    parser.add_argument("--select-limit", type=int, default=100)
    args = parser.parse_args()
    if (args.max_ap_drop is None) != (args.select is None):
        parser.error("--max-ap-drop and --select go together")

    from edgedet.calibration.quantize import quantize_model
    from edgedet.runtime.bench import cpu_latency_ms
    from edgedet.data.coco import CocoDetection
    from edgedet.tables import format_table

    dataset = CocoDetection.from_dir(args.data, "val")
    ap = ap_scorer(dataset, args.eval_limit)

    with tempfile.TemporaryDirectory(prefix="edgedet-int8-methods-") as work:
        work = Path(work)
        fp32 = args.model or demo_fp32(work)
        report = {"model": str(args.model or "demo checkpoint"), "calib": args.calib, "num_images": args.num_images,
                  "seed": args.seed, "eval": args.data, "eval_images": args.eval_limit or len(dataset),
                  "fp32": ap(fp32), "methods": {}}
        rows = [("fp32", report["fp32"]["AP"], report["fp32"]["AP50"], "-", "-", "-")]

        def add_row(key: str, label: str, model: Path, seconds: float, **extra) -> None:
            """Evaluate and time one int8 model against fp32; one table row and one report entry."""
            scores = ap(model)
            ms = cpu_latency_ms({"fp32": str(fp32), "int8": str(model)}, rounds=args.rounds, threads=1)
            entry = {**scores, "ap_drop": round(report["fp32"]["AP"] - scores["AP"], 4),
                     "calibration_s": round(seconds, 1), "latency_ms": ms,
                     "latency_ratio": round(ms["int8"] / ms["fp32"], 3), **extra}
            report["methods"][key] = entry
            rows.append((label, entry["AP"], entry["AP50"], entry["ap_drop"], entry["latency_ratio"],
                         entry["calibration_s"]))
            print(json.dumps({key: entry}), flush=True)

        for method in args.methods.split(","):
            out = work / f"{method}.onnx"
            start = time.perf_counter()
            result = quantize_model(fp32, args.calib, out, num_images=args.num_images, seed=args.seed, method=method,
                                    percentile=args.percentile, cache_dir=work / "cache", measure_latency=False)
            add_row(method, method, out, time.perf_counter() - start, calibration_images=result.num_images)
            if args.max_ap_drop is not None:
                from edgedet.calibration.accuracy import accuracy_aware_quantize

                aware = work / f"{method}-aware.onnx"
                start = time.perf_counter()
                found = accuracy_aware_quantize(fp32, args.calib, aware, args.select, args.max_ap_drop,
                                                eval_limit=args.select_limit, measure_latency=False,
                                                echo=lambda line: print(line, flush=True),
                                                num_images=args.num_images, seed=args.seed, method=method,
                                                percentile=args.percentile, cache_dir=work / "cache")
                seconds = time.perf_counter() - start
                if not found.within_budget:
                    rows.append((f"{method} aware", "-", "-", "none within budget", "-", round(seconds, 1)))
                    continue
                add_row(f"{method}-aware", f"{method} + {len(found.excluded)} float", aware, seconds,
                        nodes_in_float=len(found.excluded),
                        select={"data": args.select, "images": args.select_limit, "fp32_ap": round(found.fp32_ap, 4),
                                "int8_ap": round(found.int8_ap, 4)})
    print(format_table(("method", "AP", "AP50", "AP drop", "int8/fp32 latency", "calibration s"), rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
