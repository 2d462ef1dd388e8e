"""`edgedet export --all-sizes`: every zoo size, each in a fresh process so that its time
and peak memory are its own."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["ZooExportRow", "export_all_sizes"]


@dataclass
class ZooExportRow:
    model_name: str
    input_size: Tuple[int, int]
    path: Optional[str]
    nodes_before: Optional[int]
    nodes_after: Optional[int]
    size_mb: Optional[float]
    parity_rel: Optional[float]
    seconds: float
    peak_mb: Optional[float]
    error: Optional[str] = None


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _export_one(name: str, out_dir: str, kwargs: Dict[str, Any]) -> ZooExportRow:
    import torch

    from .export import export_model

    torch.set_num_threads(kwargs.pop("threads", None) or torch.get_num_threads())
    start = time.perf_counter()
    path = Path(out_dir) / f"{name}.onnx"
    result = export_model(name, path, echo=lambda _msg: None, **kwargs)
    report = result.simplify
    return ZooExportRow(
        name, result.metadata.input_size, str(path),
        report.nodes_before if report else None, result.nodes, result.size_mb,
        result.parity.worst_rel, time.perf_counter() - start, _peak_rss_mb(),
    )


def export_all_sizes(
    out_dir: Path,
    names: List[str],
    on_row: Callable[[ZooExportRow], None] = lambda _row: None,
    on_start: Callable[[int, str], None] = lambda _i, _name: None,
    **kwargs: Any,
) -> List[ZooExportRow]:
    """Export each model in ``names`` to ``out_dir/<name>.onnx``, in one child process each.

    ``kwargs`` are passed to ``export_model``. A failing size does not stop the others; its
    row carries the error. ``on_start(i, name)`` (1-based) is called as each size begins and
    ``on_row(row)`` as it ends. Returns one row per size, in order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    rows = []
    for i, name in enumerate(names, 1):
        on_start(i, name)
        start = time.perf_counter()
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            try:
                row = pool.submit(_export_one, name, str(out_dir), dict(kwargs)).result()
            except Exception as e:  # reported per size; the run goes on
                size = kwargs.get("input_size") or None
                row = ZooExportRow(name, size, None, None, None, None, None, time.perf_counter() - start, None,
                                   error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        on_row(row)
        rows.append(row)
    return rows
