"""`edgedet infer --engine ray`: the same outputs as the local engine, computed on a Ray cluster.

Ray Data holds the file list; a pool of actors, each with its own ``Detector``, reads, decodes,
detects and (optionally) draws, with the local engine's own per-chunk code, so a bad file is a
failure row, never a failed job. Results are written by shards of the source order
(``OUT/shards/shard-NNNNN.jsonl``, each atomically, as soon as all its images are back); ``resume``
keeps the finished shards. At the end the shards are merged into the local engine's files:
``predictions.jsonl`` in source order, ``coco_results.json``, ``summary.json``.

Without an address a local Ray is started on this machine. On a cluster, every worker must be able
to read the images (URIs such as ``s3://`` or ``https://`` from a Parquet or text list, or paths on a
shared file system) and write ``OUT`` when images are saved.
Ray is an optional extra: ``pip install "edgedet[ray]"``.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgedet.runtime.detector import Detector
from edgedet.runtime.fileio import atomic_write_json, atomic_write_text, check_writable
from edgedet.runtime.infer import (RUN_MANIFEST, InferSummary, annotated_names, check_resume,
                                   process_chunk, run_items, run_settings, write_outputs)
from edgedet.runtime.progress import ProgressCallback
from edgedet.runtime.sources import Source, as_location

__all__ = ["RayUnavailable", "infer_ray", "SHARD_SIZE"]

SHARD_SIZE = 256  # images per shard: the unit that is written, and kept on --resume


class RayUnavailable(RuntimeError):
    """Ray is not installed (or cannot be reached)."""


class _DetectBatch:
    """A Ray Data callable class: one Detector per actor, the local engine's chunk code per batch."""

    def __init__(self, model: str, options: Dict, out_dir: str, save_images: bool, names: Dict[str, str]) -> None:
        self.detector = Detector(model, **options)
        self.out_dir, self.save_images, self.names = Path(out_dir), save_images, names

    def __call__(self, batch: Dict) -> Dict:
        import numpy as np

        chunk = [(int(i), as_location(str(p)), str(r)) for i, p, r in zip(batch["image_id"], batch["path"], batch["rel"])]
        rows = process_chunk(self.detector, chunk, self.out_dir, self.save_images, self.names)
        return {"image_id": np.array([r[0] for r in rows], dtype=np.int64),
                "rel": np.array([r[1] for r in rows], dtype=object),
                "record": np.array([json.dumps(r[2]) if r[2] is not None else "" for r in rows], dtype=object),
                "reason": np.array([r[3] or "" for r in rows], dtype=object)}


def _shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / "shards" / f"shard-{index:05d}.jsonl"


