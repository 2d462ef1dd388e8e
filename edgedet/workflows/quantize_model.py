"""`edgedet quantize` as one library call: the plain or the accuracy-aware path, an fp16 sibling
when asked (export's conversion, so it lives here and not in calibration), AP when asked, and
the report (printed by the CLI, written as JSON)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from edgedet.calibration import CalibrationSet, QuantizeError, QuantizeResult, quantize_model
from edgedet.calibration.quantize import check_eval_data, evaluate_pair, load_onnx, read_metadata
from edgedet.runtime.fileio import atomic_write_bytes
from edgedet.runtime.progress import ProgressCallback

__all__ = ["QuantizeRun", "run_quantize", "fp16_sibling"]

log = logging.getLogger(__name__)

# Images the fp16 sibling's parity check runs on.
FP16_PARITY_IMAGES = 8


@dataclass
class QuantizeRun:
    result: QuantizeResult
    report: Dict  # QuantizeResult.report() with "ap" (and the accuracy-aware steps) when measured

    def rows(self) -> List[Tuple[str, float, float, Optional[float]]]:
        """(precision, MB, latency ms, AP) rows of the closing table."""
        r, ap = self.result, self.report.get("ap")
        rows = [("fp32", r.fp32_mb, r.latency_ms.get("fp32", 0.0), ap["fp32"]["AP"] if ap else None),
                ("int8", r.int8_mb, r.latency_ms.get("int8", 0.0), ap["int8"]["AP"] if ap else None)]
        if r.fp16:
            rows.append(("fp16", r.fp16["size_mb"], r.latency_ms.get("fp16", 0.0),
                         ap["fp16"]["AP"] if ap and "fp16" in ap else None))
        return rows


def fp16_sibling(model_path: Path, calib: Union[str, Path], *, num_images: int = FP16_PARITY_IMAGES, seed: int = 0,
                 cache_dir: Optional[Path] = None,
                 input_size: Optional[Tuple[int, int]] = None) -> Tuple[Dict, bytes]:
    """Export's fp16 conversion of the fp32 ``model_path`` and its parity against fp32 on
    ``num_images`` calibration images: ``({"size_mb", "parity_rel", "kept_float"}, serialized model)``.
    Raises QuantizeError when the conversion is outside export's fp16 tolerance."""
    from edgedet.exporters.fp16 import convert_fp16
    from edgedet.exporters.parity import FP16_TOLERANCE, check_onnx_parity
    from edgedet.onnx_graph import set_metadata
    from edgedet.runtime.metadata import to_props

    model = load_onnx(model_path)
    meta = read_metadata(model, model_path, input_size)
    step = meta.batch or 1
    images = CalibrationSet(calib, meta, num_images=max(step, num_images // step * step), seed=seed,
                            batch=step, cache_dir=cache_dir, input_name=model.graph.input[0].name)
    converted, kept_float = convert_fp16(model)
    set_metadata(converted, to_props(meta.with_changes(precision="fp16")))
    data = converted.SerializeToString()
    parity = check_onnx_parity(model.SerializeToString(), data, images.subset(len(images)), FP16_TOLERANCE, meta.batch)
    if not parity.ok:
        raise QuantizeError(f"fp16 conversion differs from fp32 by {parity.worst_rel:.2e} of the output scale, above "
                            f"{FP16_TOLERANCE:.0e} ({parity.summary()}); nothing was written")
    return {"size_mb": round(len(data) / 1e6, 3), "parity_rel": float(f"{parity.worst_rel:.3g}"),
            "kept_float": len(kept_float)}, data


def run_quantize(model: Union[str, Path], calib: Union[str, Path], output: Union[str, Path], *,
                 eval_data: Optional[Union[str, Path]] = None, eval_limit: Optional[int] = None,
                 max_ap_drop: Optional[float] = None, max_steps: int = 10, also_fp16: bool = False,
                 echo: Callable[[str], None] = log.info,
                 progress: Optional[ProgressCallback] = None, **quant_kwargs) -> QuantizeRun:
    """Quantize ``model`` to ``output``: with ``max_ap_drop`` (needs ``eval_data``) through the
    accuracy-aware loop, else plainly, evaluating fp32 and int8 on ``eval_data`` when given.
    ``also_fp16`` writes ``MODEL-fp16.onnx`` beside the int8 file, parity-checked against fp32 and
    timed with the others. ``quant_kwargs`` go to ``quantize_model``. Raises QuantizeError
    (nothing written) when the request cannot run or no model is within the budget."""
    model, output = Path(model), Path(output)
    if max_ap_drop is not None:
        if eval_data is None:
            raise QuantizeError("max_ap_drop needs eval_data to measure AP on")
        if also_fp16:
            raise QuantizeError("max_ap_drop and also_fp16 go separately")
        return _accuracy_aware(model, calib, output, eval_data, max_ap_drop, max_steps, eval_limit, echo, progress,
                               quant_kwargs)
    if eval_data is not None:
        check_eval_data(model, eval_data)  # before any work: a mismatch leaves no file
    fp16, fp16_data = None, None
    if also_fp16:
        if not model.is_file():
            raise QuantizeError(f"{model}: no such model file")
        fp16, fp16_data = fp16_sibling(model, calib, seed=quant_kwargs.get("seed", 0),
                                       num_images=min(quant_kwargs.get("num_images", 200), FP16_PARITY_IMAGES),
                                       cache_dir=quant_kwargs.get("cache_dir"),
                                       input_size=quant_kwargs.get("input_size"))
    result = quantize_model(model, calib, output, progress=progress,
                            time_with={"fp16": fp16_data} if fp16_data else None, **quant_kwargs)
    if fp16 is not None:
        fp16_path = output.parent / f"{model.stem}-fp16.onnx"
        atomic_write_bytes(fp16_path, fp16_data)
        result.fp16 = {"path": str(fp16_path), **fp16}
    report = result.report()
    if eval_data is not None:
        report["ap"] = evaluate_pair(model, output, eval_data, limit=eval_limit,
                                     fp16_path=Path(result.fp16["path"]) if result.fp16 else None,
                                     latency_ms=result.latency_ms)
    return QuantizeRun(result, report)


def _accuracy_aware(model: Path, calib, output: Path, eval_data, max_ap_drop: float, max_steps: int,
                    eval_limit: Optional[int], echo, progress, quant_kwargs: Dict) -> QuantizeRun:
    from edgedet.calibration.accuracy import accuracy_aware_quantize

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
