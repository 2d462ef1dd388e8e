"""`edgedet infer --engine ray` against `--engine local` on this machine: images/s of each on the same
images and model, Ray's start-up timed apart (on a cluster it is paid once, not per job), and the
fixed cost every Ray job pays (its actor pool starting: a 2-image job) apart from the throughput.

    python benchmarks/infer_ray.py --images 300 --cpus 2

Default model: the demo checkpoint exported at its input size; images: synthetic 416x416 JPEGs.
Both engines use one ONNX Runtime thread per pipeline/actor and as many of them as CPUs.
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
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="edgedet .onnx (default: the demo checkpoint)")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for both engines (local Ray's num_cpus)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import ray

    from edgedet.data.synth_dataset import write_synth_dataset
    from edgedet.runtime import Detector
    from edgedet.runtime.infer import infer_images
    from edgedet.runtime.sources import Source, resolve_source
    from edgedet.workflows.ray_infer import infer_ray
    from int8_methods import demo_fp32

    with tempfile.TemporaryDirectory(prefix="edgedet-ray-bench-") as work:
        work = Path(work)
        model = args.model or demo_fp32(work)
        write_synth_dataset(work / "synth", {"val": args.images}, seed=3)
        source = resolve_source(str(work / "synth" / "images" / "val"))

        start = time.perf_counter()
        local = infer_images(Detector(model, threads=1), source, work / "local", save_images=False, workers=args.cpus)
        local_s = time.perf_counter() - start

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - start
        options = {"providers": "cpu", "threads": 1}
        start = time.perf_counter()
        remote = infer_ray(str(model), source, work / "ray", detector_options=options, save_images=False)
        ray_s = time.perf_counter() - start
        start = time.perf_counter()
        infer_ray(str(model), Source("images", source.images[:2], root=source.root), work / "ray-2",
                  detector_options=options, save_images=False)
        job_s = time.perf_counter() - start
        ray.shutdown()
        same = (work / "local" / "predictions.jsonl").read_text() == (work / "ray" / "predictions.jsonl").read_text()

    report = {"images": args.images, "cpus": args.cpus, "local_s": round(local_s, 2), "ray_s": round(ray_s, 2),
              "ray_init_s": round(init_s, 2), "local_images_per_s": round(local.done / local_s, 1),
              "ray_images_per_s": round(remote.done / ray_s, 1),
              "ray_images_per_s_with_init": round(remote.done / (ray_s + init_s), 1),
              "ratio": round(local_s / ray_s, 2), "ratio_with_init": round(local_s / (ray_s + init_s), 2),
              "ray_job_fixed_s": round(job_s, 2),
              "ratio_past_fixed_cost": round(local_s / max(ray_s - job_s, 1e-9), 2),
              "same_predictions": same}
    print(json.dumps(report))
    print(f"local {report['local_images_per_s']} img/s; ray {report['ray_images_per_s']} img/s "
          f"({report['ratio']}x local; {report['ratio_with_init']}x counting Ray's {init_s:.1f} s start-up; "
          f"{report['ratio_past_fixed_cost']}x past the {job_s:.1f} s every job pays); "
          f"same predictions: {same}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
