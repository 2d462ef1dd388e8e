"""YOLOPAFPN: CSPDarknet plus a top-down and bottom-up path aggregation neck."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .blocks import ActLayer, BaseConv, CSPLayer, conv_class
from .darknet import CSPDarknet

__all__ = ["YOLOPAFPN"]


class YOLOPAFPN(nn.Module):
    """Backbone and PAFPN neck.

    ``forward`` takes images [B, 3, H, W] and returns (P3, P4, P5) at strides 8, 16, 32 with
    ``int(c*width)`` channels for c in ``in_channels``. The upsample is nearest-neighbour and
    the resampled tensor is always first in each concat, as in the official model.
    The attribute names (``C3_p4``, ``bu_conv2``, ...) are the official checkpoint keys.
    """

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        in_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        in_channels: Sequence[int] = (256, 512, 1024),
        depthwise: bool = False,
        act: ActLayer = "silu",
        backbone: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else CSPDarknet(
            depth, width, out_features=in_features, depthwise=depthwise, act=act
        )
        self.in_features = tuple(in_features)
        c3, c4, c5 = (int(c * width) for c in in_channels)
        n = round(3 * depth)
        conv = conv_class(depthwise)

        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1, act=act)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, depthwise=depthwise, act=act)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1, act=act)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, depthwise=depthwise, act=act)
        self.bu_conv2 = conv(c3, c3, 3, 2, act=act)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise=depthwise, act=act)
        self.bu_conv1 = conv(c4, c4, 3, 2, act=act)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise=depthwise, act=act)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        x2, x1, x0 = (features[name] for name in self.in_features)

        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))

        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0
