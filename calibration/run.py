"""`edgedet quantize` as one library call: the plain or the accuracy-aware path, AP when asked,
and the report (printed by the CLI, written as JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

from .quantize import QuantizeError, QuantizeResult, check_eval_data, evaluate_pair, quantize_model

__all__ = ["QuantizeRun", "run_quantize"]


@dataclass
class QuantizeRun:
    result: QuantizeResult
    report: Dict  # QuantizeResult.report() with "ap" (and the accuracy-aware steps) when measured

    def rows(self):
        """(precision, MB, latency ms, AP) rows of the closing table."""
        r, ap = self.result, self.report.get("ap")
        rows = [("fp32", r.fp32_mb, r.latency_ms.get("fp32", 0.0), ap["fp32"]["AP"] if ap else None),
                ("int8", r.int8_mb, r.latency_ms.get("int8", 0.0), ap["int8"]["AP"] if ap else None)]
        if r.fp16:
            rows.append(("fp16", r.fp16["size_mb"], r.latency_ms.get("fp16", 0.0),
                         ap["fp16"]["AP"] if ap and "fp16" in ap else None))
        return rows


def run_quantize(model: Union[str, Path], calib: Union[str, Path], output: Union[str, Path], *,
                 eval_data: Optional[Union[str, Path]] = None, eval_limit: Optional[int] = None,
                 max_ap_drop: Optional[float] = None, max_steps: int = 10,
                 echo: Callable[[str], None] = lambda _line: None,
                 progress: Optional[Callable[[int, int], None]] = None, **quant_kwargs) -> QuantizeRun:
    """Quantize ``model`` to ``output``: with ``max_ap_drop`` (needs ``eval_data``) through the
    accuracy-aware loop, else plainly, evaluating fp32 and int8 on ``eval_data`` when given.
    ``quant_kwargs`` go to ``quantize_model``. Raises QuantizeError (nothing written) when the
    request cannot run or no model is within the budget."""
    model, output = Path(model), Path(output)
    if max_ap_drop is not None:
        if eval_data is None:
            raise QuantizeError("max_ap_drop needs eval_data to measure AP on")
        from .accuracy import accuracy_aware_quantize

        found = accuracy_aware_quantize(model, calib, output, eval_data, max_ap_drop, max_steps=max_steps,
                                        eval_limit=eval_limit, echo=echo, progress=progress, **quant_kwargs)
        if not found.within_budget:
            raise QuantizeError(f"no INT8 model within an AP drop of {max_ap_drop}")
        report = found.quantized.report()
        report["ap"] = {"fp32": {"AP": round(found.fp32_ap, 4)}, "int8": {"AP": round(found.int8_ap, 4)},
                        "ap_drop": round(found.fp32_ap - found.int8_ap, 4)}
        report["accuracy_steps"] = [vars(step) for step in found.steps]
        report["sensitivity_top"] = found.sensitivity[:20]
        return QuantizeRun(found.quantized, report)
    if eval_data is not None:
        check_eval_data(model, eval_data)  # before any work: a mismatch leaves no file
    result = quantize_model(model, calib, output, progress=progress, **quant_kwargs)
    report = result.report()
    if eval_data is not None:
        report["ap"] = evaluate_pair(model, output, eval_data, limit=eval_limit,
                                     fp16_path=Path(result.fp16["path"]) if result.fp16 else None,
                                     latency_ms=result.latency_ms)
    return QuantizeRun(result, report)
