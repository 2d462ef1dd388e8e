"""The one builder of the YOLOX size zoo (the table itself is ``edgedet.zoo``, torch-free)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from torch import nn

from ..zoo import ZOO, ModelSpec, get_spec, model_names

from .blocks import ActLayer
from .head import YOLOXHead
from .pafpn import YOLOPAFPN
from .yolox import YOLOX

__all__ = ["ModelSpec", "ZOO", "model_names", "get_spec", "build_model"]

# Set on every BatchNorm2d by the official exp files; not stored in checkpoints.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def _init_batchnorm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = BN_EPS
            module.momentum = BN_MOMENTUM


def build_model(
    name: str = "yolox-s",
    num_classes: int = 80,
    *,
    depth: Optional[float] = None,
    width: Optional[float] = None,
    depthwise: Optional[bool] = None,
    act: Optional[ActLayer] = None,
) -> YOLOX:
    """Build a YOLOX model of a zoo size, optionally overriding its architecture.

    Args:
        name: a zoo name (``yolox-nano`` .. ``yolox-x``).
        num_classes: number of classes C; the eval output is [B, N, 5 + C].
        depth, width, depthwise, act: override the size's values for a custom model.

    Returns the model in training mode with the official initialisation (BatchNorm
    eps 1e-3 and momentum 0.03, cls/obj prediction biases at the 0.01 prior). Call
    ``.eval()`` before inference.
    """
    spec = get_spec(name)
    overrides = {k: v for k, v in dict(depth=depth, width=width, depthwise=depthwise).items() if v is not None}
    spec = dataclasses.replace(spec, **overrides)
    activation = act if act is not None else spec.act
    if spec.depth <= 0 or spec.width <= 0:
        raise ValueError(f"depth and width must be positive, got depth={spec.depth}, width={spec.width}")
    backbone = YOLOPAFPN(
        spec.depth, spec.width, in_channels=spec.in_channels, depthwise=spec.depthwise, act=activation
    )
    head = YOLOXHead(
        num_classes, spec.width, strides=spec.strides, in_channels=spec.in_channels,
        act=activation, depthwise=spec.depthwise,
    )
    model = YOLOX(backbone, head)
    _init_batchnorm(model)
    head.initialize_biases(1e-2)
    model.spec = spec  # type: ignore[attr-defined]  # kept for export metadata and FLOPs
    return model
