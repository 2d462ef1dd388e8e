"""Accuracy-aware INT8: move the most sensitive layers back to float until the AP drop is
within budget.

Sensitivity is measured once, with ONNX Runtime's ``qdq_loss_debug`` tools, as the
signal-to-quantization-noise ratio of each tensor's own quantization (its value before and
after its Q/DQ pair, on a few calibration images): the lower, the more that layer's
quantization alone loses. Each step re-quantizes (the calibration tensors are cached) with
the next layers kept in float and measures AP again.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import onnx

from .calibration_set import CalibrationSet
from .quantize import QuantizeError, check_eval_data, quantize_model, read_metadata, resolve_exclusions

__all__ = ["AccuracyStep", "AccuracyResult", "layer_sensitivity", "accuracy_aware_quantize"]


@dataclass
class AccuracyStep:
    excluded: int  # nodes kept in float
    ap: float
    drop: float


@dataclass
class AccuracyResult:
    fp32_ap: float
    steps: List[AccuracyStep] = field(default_factory=list)
    within_budget: bool = False
    output: Optional[Path] = None
    excluded: List[str] = field(default_factory=list)


def layer_sensitivity(fp32_path: Path, int8_path: Path, calib: CalibrationSet) -> List[str]:
    """Names of the float model's nodes, most sensitive to quantization first."""
    from onnxruntime.quantization import qdq_loss_debug as qdq
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgedet-sens-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        resolve_exclusions(model, "none")  # the same node names quantize_model gives
        onnx.save(model, str(prepared))
        aug_q, aug_f = Path(scratch) / "aug_q.onnx", Path(scratch) / "aug_f.onnx"
        qdq.modify_model_output_intermediate_tensors(str(int8_path), str(aug_q))
        qdq.modify_model_output_intermediate_tensors(str(prepared), str(aug_f))
        calib.rewind()
        q_act = qdq.collect_activations(str(aug_q), calib)
        calib.rewind()
        f_act = qdq.collect_activations(str(aug_f), calib)
    errors = qdq.compute_activation_error(qdq.create_activation_matching(q_act, f_act))
    producer = {out: n.name for n in model.graph.node for out in n.output}
    ranked = sorted(errors.items(), key=lambda kv: kv[1]["qdq_err"])
    seen, order = set(), []
    for tensor, _ in ranked:
        node = producer.get(tensor)
        if node and node not in seen:
            seen.add(node)
            order.append(node)
    return order


def accuracy_aware_quantize(
    model_path: Union[str, Path], calib_source: Union[str, Path], output: Union[str, Path], eval_data: Union[str, Path],
    max_ap_drop: float, *, nodes_per_step: int = 4, max_steps: int = 6, eval_limit: Optional[int] = None,
    echo: Callable[[str], None] = print, **quant_kwargs,
) -> AccuracyResult:
    """Quantize, and while fp32 AP - int8 AP > ``max_ap_drop`` keep ``nodes_per_step`` more of
    the most sensitive layers in float. Writes ``output`` only for a model within budget."""
    from edgedet.eval import EVAL_CONF, EVAL_IOU, evaluate_detector
    from edgedet.runtime import Detector

    model_path, output = Path(model_path), Path(output)
    dataset = check_eval_data(model_path, eval_data)

    def ap_of(path: Path) -> float:
        return evaluate_detector(Detector(path, providers="cpu", conf=EVAL_CONF, iou=EVAL_IOU), dataset, eval_limit).AP

    result = AccuracyResult(fp32_ap=ap_of(model_path))
    echo(f"fp32 AP {result.fp32_ap:.4f}; budget: a drop of at most {max_ap_drop:.4f}")
    extra: List[str] = []
    order: Optional[List[str]] = None
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=output.parent, prefix="." + output.stem + ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        for step in range(max_steps + 1):
            q = quantize_model(model_path, calib_source, tmp, exclude=["auto", *extra], measure_latency=False,
                               **quant_kwargs)
            ap = ap_of(tmp)
            result.steps.append(AccuracyStep(len(q.excluded), ap, result.fp32_ap - ap))
            echo(f"step {step}: {len(q.excluded)} nodes in float, int8 AP {ap:.4f}, drop {result.fp32_ap - ap:.4f}")
            if result.fp32_ap - ap <= max_ap_drop:
                os.replace(tmp, output)
                result.within_budget, result.output, result.excluded = True, output, q.excluded
                echo(f"within budget: wrote {output}")
                return result
            if order is None:
                meta = read_metadata(onnx.load(str(model_path)), model_path)
                calib = CalibrationSet(calib_source, meta, num_images=4, seed=quant_kwargs.get("seed", 0),
                                       batch=meta.batch or 1, cache_dir=quant_kwargs.get("cache_dir"))
                order = [n for n in layer_sensitivity(model_path, tmp, calib) if n not in q.excluded]
            remaining = [n for n in order if n not in extra]
            if not remaining:
                break
            extra += remaining[:nodes_per_step]
        best = max(result.steps, key=lambda s: s.ap)
        echo(f"no model within budget after {len(result.steps)} tries (smallest drop {best.drop:.4f} with "
             f"{best.excluded} nodes in float); nothing written")
        return result
    finally:
        if tmp.exists():
            tmp.unlink()
