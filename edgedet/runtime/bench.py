"""`edgedet bench`: latency and throughput of ONNX models, timed interleaved.

Models given together run in turns (A B A B ...) so that drift of a noisy machine hits
them alike, and each is reported with its ratio to the first.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from .detector import Detector
from .progress import ProgressCallback, report

__all__ = ["BenchResult", "benchmark", "time_interleaved", "cpu_latency_ms", "matmul_peak_gflops", "current_rss_mb"]


@dataclass
class BenchResult:
    model: str
    provider: str
    size_mb: float
    batch: int
    session_ms: float  # cold start: session creation
    first_run_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    images_per_s: float
    e2e_p50_ms: Optional[float] = None  # decode a real image + letterbox + run + post-process
    e2e_images_per_s: Optional[float] = None
    rss_mb: float = 0.0  # resident memory added by this model's session and first run
    gflops: Optional[float] = None  # per image, from the metadata
    achieved_gflops_per_s: Optional[float] = None
    iterations: int = 0
    ratios: Dict[str, float] = field(default_factory=dict)  # p50 and images/s relative to the first model

    def to_dict(self) -> Dict:
        return asdict(self)


def current_rss_mb() -> float:
    """Resident memory now (Linux /proc; elsewhere the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def matmul_peak_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """This machine's measured fp32 matrix-multiply throughput (numpy's BLAS), GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2 * n ** 3 * runs / (time.perf_counter() - start) / 1e9


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_interleaved(runs: Mapping[str, Callable[[], object]], *, rounds: Optional[int] = 50,
                     seconds: Optional[float] = None, warmup: int = 1,
                     progress: Optional[ProgressCallback] = None) -> Dict[str, List[float]]:
    """Milliseconds of each call of ``runs``, called in turns (A B A B ...) so that a noisy
    machine's drift hits them alike: ``rounds`` rounds, or as many as fit in ``seconds``, after
    ``warmup`` untimed rounds. A progress event every 10 rounds."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: Dict[str, List[float]] = {name: [] for name in runs}
    deadline = time.perf_counter() + seconds if seconds else None
    total = None if deadline else (rounds or 50)
    done = 0
    while (deadline is None and done < total) or (deadline is not None and time.perf_counter() < deadline):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
        done += 1
        if done % 10 == 0:
            report(progress, "bench", done, total)
    return times


def cpu_latency_ms(models: Mapping[str, Union[str, bytes]], *, sample: Optional[np.ndarray] = None, rounds: int = 20,
                   threads: int = 1) -> Dict[str, float]:
    """Median latency (ms) of raw ONNX ``models`` (paths or serialized bytes, one input) on the CPU
    provider with the same threads, timed interleaved on ``sample`` (default: a random image
    batch of the first model's input shape)."""
    from .providers import cpu_session

    sessions = {name: cpu_session(m, threads) for name, m in models.items()}
    inp = next(iter(sessions.values())).get_inputs()[0]
    if sample is None:
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        sample = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    times = time_interleaved({name: (lambda s=s: s.run(None, {inp.name: sample})) for name, s in sessions.items()},
                             rounds=rounds)
    return {name: round(statistics.median(t), 3) for name, t in times.items()}


def benchmark(
    models: Sequence[str],
    providers: str = "auto",
    threads: Optional[int] = None,
    batch: int = 1,
    warmup: int = 3,
    iters: Optional[int] = 50,
    seconds: Optional[float] = None,
    end_to_end: Optional[Path] = None,
    progress: Optional[ProgressCallback] = None,
) -> List[BenchResult]:
    """Benchmark ``models`` interleaved. ``end_to_end`` is an image file to decode for the
    end-to-end timing (read, letterbox, run, post-process), or None to skip it."""
    import cv2

    detectors, results = [], []
    for path in models:
        before = current_rss_mb()
        start = time.perf_counter()
        det = Detector(path, providers=providers, threads=threads, max_batch=batch)
        session_ms = (time.perf_counter() - start) * 1000
        b = det.batch or batch
        blob = np.random.default_rng(0).uniform(0, 255, (b, 3, *det.input_size)).astype(np.float32)
        start = time.perf_counter()
        det.run(blob)
        first_ms = (time.perf_counter() - start) * 1000
        results.append(BenchResult(
            model=str(path), provider=det.session_info.provider, size_mb=Path(path).stat().st_size / 1e6, batch=b,
            session_ms=session_ms, first_run_ms=first_ms, p50_ms=0, p90_ms=0, p99_ms=0, mean_ms=0, images_per_s=0,
            rss_mb=max(current_rss_mb() - before, 0.0), gflops=det.metadata.gflops,
        ))
        detectors.append((det, blob))
    timed = time_interleaved({str(k): (lambda d=det, b=blob: d.run(b)) for k, (det, blob) in enumerate(detectors)},
                             rounds=iters, seconds=seconds, warmup=warmup, progress=progress)
    times = [timed[str(k)] for k in range(len(detectors))]
    image = cv2.imread(str(end_to_end)) if end_to_end else None
    if end_to_end is not None and image is None:
        raise ValueError(f"{end_to_end}: cannot read the end-to-end image")
    e2e: List[List[float]] = [[] for _ in detectors]
    if image is not None:
        data = Path(end_to_end).read_bytes()

        def end_to_end_run(det: Detector, batch: int) -> None:  # decode + letterbox + run + post-process
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            det.detect_batch([decoded] * batch)

        timed = time_interleaved({str(k): (lambda d=det, b=results[k].batch: end_to_end_run(d, b))
                                  for k, (det, _) in enumerate(detectors)},
                                 rounds=max(len(times[0]) // 2, 5), warmup=0)
        e2e = [timed[str(k)] for k in range(len(detectors))]
    for k, r in enumerate(results):
        t = times[k]
        r.iterations = len(t)
        r.p50_ms, r.p90_ms, r.p99_ms = (_percentile(t, q) for q in (50, 90, 99))
        r.mean_ms = statistics.fmean(t)
        r.images_per_s = r.batch * 1000 / r.p50_ms
        if r.gflops:
            r.achieved_gflops_per_s = r.gflops * r.images_per_s
        if e2e[k]:
            r.e2e_p50_ms = _percentile(e2e[k], 50)
            r.e2e_images_per_s = r.batch * 1000 / r.e2e_p50_ms
    base = results[0]
    for r in results:
        r.ratios = {"p50": r.p50_ms / base.p50_ms, "images_per_s": r.images_per_s / base.images_per_s}
    return results
