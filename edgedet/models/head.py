"""The decoupled YOLOX head: per level a stem, a class branch and a box/objectness branch."""

from __future__ import annotations

import math
from typing import List, Sequence, Union

import torch
from torch import nn

from .blocks import ActLayer, BaseConv, conv_class
from .decode import decode_outputs

__all__ = ["YOLOXHead"]


class YOLOXHead(nn.Module):
    """Decoupled head over the three PAFPN levels.

    The attribute names and their creation order (``stems`` last) are the official
    checkpoint layout. The head does no label assignment and no loss: those live in
    ``edgedet.train``.

    ``forward(features)`` with features (P3, P4, P5):

    - training mode: a list, one Tensor[B, 5 + C, H_l, W_l] per level with channels
      [reg(4), obj logit(1), cls logits(C)];
    - eval mode: Tensor[B, N, 5 + C], levels flattened row-major and concatenated, obj and
      cls passed through sigmoid. With ``decode_in_inference`` (the default, as upstream)
      xywh are decoded to cx, cy, w, h in input pixels; otherwise they stay raw.
    """

    def __init__(
        self,
        num_classes: int,
        width: float = 1.0,
        strides: Sequence[int] = (8, 16, 32),
        in_channels: Sequence[int] = (256, 512, 1024),
        act: ActLayer = "silu",
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.decode_in_inference = True
        # Training under bf16 autocast: run the 1x1 prediction convs in fp32 so the box, objectness
        # and class outputs that SimOTA and the losses see are not rounded to 8 mantissa bits.
        self.predictions_in_fp32 = False
        conv = conv_class(depthwise)
        hidden = int(256 * width)

        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        self.stems = nn.ModuleList()
        for c in in_channels:
            self.stems.append(BaseConv(int(c * width), hidden, 1, 1, act=act))
            self.cls_convs.append(
                nn.Sequential(conv(hidden, hidden, 3, 1, act=act), conv(hidden, hidden, 3, 1, act=act))
            )
            self.reg_convs.append(
                nn.Sequential(conv(hidden, hidden, 3, 1, act=act), conv(hidden, hidden, 3, 1, act=act))
            )
            self.cls_preds.append(nn.Conv2d(hidden, num_classes, 1, 1, 0))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1, 1, 0))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1, 1, 0))

    def initialize_biases(self, prior_prob: float = 1e-2) -> None:
        """Set the cls and obj prediction biases to ``-log((1 - p) / p)`` (training from scratch)."""
        value = -math.log((1 - prior_prob) / prior_prob)
        for pred in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(pred.bias, value)

    def forward_levels(self, features: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Raw per-level outputs [B, 5 + C, H, W]: reg, obj logit, cls logits."""
        outputs = []
        for k, x in enumerate(features):
            x = self.stems[k](x)
            cls_out = self._predict(self.cls_preds[k], self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            outputs.append(torch.cat([self._predict(self.reg_preds[k], reg_feat),
                                      self._predict(self.obj_preds[k], reg_feat), cls_out], 1))
        return outputs

    def _predict(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.predictions_in_fp32 and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return conv(x.float())
        return conv(x)

    def flatten_levels(self, levels: Sequence[torch.Tensor], decode: bool) -> torch.Tensor:
        """Eval-mode output from per-level outputs: Tensor[B, N, 5 + C], obj and cls through
        sigmoid, xywh decoded to input pixels when ``decode``."""
        feature_sizes = [tuple(level.shape[-2:]) for level in levels]
        flat = torch.cat([level.flatten(start_dim=2) for level in levels], dim=2).permute(0, 2, 1)
        out = torch.cat([flat[..., :4], torch.sigmoid(flat[..., 4:])], dim=-1)
        return decode_outputs(out, feature_sizes, self.strides) if decode else out

    def forward(self, features: Sequence[torch.Tensor]) -> Union[List[torch.Tensor], torch.Tensor]:
        levels = self.forward_levels(features)
        if self.training:
            return levels
        return self.flatten_levels(levels, decode=self.decode_in_inference)
