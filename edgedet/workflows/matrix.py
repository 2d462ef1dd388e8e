"""`edgedet matrix`: export, quantize, verify, evaluate and time every (size, precision) cell,
then report a table, JSON and a latency-vs-AP plot with its Pareto front.

Each finished cell is stored as ``cells/<size>-<precision>.json`` in the report folder, so
a re-run skips it (resume); a failing cell is recorded with its reason and the run goes on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from edgedet.runtime.fileio import atomic_write_json, atomic_write_text

__all__ = ["Cell", "run_matrix", "pareto_front"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class Cell:
    size: str
    precision: str
    status: str = "pending"  # ok | failed
    reason: str = ""
    ap: Optional[float] = None  # None: no weights, or not evaluated
    ap50: Optional[float] = None
    weights: str = "random"  # the checkpoint's file name, or "random"
    p50_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    images_per_s: Optional[float] = None
    size_mb: Optional[float] = None
    parity: Optional[float] = None  # worst relative difference against PyTorch (fp32/fp16)
    seconds: float = 0.0
    model: Optional[str] = None


def pareto_front(cells: Sequence[Cell]) -> List[Cell]:
    """Cells with AP for which no other cell is both faster and at least as accurate."""
    scored = sorted((c for c in cells if c.status == "ok" and c.ap is not None and c.p50_ms), key=lambda c: (c.p50_ms, -c.ap))
    front, best = [], -1.0
    for c in scored:
        if c.ap > best:
            front.append(c)
            best = c.ap
    return front


def _cell_path(out: Path, size: str, precision: str) -> Path:
    return out / "cells" / f"{size}-{precision}.json"


def _run_cell(cell: Cell, out: Path, ckpt: Optional[str], input_size, calib, data, provider, eval_limit, bench_iters,
              threads, echo) -> None:
    from edgedet.exporters import export_model

    from edgedet.runtime.bench import benchmark

    name = f"yolox-{cell.size}"
    fp32_path = out / "models" / f"{cell.size}-fp32.onnx"
    path = out / "models" / f"{cell.size}-{cell.precision}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    if cell.precision in ("fp32", "fp16") or not fp32_path.exists():
        target = path if cell.precision != "int8" else fp32_path
        result = export_model(name, target, ckpt=ckpt, input_size=input_size, fp16=cell.precision == "fp16",
                              echo=lambda _m: None)
        if cell.precision != "int8":
            cell.parity = result.parity.worst_rel
    if cell.precision == "int8":
        if not calib:
            raise ValueError("int8 needs --calib")
        from edgedet.calibration import quantize_model

        quantize_model(fp32_path, calib, path, measure_latency=False)
    cell.model = str(path)
    cell.size_mb = path.stat().st_size / 1e6
    if ckpt and data:
        from edgedet.data.coco import CocoDetection
        from edgedet.eval import EVAL_CONF, EVAL_IOU, evaluate_detector
        from edgedet.runtime import Detector

        m = evaluate_detector(Detector(path, providers=provider, conf=EVAL_CONF, iou=EVAL_IOU),
                              CocoDetection.from_dir(data, "val"), limit=eval_limit)
        cell.ap, cell.ap50 = m.AP, m.AP50
    (bench,) = benchmark([str(path)], providers=provider, threads=threads, iters=bench_iters, warmup=2)
    cell.p50_ms, cell.p90_ms, cell.images_per_s = bench.p50_ms, bench.p90_ms, bench.images_per_s


def run_matrix(
    sizes: Sequence[str], precisions: Sequence[str], out: Path, *, ckpts: Optional[Dict[str, str]] = None,
    input_size: Optional[Tuple[int, int]] = None, calib: Optional[str] = None, data: Optional[str] = None,
    provider: str = "auto", budget_ms: Optional[float] = None, eval_limit: Optional[int] = None,
    bench_iters: int = 30, threads: Optional[int] = None, echo: Callable[[str], None] = log.info,
) -> List[Cell]:
    """Run (or resume) the matrix into ``out`` and write ``report.md``, ``report.json``, ``pareto.png``."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ValueError(f"unknown precision {bad[0]!r}; valid: {', '.join(PRECISIONS)}")
    ckpts = ckpts or {}
    out.mkdir(parents=True, exist_ok=True)
    cells: List[Cell] = []
    for size in sizes:
        for precision in precisions:
            stored = _cell_path(out, size, precision)
            if stored.is_file():
                cell = Cell(**json.loads(stored.read_text()))
                if cell.status == "ok":
                    echo(f"{size} {precision}: done before, skipped")
                    cells.append(cell)
                    continue
            cell = Cell(size, precision, weights=Path(ckpts[size]).name if size in ckpts else "random")
            start = time.perf_counter()
            echo(f"{size} {precision}: export{', quantize' if precision == 'int8' else ''}, evaluate, benchmark ...")
            try:
                _run_cell(cell, out, ckpts.get(size), input_size, calib, data, provider, eval_limit, bench_iters,
                          threads, echo)
                cell.status = "ok"
            except Exception as e:  # recorded per cell; the matrix goes on
                cell.status = "failed"
                cell.reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                echo(f"{size} {precision}: FAILED ({cell.reason})")
            cell.seconds = time.perf_counter() - start
            stored.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(stored, asdict(cell))
            cells.append(cell)
    _write_reports(out, cells, budget_ms, echo)
    return cells


