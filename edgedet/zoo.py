"""The YOLOX size zoo as one table: architecture and cost facts, without torch.

The runtime-only install reads it (``edgedet info``); ``edgedet.models.zoo.build_model`` builds
from it. ``params`` and the GFLOPs at ``test_size`` (80 classes) are what
``edgedet.models.flops.zoo_cost`` counts, stored so that a machine without torch can show them;
a test checks they still agree. FLOPs scale exactly with H x W (every layer's output is the input
size over its stride), which ``gflops_at`` uses for other sizes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = ["ModelSpec", "ZOO", "model_names", "get_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one YOLOX size, and its counted cost at ``test_size`` with 80 classes."""

    name: str
    depth: float  # multiplier of CSP block counts
    width: float  # multiplier of channel counts, truncated by int()
    depthwise: bool = False  # DWConv for the 3x3 convs (nano)
    test_size: Tuple[int, int] = (640, 640)  # official evaluation input (H, W)
    act: str = "silu"
    in_channels: Tuple[int, int, int] = (256, 512, 1024)
    strides: Tuple[int, int, int] = (8, 16, 32)
    params: int = 0
    gflops: float = 0.0  # 2 x (conv MACs + bias adds + 2 per BatchNorm element), the YOLOX README's convention
    conv_gflops: float = 0.0  # convolutions alone

    def gflops_at(self, input_size: Optional[Tuple[int, int]] = None) -> Tuple[float, float]:
        """(GFLOPs, conv GFLOPs) at ``input_size`` (H, W; multiples of 32), from the stored counts."""
        h, w = input_size or self.test_size
        scale = (h * w) / (self.test_size[0] * self.test_size[1])
        return self.gflops * scale, self.conv_gflops * scale


ZOO: Dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("yolox-nano", 0.33, 0.25, depthwise=True, test_size=(416, 416),
                  params=912_159, gflops=1.079239746, conv_gflops=1.045106816),
        ModelSpec("yolox-tiny", 0.33, 0.375, test_size=(416, 416),
                  params=5_055_855, gflops=6.450973698, conv_gflops=6.412536),
        ModelSpec("yolox-s", 0.33, 0.50, params=8_968_255, gflops=26.8063688, conv_gflops=26.6855424),
        ModelSpec("yolox-m", 0.67, 0.75, params=25_326_495, gflops=73.7550792, conv_gflops=73.5303168),
        ModelSpec("yolox-l", 1.0, 1.0, params=54_208_895, gflops=155.6508616, conv_gflops=155.292672),
        ModelSpec("yolox-x", 1.33, 1.25, params=99_071_455, gflops=281.9309, conv_gflops=281.409792),
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
