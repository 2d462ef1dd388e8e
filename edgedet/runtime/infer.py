"""`edgedet infer`: a Detector over folders, globs, videos and cameras, with outputs that
survive interruption.

Images are processed by a few worker threads, each running the whole pipeline (read,
letterbox, inference, post-processing, drawing) on its own batch: OpenCV and ONNX Runtime
release the GIL, so with one ONNX Runtime thread per worker the cores are shared between
decoding and inference instead of decoding waiting on inference.

Outputs in ``out_dir``:

- ``predictions.jsonl``: one line per image, appended as each image completes (one
  ``write`` per line), rewritten in source order at the end;
- ``coco_results.json``: COCO results format, written at the end (atomically);
- ``images/``: annotated copies, unless ``save_images`` is False (each written atomically);
- ``summary.json``: counts, failures with reasons, time.

``resume=True`` keeps the images already in ``predictions.jsonl`` and does the rest; the
final files equal an uninterrupted run's.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2

from .detections import coco_result
from .detector import Detector
from .progress import ProgressCallback, report
from .fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, check_writable, json_safe_path
from .sources import ImageLocation, Source, is_uri, read_image

__all__ = ["InferSummary", "infer_source", "infer_images", "infer_video", "default_workers", "annotated_names",
           "run_settings", "check_resume", "process_chunk", "write_outputs", "run_items", "RUN_MANIFEST"]



@dataclass
class InferSummary:
    total: int = 0
    done: int = 0  # processed in this run
    resumed: int = 0  # already done by an earlier run
    failures: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)
    detections: int = 0
    seconds: float = 0.0
    out_dir: Optional[Path] = None
    fatal: Optional[str] = None  # why the run stopped early (a write that failed), if it did

    def report_to(self, progress: Optional[ProgressCallback]) -> None:
        """Send where the run stands (earlier runs' images count as done) as a progress event."""
        report(progress, "infer", self.resumed + self.done + len(self.failures), self.total,
               failed=len(self.failures), rate=self.images_per_second)

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> Dict:
        return {"total": self.total, "done": self.done, "resumed": self.resumed, "failed": len(self.failures),
                "failures": [{"path": p, "reason": r} for p, r in self.failures], "detections": self.detections,
                "seconds": round(self.seconds, 3), "images_per_second": round(self.images_per_second, 2)}


def _record(image_id: int, path: str, shape: Tuple[int, int], detections) -> Dict:
    return {"image_id": image_id, "path": path, "height": int(shape[0]), "width": int(shape[1]),
            "detections": detections.to_dicts()}


def _load_previous(jsonl: Path) -> Dict[str, Dict]:
    """Complete, parsable records of an earlier run, by path (a torn last line is dropped)."""
    records: Dict[str, Dict] = {}
    if not jsonl.is_file():
        return records
    for line in jsonl.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("path"), str):
            records[rec["path"]] = rec
    return records


ANNOTATED_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def annotated_names(rels: Sequence[str]) -> Dict[str, str]:
    """The one naming rule of ``images/``: each source's relative path, with ``.jpg`` appended when
    its format is not written as it is (``x.tiff`` -> ``x.tiff.jpg``, so ``x.jpg``, ``x.tiff`` and
    ``x.webp`` in one folder get three files), and ``~2``, ``~3`` ... before the suffix for any name
    that would still collide, compared case-insensitively (as macOS and Windows file systems do)."""
    names: Dict[str, str] = {}
    taken = set()
    for rel in rels:
        name = rel if Path(rel).suffix.lower() in ANNOTATED_SUFFIXES else rel + ".jpg"
        stem, suffix = name[: -len(Path(name).suffix)], Path(name).suffix
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}~{n}{suffix}"
        taken.add(candidate.lower())
        names[rel] = candidate
    return names


RUN_MANIFEST = "run.json"


def run_items(source: Source, out_dir: Path) -> List[Tuple[int, ImageLocation, str]]:
    """``(image id, path, relative path for the outputs)`` of each image a run processes, in source
    order, numbered from 1; images inside ``out_dir`` are left out (an output folder inside SOURCE
    must not be read back as input on the next run)."""
    inside = out_dir.resolve()
    images = [p for p in source.images if is_uri(p) or inside not in p.resolve().parents]
    return [(i + 1, p, json_safe_path(source.relative(p))) for i, p in enumerate(images)]


def run_settings(detector: Detector, save_images: bool) -> Dict:
    """What decides a run's outputs; ``--resume`` continues only a run with the same."""
    import hashlib

    digest = hashlib.sha256()
    with open(detector.model_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"model_sha256": digest.hexdigest(), "input_size": list(detector.input_size), "conf": detector.conf,
            "iou": detector.iou, "max_det": detector.max_det, "class_agnostic": detector.class_agnostic,
            "classes": list(detector.classes) if detector.classes is not None else None, "save_images": save_images}


