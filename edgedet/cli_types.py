"""Click parameter types shared by the commands (no heavy imports)."""

from __future__ import annotations

import re
from typing import Optional, Tuple

import click

__all__ = ["ImageSize", "IMAGE_SIZE", "ProviderName", "PROVIDER", "BatchProfile", "BATCH_PROFILE", "SizePath", "SIZE_PATH",
           "ModelName", "MODEL_NAME"]


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


class ProviderName(click.ParamType):
    """``auto``, a provider (``tensorrt``, ``cuda``, ``cpu``, ... or ONNX Runtime's full name), or
    a comma-separated priority list; an unknown name fails with the valid ones."""

    name = "provider"

    def convert(self, value, param, ctx) -> str:
        from .runtime.providers import ProviderError, resolve_providers

        try:
            resolve_providers(str(value), available=[])
        except ProviderError as e:
            self.fail(str(e), param, ctx)
        return str(value)


PROVIDER = ProviderName()


class ModelName(click.ParamType):
    """A zoo model: ``yolox-s``, ``yolox_s``, ``s`` ... (returned as ``yolox-s``); an unknown name
    fails with the known ones."""

    name = "model"

    def convert(self, value, param, ctx) -> Optional[str]:
        from .zoo import get_spec

        if value is None:
            return None
        try:
            return get_spec(str(value)).name
        except ValueError as e:
            self.fail(str(e), param, ctx)


MODEL_NAME = ModelName()


class BatchProfile(click.ParamType):
    """``MIN,OPT,MAX`` batch sizes of a dynamic-batch engine profile, 1 <= MIN <= OPT <= MAX."""

    name = "batch_profile"

    def convert(self, value, param, ctx) -> Optional[Tuple[int, int, int]]:
        if value is None or isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", str(value))
        if not match:
            self.fail(f"{value!r}: use MIN,OPT,MAX, e.g. 1,4,8", param, ctx)
        low, opt, high = (int(g) for g in match.groups())
        if not 1 <= low <= opt <= high:
            self.fail(f"{value!r}: need 1 <= MIN <= OPT <= MAX", param, ctx)
        return (low, opt, high)


BATCH_PROFILE = BatchProfile()


class SizePath(click.ParamType):
    """``SIZE=PATH`` such as ``nano=demo`` or ``yolox-s=runs/s/best.pth``: (size without "yolox-", path)."""

    name = "size_path"

    def convert(self, value, param, ctx) -> Tuple[str, str]:
        if isinstance(value, tuple):
            return value
        size, sep, path = str(value).partition("=")
        if not sep or not size.strip() or not path.strip():
            self.fail(f"{value!r}: use SIZE=PATH, e.g. nano=demo", param, ctx)
        return size.strip().replace("yolox-", ""), path.strip()


SIZE_PATH = SizePath()
PROVIDER_HELP = "auto, tensorrt, cuda, coreml, directml, openvino or cpu, or a comma-separated list (env EDGEDET_PROVIDER)."
