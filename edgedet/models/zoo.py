"""The YOLOX size zoo as one table, and the one builder that reads it."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from torch import nn

from .blocks import ActLayer
from .head import YOLOXHead
from .pafpn import YOLOPAFPN
from .yolox import YOLOX

__all__ = ["ModelSpec", "ZOO", "model_names", "get_spec", "build_model"]

# Set on every BatchNorm2d by the official exp files; not stored in checkpoints.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one YOLOX size."""

    name: str
    depth: float  # multiplier of CSP block counts
    width: float  # multiplier of channel counts, truncated by int()
    depthwise: bool = False  # DWConv for the 3x3 convs (nano)
    test_size: Tuple[int, int] = (640, 640)  # official evaluation input (H, W)
    act: str = "silu"
    in_channels: Tuple[int, int, int] = (256, 512, 1024)
    strides: Tuple[int, int, int] = (8, 16, 32)


ZOO: Dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("yolox-nano", 0.33, 0.25, depthwise=True, test_size=(416, 416)),
        ModelSpec("yolox-tiny", 0.33, 0.375, test_size=(416, 416)),
        ModelSpec("yolox-s", 0.33, 0.50),
        ModelSpec("yolox-m", 0.67, 0.75),
        ModelSpec("yolox-l", 1.0, 1.0),
        ModelSpec("yolox-x", 1.33, 1.25),
    )
}


def model_names() -> Tuple[str, ...]:
    return tuple(ZOO)


def get_spec(name: str) -> ModelSpec:
    """The spec of a zoo model; ``yolox_s``, ``s`` and ``YOLOX-S`` are accepted for ``yolox-s``."""
    key = name.strip().lower().replace("_", "-")
    if not key.startswith("yolox-"):
        key = "yolox-" + key
    if key in ZOO:
        return ZOO[key]
    hint = difflib.get_close_matches(key, ZOO, n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(f"unknown model {name!r}; known models: {', '.join(ZOO)}.{suggestion}")


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
