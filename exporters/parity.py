"""Parity between the PyTorch model and its ONNX export, run through ONNX Runtime (CPU)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Union

import numpy as np

from edgedet.runtime.providers import cpu_session
import torch
from torch import nn


__all__ = ["ParityReport", "ParityError", "check_parity", "check_onnx_parity", "FP32_TOLERANCE", "FP16_TOLERANCE"]

# Largest |onnx - torch| over each output group, relative to the group's largest |torch| value.
FP32_TOLERANCE = 1e-4
# fp16 keeps 11 significant bits (about 5e-4 relative) per op; errors add up over ~100 layers.
FP16_TOLERANCE = 2e-2


class ParityError(RuntimeError):
    """The ONNX model does not reproduce the PyTorch model within tolerance."""


@dataclass
class ParityReport:
    images: int
    tolerance: float
    max_abs: Dict[str, float] = field(default_factory=dict)  # per group
    max_rel: Dict[str, float] = field(default_factory=dict)  # max_abs / group scale
    reference: str = "torch"

    @property
    def worst_rel(self) -> float:
        return max(self.max_rel.values()) if self.max_rel else 0.0

    @property
    def ok(self) -> bool:
        return self.worst_rel <= self.tolerance

    def summary(self) -> str:
        parts = [f"{g} {self.max_abs[g]:.2e} ({self.max_rel[g]:.1e} rel)" for g in self.max_abs]
        return f"max |onnx - {self.reference}| over {self.images} images: " + ", ".join(parts)


def _groups(out: np.ndarray) -> Dict[str, np.ndarray]:
    return {"boxes": out[..., :4], "obj": out[..., 4], "cls": out[..., 5:]}


def _compare(report: ParityReport, name: str, got: np.ndarray, ref: np.ndarray) -> None:
    if not (np.isfinite(got).all() and np.isfinite(ref).all()):
        # NaN - NaN is NaN and max() would skip it: a non-finite output fails parity outright.
        report.max_abs[name] = report.max_rel[name] = float("inf")
        return
    diff = float(np.abs(got.astype(np.float64) - ref).max()) if ref.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    report.max_abs[name] = max(report.max_abs.get(name, 0.0), diff)
    report.max_rel[name] = max(report.max_rel.get(name, 0.0), diff / scale if scale > 0 else diff)


def check_onnx_parity(reference: Union[str, bytes], candidate: Union[str, bytes], images: np.ndarray,
                      tolerance: float, batch: Optional[int]) -> ParityReport:
    """A converted ONNX model (e.g. fp16) against the ONNX model it came from, both on ONNX
    Runtime's CPU provider; decoded [B, N, 5+C] outputs, compared per group as ``check_parity``."""
    sessions = [cpu_session(reference), cpu_session(candidate)]
    name = sessions[0].get_inputs()[0].name
    step = batch or len(images)
    report = ParityReport(images=0, tolerance=tolerance, reference="reference onnx")
    for start in range(0, len(images) - step + 1, step):
        chunk = images[start:start + step]
        want, got = (s.run(None, {name: chunk})[0] for s in sessions)
        for group, g, w in zip(("boxes", "obj", "cls"), _groups(got).values(), _groups(want.astype(np.float64)).values()):
            _compare(report, group, g, w)
        report.images += len(chunk)
    return report


def check_parity(
    torch_module: nn.Module,
    onnx_bytes: bytes,
    images: np.ndarray,
    tolerance: float,
    batch: Optional[int],
) -> ParityReport:
    """Run ``images`` (float32 [B, 3, H, W], already pre-processed) through both models.

    Output groups: for a [B, N, 5+C] output, boxes (xywh), obj and cls; for the NMS
    candidates (boxes [B, N, 4], scores [B, C, N]), boxes and scores. ``batch`` is the
    model's fixed batch (None: dynamic, all images in one run).
    """
    session = cpu_session(onnx_bytes)
    step = batch or len(images)
    report = ParityReport(images=0, tolerance=tolerance)
    for start in range(0, len(images) - step + 1, step):
        chunk = images[start:start + step]
        outputs = session.run(None, {"images": chunk})
        with torch.no_grad():
            ref = torch_module(torch.from_numpy(chunk))
        if isinstance(ref, torch.Tensor):
            ref_np = ref.numpy().astype(np.float64)
            pairs = zip(("boxes", "obj", "cls"), _groups(outputs[0]).values(), _groups(ref_np).values())
        else:
            pairs = zip(("boxes", "scores"), outputs, (r.numpy().astype(np.float64) for r in ref))
        for name, got, want in pairs:
            _compare(report, name, got, want)
        report.images += len(chunk)
    return report
