"""Click parameter types shared by the commands (no heavy imports)."""

from __future__ import annotations

import re
from typing import Optional, Tuple

import click

__all__ = ["ImageSize", "IMAGE_SIZE"]


class ImageSize(click.ParamType):
    """``640`` (square) or ``HxW`` such as ``480x640``; multiples of 32."""

    name = "size"

    def convert(self, value, param, ctx) -> Optional[Tuple[int, int]]:
        if value is None or isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", str(value))
        if not match:
            self.fail(f"{value!r} is not a size: use N (square) or HxW, e.g. 640 or 480x640", param, ctx)
        h = int(match.group(1))
        w = int(match.group(2) or h)
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            self.fail(f"{value!r}: height and width must be positive multiples of 32 (e.g. 416, 640, 480x640)", param, ctx)
        return (h, w)


IMAGE_SIZE = ImageSize()