def _fmt(v, f):
    return f.format(v) if v is not None else "-"


def _write_reports(out: Path, cells: List[Cell], budget_ms: Optional[float], echo) -> None:
    from edgedet.tables import format_table

    header = ("size", "precision", "AP", "AP50", "p50 ms", "p90 ms", "img/s", "MB", "parity", "status")
    rows = []
    for c in cells:
        ap = _fmt(c.ap, "{:.4f}") if c.weights != "random" else "no weights"
        rows.append((c.size, c.precision, ap, _fmt(c.ap50, "{:.4f}") if c.weights != "random" else "no weights",
                     _fmt(c.p50_ms, "{:.2f}"), _fmt(c.p90_ms, "{:.2f}"), _fmt(c.images_per_s, "{:.1f}"),
                     _fmt(c.size_mb, "{:.1f}"), _fmt(c.parity, "{:.1e}"), c.status if c.status == "ok" else f"failed: {c.reason}"))
    table = format_table(header, rows)
    choice = ""
    if budget_ms is not None:
        within = [c for c in cells if c.status == "ok" and c.p50_ms is not None and c.p50_ms <= budget_ms]
        scored = [c for c in within if c.ap is not None]
        if scored:
            best = max(scored, key=lambda c: c.ap)
            choice = f"Most accurate within {budget_ms:g} ms: {best.size} {best.precision} (AP {best.ap:.4f}, p50 {best.p50_ms:.2f} ms)"
        elif within:
            fastest = min(within, key=lambda c: c.p50_ms)
            choice = f"Within {budget_ms:g} ms (no AP measured): fastest is {fastest.size} {fastest.precision} ({fastest.p50_ms:.2f} ms)"
        else:
            choice = f"No cell runs within {budget_ms:g} ms"
    front = pareto_front(cells)
    md = ["# edgedet deployment matrix", "", "```", table, "```", ""]
    if front:
        md.append("Pareto front (latency vs AP): " + ", ".join(f"{c.size} {c.precision}" for c in front))
    if choice:
        md.append(choice)
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    atomic_write_json(out / "report.json", {"cells": [asdict(c) for c in cells], "pareto": [f"{c.size}-{c.precision}" for c in front],
                                            "budget_ms": budget_ms, "choice": choice})
    _plot(out / "pareto.png", cells, front)
    echo(table)
    if choice:
        echo(choice)


def _plot(path: Path, cells: List[Cell], front: List[Cell]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # an optional dependency of the full install
        return
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    # One colour and marker per precision (the legend's), and one label offset per precision, so the
    # cells of one size, which sit close together, do not print over each other.
    styles = {"fp32": ("o", "C0", (4, 5)), "fp16": ("s", "C2", (4, 15)), "int8": ("^", "C3", (4, -11))}
    timed = [c for c in cells if c.status == "ok" and c.p50_ms is not None]
    for c in timed:
        y = c.ap if c.ap is not None else 0.0
        marker, colour, offset = styles.get(c.precision, ("o", "C7", (4, 5)))
        ax.scatter(c.p50_ms, y, marker=marker, color=colour, s=50, label=c.precision)
        ax.annotate(f"{c.size} {c.precision}", (c.p50_ms, y), textcoords="offset points", xytext=offset, fontsize=8)
    if timed and max(c.p50_ms for c in timed) > 5 * min(c.p50_ms for c in timed):
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")  # sizes span an order of magnitude in latency
        for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
            axis(FuncFormatter(lambda value, _pos: f"{value:g}"))
    if front:
        ax.plot([c.p50_ms for c in front], [c.ap for c in front], "k--", linewidth=1, label="Pareto front")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xlabel("latency p50 (ms)")
    ax.set_ylabel("AP50:95 (0 where no weights)")
    ax.set_title("edgedet: latency vs accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    from edgedet.runtime.fileio import atomic_write_bytes

    atomic_write_bytes(path, buffer.getvalue())
