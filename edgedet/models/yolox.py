"""The YOLOX detector: a backbone+neck and a head, composed by injection."""

from __future__ import annotations

from typing import List, Optional, Union

import torch
from torch import nn

from .head import YOLOXHead
from .pafpn import YOLOPAFPN

__all__ = ["YOLOX"]


class YOLOX(nn.Module):
    """``YOLOX(backbone, head)``; either defaults to the official YOLOX-L part when None.

    ``forward(images)``: images Tensor[B, 3, H, W], float BGR 0..255, H and W multiples of
    32. Returns what the head returns (see :class:`YOLOXHead`): in eval mode
    Tensor[B, N, 5 + C] of cx, cy, w, h (input pixels), objectness, class probabilities.
    """

    def __init__(self, backbone: Optional[nn.Module] = None, head: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else YOLOPAFPN()
        self.head = head if head is not None else YOLOXHead(80)

    def forward(self, images: torch.Tensor) -> Union[List[torch.Tensor], torch.Tensor]:
        return self.head(self.backbone(images))
