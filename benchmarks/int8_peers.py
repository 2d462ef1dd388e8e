"""edgedet's INT8 beside NNCF's on one fp32 model: same calibration images, same held-out images,
same evaluation, same latency runs (ORT CPU provider, 1 thread, fp32 and int8 interleaved).

    python benchmarks/int8_peers.py --calib data/synth --data data/synth-eval --num-images 200 \\
        --json docs/int8_peers.json

Rows: edgedet's default (``average`` ranges + per-channel scales at depthwise inputs), the ablations
that show what each part is worth (per-tensor scales only; the previous default, ``minmax`` per
tensor), and NNCF 3.4's ONNX backend (``nncf.quantize`` with its default preset and with MIXED).
Columns: AP, AP50, AP drop, int8/fp32 latency, seconds to quantize, Q/DQ node count.

``--speed-model yolox-s`` adds the latency ratio of edgedet's default on that size at its official
input (random weights: latency does not depend on them), calibrated on ``--speed-images`` images.
Default model: the demo checkpoint (yolox-nano) exported at its input size. Needs ``pip install nncf``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def qdq_nodes(path: Path) -> int:
    import onnx

    return sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in onnx.load(str(path)).graph.node)


def nncf_quantize(fp32: Path, out: Path, feeds: list, preset: str) -> None:
    """NNCF's post-training quantization of the ONNX file on ``feeds``, with edgedet's metadata
    copied over (precision int8) so the runtime and ``edgedet eval`` read it like ours."""
    import nncf
    import onnx

    from edgedet.calibration.quantize import read_metadata
    from edgedet.runtime.metadata import to_props
    from edgedet.onnx_graph import set_metadata

    model = onnx.load(str(fp32))
    kwargs = {"preset": nncf.QuantizationPreset.MIXED} if preset == "mixed" else {}
    quantized = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds), **kwargs)
    meta = read_metadata(model, fp32)
    set_metadata(quantized, to_props(meta.with_changes(precision="int8", calibration={"method": f"nncf-{preset}"})))
    onnx.save(quantized, str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="fp32 edgedet .onnx (default: the demo checkpoint)")
    parser.add_argument("--calib", required=True, help="calibration source (its train split)")
    parser.add_argument("--data", required=True, help="COCO-format set whose val split is evaluated")
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=40, help="latency runs per model")
    parser.add_argument("--no-nncf", action="store_true", help="edgedet rows only")
    parser.add_argument("--speed-model", default=None, help="also time edgedet's default on this zoo size")
    parser.add_argument("--speed-images", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import onnx

    from edgedet.calibration import CalibrationSet
    from edgedet.calibration.quantize import quantize_model, read_metadata
    from edgedet.runtime.bench import cpu_latency_ms
    from edgedet.data.coco import CocoDetection
    from edgedet.tables import format_table
    from edgedet.exporters import export_model
    from int8_methods import ap_scorer, demo_fp32

    dataset = CocoDetection.from_dir(args.data, "val")
    ap = ap_scorer(dataset, args.eval_limit)

    with tempfile.TemporaryDirectory(prefix="edgedet-int8-peers-") as work:
        work = Path(work)
        fp32 = args.model or demo_fp32(work)
        report = {"model": str(args.model or "demo checkpoint"), "calib": args.calib, "num_images": args.num_images,
                  "seed": args.seed, "eval": args.data, "eval_images": args.eval_limit or len(dataset),
                  "fp32": ap(fp32), "rows": {}}
        rows = [("fp32", report["fp32"]["AP"], report["fp32"]["AP50"], "-", "-", "-", "-")]

        def add_row(key: str, model: Path, seconds: float) -> None:
            scores = ap(model)
            ms = cpu_latency_ms({"fp32": str(fp32), "int8": str(model)}, rounds=args.rounds, threads=1)
            entry = {**scores, "ap_drop": round(report["fp32"]["AP"] - scores["AP"], 4),
                     "latency_ms": ms, "latency_ratio": round(ms["int8"] / ms["fp32"], 3),
                     "quantize_s": round(seconds, 1), "qdq_nodes": qdq_nodes(model)}
            report["rows"][key] = entry
            rows.append((key, entry["AP"], entry["AP50"], entry["ap_drop"], entry["latency_ratio"],
                         entry["quantize_s"], entry["qdq_nodes"]))
            print(json.dumps({key: entry}), flush=True)

        edgedet_rows = {
            "edgedet default (average, channel scales)": {},
            "edgedet average, per-tensor only": {"channel_scales": False},
            "edgedet minmax, per-tensor only (old default)": {"method": "minmax", "channel_scales": False},
        }
        for i, (key, options) in enumerate(edgedet_rows.items()):
            out = work / f"edgedet-{i}.onnx"
            start = time.perf_counter()
            quantize_model(fp32, args.calib, out, num_images=args.num_images, seed=args.seed, cache_dir=work / "cache",
                           measure_latency=False, **options)
            add_row(key, out, time.perf_counter() - start)

        if not args.no_nncf:
            fp32_model = onnx.load(str(fp32))
            meta = read_metadata(fp32_model, fp32)
            feeds = list(CalibrationSet(args.calib, meta, num_images=args.num_images, seed=args.seed,
                                        batch=meta.batch or 1, cache_dir=work / "cache",
                                        input_name=fp32_model.graph.input[0].name))
            for preset in ("default", "mixed"):
                out = work / f"nncf-{preset}.onnx"
                start = time.perf_counter()
                nncf_quantize(fp32, out, feeds, preset)
                add_row(f"NNCF {preset} preset", out, time.perf_counter() - start)

        if args.speed_model:
            name = args.speed_model
            s32, s8 = work / f"{name}.onnx", work / f"{name}-int8.onnx"
            export_model(name, s32, echo=lambda _m: None)
            quantize_model(s32, args.calib, s8, num_images=args.speed_images, seed=args.seed, cache_dir=work / "cache",
                           measure_latency=False)
            ms = cpu_latency_ms({"fp32": str(s32), "int8": str(s8)}, rounds=max(10, args.rounds // 4), threads=1)
            report["speed_model"] = {"model": name, "latency_ms": ms, "latency_ratio": round(ms["int8"] / ms["fp32"], 3)}
            print(json.dumps({"speed_model": report["speed_model"]}), flush=True)

    print(format_table(("quantizer", "AP", "AP50", "AP drop", "int8/fp32 latency", "quantize s", "Q/DQ nodes"), rows))
    if args.speed_model:
        s = report["speed_model"]
        print(f"{s['model']} (random weights), edgedet default: int8/fp32 latency {s['latency_ratio']} "
              f"({s['latency_ms']['int8']} / {s['latency_ms']['fp32']} ms)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