def _start_ray(address: Optional[str], num_cpus: Optional[int]):
    import os

    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # read when Ray Data configures its loggers
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayUnavailable('--engine ray needs Ray: pip install "edgedet[ray]"') from None
    import logging

    def quiet_loggers() -> None:  # edgedet reports progress and failures itself
        for name in ["ray", "ray.data", *(n for n in logging.root.manager.loggerDict if n.startswith("ray"))]:
            logging.getLogger(name).setLevel(logging.ERROR)

    quiet_loggers()
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
    # edgedet draws its own progress bar; Ray Data's per-operator bars and INFO lines would interleave.
    quiet_loggers()  # again: Ray configures its loggers at init
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def infer_ray(model: str, source: Source, out_dir: Path, *, detector_options: Optional[Dict] = None,
              save_images: bool = True, resume: bool = False, ray_address: Optional[str] = None,
              actors: Optional[int] = None, cpus_per_actor: float = 1, gpus_per_actor: float = 0,
              batch_size: int = 32, shard_size: int = SHARD_SIZE, num_cpus: Optional[int] = None,
              progress: Optional[ProgressCallback] = None, detector: Optional[Detector] = None) -> InferSummary:
    """Detect on every image of ``source`` with a pool of Ray actors and write the local engine's
    outputs in ``out_dir`` (see the module docstring). ``detector_options`` are ``Detector``
    keyword arguments (conf, iou, classes, providers, threads ...); ``num_cpus`` sizes a local
    Ray when no ``ray_address`` is given. ``detector``, when the caller has one built with the same
    options, stands in for the one made here to check the model and record the run's settings."""
    options = dict(detector_options or {})
    out_dir = Path(out_dir)
    try:
        check_writable(out_dir)
    except OSError as e:
        raise ValueError(str(e)) from None
    local = detector or Detector(model, **options)  # checks the model and options before any Ray work
    settings = {**run_settings(local, save_images), "engine": "ray", "shard_size": shard_size}
    if resume:
        check_resume(out_dir, settings, earlier_run=out_dir / "shards")
    else:  # a new run starts from nothing: no shards and no annotated images of an earlier one
        shutil.rmtree(out_dir / "shards", ignore_errors=True)
        shutil.rmtree(out_dir / "images", ignore_errors=True)
    atomic_write_json(out_dir / RUN_MANIFEST, settings)
    (out_dir / "shards").mkdir(exist_ok=True)

    items = run_items(source, out_dir)
    order = [rel for _, _, rel in items]
    names = annotated_names(order)
    shards = [items[i:i + shard_size] for i in range(0, len(items), shard_size)]
    pending = [k for k in range(len(shards)) if not _shard_path(out_dir, k).is_file()]
    summary = InferSummary(total=len(items) + len(source.unreadable), out_dir=out_dir)
    summary.resumed = sum(len(shards[k]) for k in range(len(shards)) if k not in pending)
    start = time.perf_counter()
    if pending:
        ray = _start_ray(ray_address, num_cpus)
        rows = [{"image_id": i, "path": str(p), "rel": rel, "shard": k}
                for k in pending for i, p, rel in shards[k]]
        dataset = ray.data.from_items(rows)
        free = ray.available_resources()
        workers = actors or (max(1, int(free.get("GPU", 0) // gpus_per_actor)) if gpus_per_actor
                             else max(1, int(free.get("CPU", 1) // max(cpus_per_actor, 1))))
        with warnings.catch_warnings():  # max_restarts goes through **ray_remote_args, deprecated in Ray 2.60
            warnings.simplefilter("ignore")
            results = dataset.map_batches(
                _DetectBatch, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None, batch_format="numpy",
                # a failed actor fails the run (which resumes by shards) instead of restarting mid-shard
                max_restarts=0,
                fn_constructor_kwargs={"model": str(Path(model).resolve()), "options": options,
                                       "out_dir": str(out_dir), "save_images": save_images, "names": names})
        shard_of = {rel: k for k in pending for _, _, rel in shards[k]}
        waiting: Dict[int, List[Tuple[int, str, str, str]]] = {k: [] for k in pending}
        for batch in results.iter_batches(batch_format="numpy", batch_size=None):
            for image_id, rel, record, reason in zip(batch["image_id"], batch["rel"], batch["record"], batch["reason"]):
                k = shard_of[str(rel)]
                waiting[k].append((int(image_id), str(rel), str(record), str(reason)))
                if record:
                    summary.done += 1
                else:
                    summary.failures.append((str(rel), str(reason)))
                if len(waiting[k]) == len(shards[k]):  # a complete shard: written at once, kept on resume
                    lines = sorted(waiting.pop(k))
                    atomic_write_text(_shard_path(out_dir, k), "".join(
                        json.dumps({"image_id": i, "rel": r, "record": rec, "reason": why}) + "\n"
                        for i, r, rec, why in lines))
            summary.seconds = time.perf_counter() - start
            summary.report_to(progress)
    # Merge every shard (this run's and earlier runs') into the local engine's files.
    records, failures = {}, []
    for k in range(len(shards)):
        for line in _shard_path(out_dir, k).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["record"]:
                records[row["rel"]] = json.loads(row["record"])
            else:
                failures.append((row["rel"], row["reason"]))
    summary.failures = list(source.unreadable) + failures
    summary.detections = sum(len(r["detections"]) for r in records.values())
    summary.seconds = time.perf_counter() - start
    write_outputs(out_dir, records, order, summary)
    return summary
