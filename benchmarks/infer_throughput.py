"""Throughput of `edgedet infer` against the straightforward sequential pipeline and the
model alone, measured side by side in one run.

    python benchmarks/infer_throughput.py --model yolox-nano --images 300

- sequential: per image imread, letterbox, session.run (ONNX Runtime's default threads),
  numpy decode selection and NMS; the pipeline of the official ONNX Runtime demo.
- model-only: session.run on one pre-processed image, repeated (default threads).
- edgedet infer: ``infer_images`` with its worker pipelines (no annotated images, and with them).

It also checks that edgedet infer gives the same detections as the sequential pipeline,
and for a second model (default yolox-s at 640) the share of pre- plus post-processing in
the time of one image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgedet.runtime import Detector  # noqa: E402
from edgedet.runtime.infer import infer_images  # noqa: E402
from edgedet.runtime.sources import resolve_source  # noqa: E402


def make_images(folder: Path, count: int, size=(480, 640)) -> None:
    from edgedet.data.synth import render_sample

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), render_sample(rng, size).image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def export(model: str, ckpt: str | None, out: Path, input_size=None) -> Path:
    from edgedet.exporters import export_model

    export_model(model, out, ckpt=ckpt, input_size=input_size, echo=lambda _m: None)
    return out


def sequential(detector: Detector, paths) -> tuple[float, dict]:
    results = {}
    start = time.perf_counter()
    for p in paths:
        img = cv2.imread(str(p))
        blob, ratio = detector.preprocess(img)
        out = detector.run(blob[None])
        results[p.name] = detector.postprocess(out, [ratio], [img.shape[:2]])[0]
    return len(paths) / (time.perf_counter() - start), results


def model_only(detector: Detector, path: Path, seconds: float = 5.0) -> float:
    blob, _ = detector.preprocess(cv2.imread(str(path)))
    batch = blob[None]
    detector.run(batch)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        detector.run(batch)
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolox-nano")
    parser.add_argument("--ckpt", default=None, help="checkpoint (default: the reference weights generator)")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians are reported")
    parser.add_argument("--second-model", default="yolox-s", help="model for the pre/post share ('' to skip)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgedet-bench-"))
    try:
        ckpt = args.ckpt or _reference_ckpt(args.model, work)
        model = export(args.model, ckpt, work / "model.onnx")
        folder = work / "images"
        make_images(folder, args.images)
        paths = sorted(folder.glob("*.jpg"))
        seq_det = Detector(model, conf=args.conf)  # ONNX Runtime's default threads
        pipe_det = Detector(model, conf=args.conf, threads=1)
        rates = {"sequential": [], "model_only": [], "infer": [], "infer_with_images": []}
        same = True
        for _ in range(args.rounds):
            rate, seq_results = sequential(seq_det, paths)
            rates["sequential"].append(rate)
            rates["model_only"].append(model_only(seq_det, paths[0]))
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            summary = infer_images(pipe_det, resolve_source(str(folder)), out, save_images=False, workers=2)
            rates["infer"].append(summary.images_per_second)
            records = {json.loads(line)["path"]: json.loads(line) for line in (out / "predictions.jsonl").open()}
            for name, det in seq_results.items():
                got = records[name]["detections"]
                same &= len(got) == len(det) and all(
                    g["class_id"] == int(c) and abs(g["score"] - float(s)) < 1e-4
                    for g, c, s in zip(got, det.class_ids, det.scores))
            shutil.rmtree(out, ignore_errors=True)
            summary = infer_images(pipe_det, resolve_source(str(folder)), out, save_images=True, workers=2)
            rates["infer_with_images"].append(summary.images_per_second)
        med = {k: statistics.median(v) for k, v in rates.items()}
        report = {"model": args.model, "images": args.images, "rounds": args.rounds,
                  "images_per_second": {k: round(v, 1) for k, v in med.items()},
                  "infer_vs_sequential": round(med["infer"] / med["sequential"], 3),
                  "infer_vs_model_only": round(med["infer"] / med["model_only"], 3),
                  "same_detections": bool(same)}
        if args.second_model:
            report["pre_post_share"] = pre_post_share(args.second_model, work, paths[:20], args.conf)
        print(json.dumps(report, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pre_post_share(model_name: str, work: Path, paths, conf: float) -> dict:
    """Median per-image times of pre-processing, model and post-processing (default threads)."""
    model = export(model_name, _reference_ckpt(model_name, work), work / f"{model_name}.onnx")
    det = Detector(model, conf=conf)
    images = [cv2.imread(str(p)) for p in paths]
    pre, run, post = [], [], []
    det.run(det.preprocess(images[0])[0][None])
    for img in images:
        t0 = time.perf_counter()
        blob, ratio = det.preprocess(img)
        t1 = time.perf_counter()
        out = det.run(blob[None])
        t2 = time.perf_counter()
        det.postprocess(out, [ratio], [img.shape[:2]])
        t3 = time.perf_counter()
        pre.append(t1 - t0)
        run.append(t2 - t1)
        post.append(t3 - t2)
    p, r, q = (statistics.median(v) * 1000 for v in (pre, run, post))
    return {"model": model_name, "pre_ms": round(p, 2), "model_ms": round(r, 2), "post_ms": round(q, 2),
            "pre_post_over_model": round((p + q) / r, 3)}


def _reference_ckpt(model_name: str, work: Path) -> str:
    """A checkpoint with the deterministic reference weights (varied scores, like a trained model)."""
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "assets"))
    import ref_weights

    size = model_name.split("-")[-1]
    rows = ref_weights.keys_and_shapes_from_json(str(ROOT / "tests" / "assets" / f"state_dict_{size}.json"))
    path = work / f"{model_name}_reference.pth"
    torch.save({"model": {k: torch.from_numpy(v) for k, v in ref_weights.make_state_dict(rows).items()}}, path)
    return str(path)


if __name__ == "__main__":
    main()
