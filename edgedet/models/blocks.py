"""Building blocks of YOLOX: convolutions, Focus, bottlenecks, CSP and SPP.

Attribute names (``conv``, ``bn``, ``act``, ``dconv``, ``pconv``, ``conv1``..``conv3``,
``m``) are the official ones: they are the state-dict keys of the published checkpoints.
"""

from __future__ import annotations

from typing import Sequence, Type, Union

import torch
from torch import nn

__all__ = [
    "ActLayer",
    "ExportSiLU",
    "get_activation",
    "BaseConv",
    "DWConv",
    "conv_class",
    "Focus",
    "Bottleneck",
    "CSPLayer",
    "SPPBottleneck",
]

ActLayer = Union[str, Type[nn.Module]]


class ExportSiLU(nn.Module):
    """``x * sigmoid(x)`` written out, for runtimes without a SiLU/Swish kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


_ACTIVATIONS = {
    "silu": lambda: nn.SiLU(inplace=True),
    "relu": lambda: nn.ReLU(inplace=True),
    "lrelu": _lrelu,
    "export_silu": ExportSiLU,
}


def get_activation(act: ActLayer) -> nn.Module:
    """Make an activation module from a name (``silu``, ``relu``, ``lrelu``,
    ``export_silu``) or from an ``nn.Module`` subclass."""
    if isinstance(act, str):
        try:
            return _ACTIVATIONS[act]()
        except KeyError:
            valid = ", ".join(sorted(_ACTIVATIONS))
            raise ValueError(f"unknown activation {act!r}; valid names: {valid}") from None
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act()
    raise TypeError(f"activation must be a name or an nn.Module class, got {type(act).__name__}")


class BaseConv(nn.Module):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ksize: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        act: ActLayer = "silu",
    ) -> None:
        super().__init__()
        pad = (ksize - 1) // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, ksize, stride=stride, padding=pad, groups=groups, bias=bias
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise ``ksize`` conv followed by a pointwise 1x1 conv, each a BaseConv."""

    def __init__(
        self, in_channels: int, out_channels: int, ksize: int, stride: int = 1, act: ActLayer = "silu"
    ) -> None:
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels, act=act)
        self.pconv = BaseConv(in_channels, out_channels, 1, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def conv_class(depthwise: bool) -> type:
    """The 3x3 convolution YOLOX uses: DWConv for the depthwise (nano) models."""
    return DWConv if depthwise else BaseConv


class Focus(nn.Module):
    """Space-to-depth by 2, then a BaseConv from 4*Cin channels.

    Input [B, C, H, W] (H, W even) becomes [B, 4C, H/2, W/2] with the four phases
    concatenated as (even row, even col), (odd row, even col), (even row, odd col),
    (odd row, odd col). That is the official order, not reading order.
    """

    def __init__(
        self, in_channels: int, out_channels: int, ksize: int = 1, stride: int = 1, act: ActLayer = "silu"
    ) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, stride, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phases = (
            x[..., ::2, ::2],
            x[..., 1::2, ::2],
            x[..., ::2, 1::2],
            x[..., 1::2, 1::2],
        )
        return self.conv(torch.cat(phases, dim=1))


class Bottleneck(nn.Module):
    """1x1 conv then 3x3 conv, with a residual add when ``shortcut`` and Cin == Cout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: ActLayer = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = conv_class(depthwise)(hidden, out_channels, 3, 1, act=act)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """Cross-stage-partial block: two 1x1 branches, n bottlenecks on the first, concat
    (bottleneck path first), then a 1x1 fusion conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: ActLayer = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, 1, act=act)
        self.m = nn.Sequential(
            *[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act=act) for _ in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), dim=1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: 1x1 to Cin/2, max-pools (stride 1, 'same' padding)
    concatenated as [x, pool_k0, pool_k1, ...], then 1x1 to Cout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (5, 9, 13),
        activation: ActLayer = "silu",
    ) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=activation)
        self.m = nn.ModuleList(
            [nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes]
        )
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1, act=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))