def check_resume(out_dir: Path, settings: Dict, earlier_run: Optional[Path] = None) -> None:
    """Refuse to resume a run made with other ``settings``; ``earlier_run`` is what shows there
    was one (default: its predictions.jsonl)."""
    manifest = out_dir / RUN_MANIFEST
    if not (earlier_run or out_dir / "predictions.jsonl").exists():
        return
    try:
        earlier = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValueError(f"{out_dir}: --resume needs {RUN_MANIFEST} from the earlier run to check its settings, and "
                         f"it is missing or unreadable; run without --resume or use another -o") from None
    changed = [f"{k} {earlier.get(k)!r} -> {v!r}" if k != "model_sha256" else "another model file"
               for k, v in settings.items() if earlier.get(k) != v]
    if changed:
        raise ValueError(f"{out_dir}: the earlier run used other settings ({'; '.join(changed)}); resuming would mix "
                         f"them: run without --resume or use another -o")


def process_chunk(detector: Detector, chunk: List[Tuple[int, ImageLocation, str]], out_dir: Path, save_images: bool,
                  names: Dict[str, str]):
    """Worker: read, detect and (optionally) draw one batch. Returns per image
    ``(image_id, rel, record or None, reason or None)``."""
    loaded, results = [], []
    for image_id, path, rel in chunk:
        image, reason = read_image(path)
        if image is None:
            results.append((image_id, rel, None, reason))
        else:
            loaded.append((image_id, rel, image))
    if loaded:
        try:
            dets = detector.detect_batch([img for _, _, img in loaded])
        except Exception as e:  # a model failure on one batch is reported per image
            reason = f"inference failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            return results + [(i, rel, None, reason) for i, rel, _ in loaded]
        for (image_id, rel, image), det in zip(loaded, dets):
            if save_images:
                target = out_dir / "images" / names[rel]
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    ok, encoded = cv2.imencode(target.suffix, det.draw(image))
                    if not ok:
                        raise OSError(f"OpenCV could not encode {target.suffix}")
                    atomic_write_bytes(target, encoded.tobytes())
                except (OSError, cv2.error) as e:
                    results.append((image_id, rel, None, f"could not write the annotated image ({e})"))
                    continue
            results.append((image_id, rel, _record(image_id, rel, image.shape[:2], det), None))
    return results


def write_outputs(out_dir: Path, records: Dict[str, Dict], order: List[str], summary: InferSummary) -> None:
    """The run's files from its per-image ``records`` (by relative path): predictions.jsonl in
    source ``order``, coco_results.json and summary.json, each atomically."""
    ordered = [records[rel] for rel in order if rel in records]
    atomic_write_text(out_dir / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in ordered))
    coco = [coco_result(rec["image_id"], d["box"], d["score"], d["class_id"])
            for rec in ordered for d in rec["detections"]]
    atomic_write_json(out_dir / "coco_results.json", coco, indent=None)
    atomic_write_json(out_dir / "summary.json", summary.to_dict())


def default_workers() -> int:
    """Parallel pipelines when the caller names none: one per core, at most 4."""
    return min(os.cpu_count() or 1, 4)


def infer_source(detector: Detector, source: Source, out_dir: Path, *, save_images: bool = True, resume: bool = False,
                 workers: Optional[int] = None, batch: int = 1, max_frames: Optional[int] = None,
                 progress: Optional[ProgressCallback] = None) -> InferSummary:
    """Detect on what ``source`` holds: its images through ``infer_images`` (``workers`` pipelines,
    ``batch`` images per run, ``resume``), a video or camera through ``infer_video`` (up to
    ``max_frames``)."""
    if source.kind == "images":
        return infer_images(detector, source, out_dir, save_images=save_images, resume=resume, workers=workers,
                            batch=batch, progress=progress)
    return infer_video(detector, source, out_dir, save_video=save_images, max_frames=max_frames, progress=progress)


