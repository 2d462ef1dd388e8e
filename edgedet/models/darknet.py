"""CSPDarknet, the YOLOX backbone."""

from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn

from .blocks import ActLayer, CSPLayer, Focus, SPPBottleneck, conv_class

__all__ = ["CSPDarknet"]


class CSPDarknet(nn.Module):
    """Focus stem and four CSP stages (dark2..dark5, strides 4..32), SPP in dark5.

    ``forward`` takes images [B, 3, H, W] (H, W multiples of 32) and returns a dict of the
    stages named in ``out_features``; by default dark3, dark4 and dark5, with
    ``int(256*width)``, ``int(512*width)`` and ``int(1024*width)`` channels.
    """

    def __init__(
        self,
        dep_mul: float,
        wid_mul: float,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        depthwise: bool = False,
        act: ActLayer = "silu",
    ) -> None:
        super().__init__()
        self.out_features = tuple(out_features)
        conv = conv_class(depthwise)
        base = int(wid_mul * 64)
        # Python's round (banker's rounding) is what the official code uses.
        base_depth = max(round(dep_mul * 3), 1)

        self.stem = Focus(3, base, ksize=3, act=act)
        self.dark2 = nn.Sequential(
            conv(base, base * 2, 3, 2, act=act),
            CSPLayer(base * 2, base * 2, n=base_depth, depthwise=depthwise, act=act),
        )
        self.dark3 = nn.Sequential(
            conv(base * 2, base * 4, 3, 2, act=act),
            CSPLayer(base * 4, base * 4, n=base_depth * 3, depthwise=depthwise, act=act),
        )
        self.dark4 = nn.Sequential(
            conv(base * 4, base * 8, 3, 2, act=act),
            CSPLayer(base * 8, base * 8, n=base_depth * 3, depthwise=depthwise, act=act),
        )
        self.dark5 = nn.Sequential(
            conv(base * 8, base * 16, 3, 2, act=act),
            SPPBottleneck(base * 16, base * 16, activation=act),
            CSPLayer(base * 16, base * 16, n=base_depth, shortcut=False, depthwise=depthwise, act=act),
        )

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        outputs = {}
        x = self.stem(x)
        outputs["stem"] = x
        for name in ("dark2", "dark3", "dark4", "dark5"):
            x = getattr(self, name)(x)
            outputs[name] = x
        return {k: v for k, v in outputs.items() if k in self.out_features}
