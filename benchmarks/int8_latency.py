"""INT8 against fp32 latency on the CPU provider, one thread, batch 1, interleaved medians,
for the activation types U8S8 (edgedet's CPU default) and S8S8 (TensorRT's).

    python benchmarks/int8_latency.py --model yolox-s --num-images 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolox-s")
    parser.add_argument("--ckpt", default=None, help="weights (default random: latency does not depend on them)")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--num-images", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calib", default=None, help="calibration source (default: a small synthetic set)")
    parser.add_argument("--exclude", default="auto")
    parser.add_argument("--op-types", default=None, help="comma-separated operator types to quantize (default: all)")
    args = parser.parse_args()

    from edgedet.calibration.quantize import quantize_model
    from edgedet.runtime.bench import cpu_latency_ms
    from edgedet.data.synth_dataset import write_synth_dataset
    from edgedet.exporters import export_model

    with tempfile.TemporaryDirectory(prefix="edgedet-int8-") as work:
        work = Path(work)
        size = (args.input_size, args.input_size) if args.input_size else None
        fp32 = work / "fp32.onnx"
        export_model(args.model, fp32, ckpt=args.ckpt, input_size=size, echo=lambda _m: None)
        calib = args.calib or write_synth_dataset(work / "calib", {"train": args.num_images}, seed=5)
        report = {"model": args.model, "threads": 1, "batch": 1, "op_types": args.op_types or "all"}
        for target, label in (("cpu", "U8S8"), ("tensorrt", "S8S8")):
            out = work / f"{label}.onnx"
            quantize_model(fp32, calib, out, num_images=args.num_images, target=target, exclude=args.exclude,
                           cache_dir=work / "cache", measure_latency=False,
                           op_types=args.op_types.split(",") if args.op_types else None)
            ms = cpu_latency_ms({"fp32": str(fp32), "int8": str(out)}, rounds=args.rounds, threads=1)
            report[label] = {**ms, "ratio": round(ms["int8"] / ms["fp32"], 3)}
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
