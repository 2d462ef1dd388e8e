"""Where an INT8 model's time goes on ONNX Runtime's CPU provider, by operator type, beside fp32.

ONNX Runtime's own profiler (one thread, batch 1) over the same random input; kernel time per run,
summed by operator type. With no files given it exports the demo yolox-nano and quantizes it twice
(the default, with channel scales, and per-tensor only) on a small synthetic calibration set:

    python benchmarks/int8_op_profile.py
    python benchmarks/int8_op_profile.py nano.onnx nano-int8.onnx --runs 50
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def op_profile(path: Path, runs: int, work: Path) -> Tuple[Dict[str, float], Dict[str, int]]:
    """Kernel milliseconds per run and node count, by operator type."""
    from edgedet.runtime.providers import cpu_session

    session = cpu_session(path, threads=1, profile_prefix=str(work / f"profile_{path.stem}"))
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    sample = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    total_runs = runs + 1  # the first run (allocations) is profiled too and averaged in
    for _ in range(total_runs):
        session.run(None, {inp.name: sample})
    trace = Path(session.end_profiling())
    micros: Dict[str, float] = collections.defaultdict(float)
    calls: Dict[str, int] = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event["args"]["op_name"]
            micros[op] += event["dur"]
            calls[op] += 1
    return ({op: us / total_runs / 1000 for op, us in micros.items()},
            {op: n // total_runs for op, n in calls.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, help=".onnx files (default: demo nano fp32 and two int8)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--top", type=int, default=10, help="operator types shown per model")
    parser.add_argument("--num-images", type=int, default=32, help="calibration images for the default models")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgedet-op-profile-") as tmp:
        work = Path(tmp)
        models = list(args.models)
        if not models:
            from edgedet import demo_checkpoint
            from edgedet.calibration.quantize import quantize_model
            from edgedet.data.synth_dataset import write_synth_dataset
            from edgedet.exporters import export_model

            fp32 = work / "nano.onnx"
            export_model("yolox-nano", fp32, ckpt=demo_checkpoint(), echo=lambda _m: None)
            calib = write_synth_dataset(work / "calib", {"train": args.num_images}, seed=5)
            models = [fp32]
            for name, channel_scales in (("nano-int8", True), ("nano-int8-per-tensor", False)):
                out = work / f"{name}.onnx"
                quantize_model(fp32, calib, out, num_images=args.num_images, channel_scales=channel_scales,
                               cache_dir=work / "cache", measure_latency=False)
                models.append(out)
        for path in models:
            ms, nodes = op_profile(path, args.runs, work)
            print(f"{path.name}: {sum(ms.values()):.2f} ms of kernel time per run")
            for op, t in sorted(ms.items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"  {op:<20} {t:7.2f} ms  {nodes[op]:4d} nodes")


if __name__ == "__main__":
    main()
