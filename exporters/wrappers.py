"""Export wrappers: one module per output format, choosing what the graph returns.

The wrapped YOLOX model is left untouched (no flags flipped, no modules swapped).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

__all__ = ["DecodedOutput", "RawOutput", "NmsCandidates", "wrap_for_export"]


class _HeadOutput(nn.Module):
    decode = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def flat(self, images: torch.Tensor) -> torch.Tensor:
        head = self.model.head
        return head.flatten_levels(head.forward_levels(self.model.backbone(images)), decode=self.decode)


class DecodedOutput(_HeadOutput):
    """images [B, 3, H, W] -> output [B, N, 5 + C]: cx, cy, w, h (input pixels), obj, cls probs."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.flat(images)


class RawOutput(_HeadOutput):
    """images -> output [B, N, 5 + C] with raw xywh and sigmoided obj/cls (the official export's layout)."""

    decode = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.flat(images)


class NmsCandidates(_HeadOutput):
    """images -> (boxes [B, N, 4] x1 y1 x2 y2, scores [B, C, N]), the inputs of ONNX
    NonMaxSuppression, which ``exporters.nms.append_nms`` adds after export.

    Every (anchor, class) pair is a candidate scored ``obj * cls``, as in the official
    TensorRT demo: an anchor may give boxes of two classes when both pass the threshold.
    (Masking all but the best class would make the graph's output flip on float noise
    between near-equal class scores.)
    """

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out = self.flat(images)
        cxcy, wh = out[..., :2], out[..., 2:4]
        boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=-1)
        scores = out[..., 5:] * out[..., 4:5]
        return boxes, scores.permute(0, 2, 1)


_WRAPPERS = {"decoded": DecodedOutput, "raw": RawOutput, "nms": NmsCandidates}


def wrap_for_export(model: nn.Module, output_format: str) -> nn.Module:
    try:
        return _WRAPPERS[output_format](model).eval()
    except KeyError:
        raise ValueError(f"unknown output format {output_format!r}; valid: {', '.join(_WRAPPERS)}") from None