def infer_images(
    detector: Detector,
    source: Source,
    out_dir: Path,
    *,
    save_images: bool = True,
    resume: bool = False,
    workers: Optional[int] = None,
    batch: int = 1,
    progress: Optional[ProgressCallback] = None,
) -> InferSummary:
    """Detect on every image of ``source`` and write the outputs (see the module docstring).

    A file that cannot be read or decoded is listed in ``summary.failures`` with its
    reason and the run goes on. On KeyboardInterrupt the outputs so far are finalised
    (valid files, resumable) and the interrupt is re-raised.
    """
    try:
        check_writable(out_dir)
    except OSError as e:
        raise ValueError(str(e)) from None
    jsonl = out_dir / "predictions.jsonl"
    settings = run_settings(detector, save_images)
    if resume:
        check_resume(out_dir, settings)
    atomic_write_json(out_dir / RUN_MANIFEST, settings)
    items = run_items(source, out_dir)
    order = [rel for _, _, rel in items]
    names = annotated_names(order)
    records = _load_previous(jsonl) if resume else {}
    wanted = set(order)
    records = {rel: rec for rel, rec in records.items() if rel in wanted}
    if not resume:
        if jsonl.exists():
            jsonl.unlink()
        # A new run starts a new images/: annotations of an earlier run's images would otherwise stay.
        shutil.rmtree(out_dir / "images", ignore_errors=True)
    summary = InferSummary(total=len(items) + len(source.unreadable), resumed=len(records), out_dir=out_dir)
    summary.failures.extend(source.unreadable)
    summary.detections = sum(len(r["detections"]) for r in records.values())
    todo = [item for item in items if item[2] not in records]
    step = detector.batch or max(1, batch)
    chunks = [todo[i:i + step] for i in range(0, len(todo), step)]
    workers = workers or default_workers()
    start = time.perf_counter()
    fd = os.open(jsonl, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    previous_handler = None
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                _run_chunks(pool, detector, chunks, out_dir, save_images, names, workers, fd, jsonl, records,
                            summary, start, progress)
            except KeyboardInterrupt:
                # Finish cleanly: drop queued work, let running chunks end, then finalise. SIGINT is
                # ignored meanwhile: a second Ctrl-C inside the workers' ONNX Runtime calls aborts the
                # interpreter (exit 134) instead of raising.
                previous_handler = _ignore_sigint()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        os.close(fd)
        summary.seconds = time.perf_counter() - start
        position = {rel: i for i, rel in enumerate(order)}
        summary.failures.sort(key=lambda f: position.get(f[0], 0))
        try:
            write_outputs(out_dir, records, order, summary)
        except OSError as e:  # the run's own report must still reach the caller
            summary.fatal = (summary.fatal + "; " if summary.fatal else "") + f"could not write the outputs ({e})"
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    return summary


def _ignore_sigint():
    """Ignore further SIGINTs (main thread only); returns the handler to restore, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_chunks(pool, detector, chunks, out_dir, save_images, names, workers, fd, jsonl, records, summary, start,
                progress) -> None:
    """Keep a bounded number of chunks in flight, append each finished image to ``jsonl`` (``fd``)."""
    pending = set()
    queue = iter(chunks)
    for chunk in queue:  # keep a bounded number of chunks in flight
        pending.add(pool.submit(process_chunk, detector, chunk, out_dir, save_images, names))
        if len(pending) >= 2 * workers:
            break
    while pending:
        finished, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in finished:
            for image_id, rel, record, reason in future.result():
                if record is None:
                    summary.failures.append((rel, reason))
                    continue
                try:
                    os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))  # one write: no torn lines
                except OSError as e:  # full disk, quota: stop here, keep what is done, report
                    summary.fatal = f"{jsonl}: cannot write ({e.strerror or e}); stopped after {summary.done} images"
                    for f in pending:
                        f.cancel()
                    pending = set()
                    queue = iter(())
                    break
                records[rel] = record
                summary.done += 1
                summary.detections += len(record["detections"])
            nxt = next(queue, None)
            if nxt is not None:
                pending.add(pool.submit(process_chunk, detector, nxt, out_dir, save_images, names))
        summary.seconds = time.perf_counter() - start
        summary.report_to(progress)


def infer_video(
    detector: Detector,
    source: Source,
    out_dir: Path,
    *,
    save_video: bool = True,
    max_frames: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
) -> InferSummary:
    """Detect on each frame of a video file or camera. Writes ``predictions.jsonl`` (one
    line per frame) and, with ``save_video``, ``annotated.mp4`` (renamed into place when
    the run ends, so a partial video is never left under that name)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(source.video)
    if not capture.isOpened():
        raise ValueError(f"{source.video}: cannot open video or camera")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    name = str(source.video)
    summary = InferSummary(out_dir=out_dir)
    writer = None
    tmp_video = out_dir / ".annotated.tmp.mp4"
    lines: List[str] = []
    start = time.perf_counter()
    try:
        frame_id = 0
        while max_frames is None or frame_id < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            frame_id += 1
            det = detector(frame)
            rec = _record(frame_id, name, frame.shape[:2], det)
            rec["frame"] = frame_id
            lines.append(json.dumps(rec) + "\n")
            summary.done += 1
            summary.detections += len(det)
            if save_video:
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(det.draw(frame))
            summary.seconds = time.perf_counter() - start
            report(progress, "infer", summary.done, max_frames, rate=summary.images_per_second)
    finally:
        capture.release()
        summary.total = summary.done
        summary.seconds = time.perf_counter() - start
        if writer is not None:
            writer.release()
            os.replace(tmp_video, out_dir / "annotated.mp4")
        atomic_write_text(out_dir / "predictions.jsonl", "".join(lines))
        atomic_write_json(out_dir / "summary.json", summary.to_dict())
    return summary
