"""Letterbox pre-processing: the one implementation, shared by the runtime, training's
validation transform and calibration."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ["letterbox", "to_bgr", "preprocess"]


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Return a 3-channel uint8 BGR view or copy of ``image``.

    Accepts HxW grayscale, HxWx1, HxWx3 (BGR) and HxWx4 (BGRA) arrays: uint8; uint16 (scaled
    down by 257, as OpenCV's 16-bit PNGs need); float, read as 0..1 when its maximum is at most
    1 and as 0..255 otherwise (rounded, clipped). Raises ValueError otherwise.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an image as a numpy array, got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        if image.size and not np.isfinite(image).all():
            raise ValueError("the float image holds NaN or infinite values")
        scale = 255.0 if image.size and float(image.max()) <= 1.0 else 1.0
        image = np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"expected a uint8, uint16 or float image, got dtype {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")


def letterbox(
    image: np.ndarray,
    input_size: Tuple[int, int],
    pad_value: int = 114,
    out: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, float]:
    """Resize ``image`` (HxWx3 uint8) into an ``input_size`` (H, W) canvas, YOLOX style.

    The scale is ``r = min(H/h, W/w)`` (small images are enlarged), the resized size is
    ``(int(w*r), int(h*r))`` with linear interpolation, placed at the top-left; the rest is
    ``pad_value``. Boxes map back to the original image by dividing by ``r`` alone.

    Returns ``(canvas HxWx3 uint8, r)``. With ``out`` (an HxWx3 uint8 array) the canvas is
    written there, with no allocation.
    """
    in_h, in_w = int(input_size[0]), int(input_size[1])
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    r = min(in_h / h, in_w / w)
    new_w, new_h = max(int(w * r), 1), max(int(h * r), 1)
    canvas = out if out is not None else np.empty((in_h, in_w, 3), dtype=np.uint8)
    if canvas.shape != (in_h, in_w, 3) or canvas.dtype != np.uint8:
        raise ValueError(f"out must be a {in_h}x{in_w}x3 uint8 array, got {canvas.shape} {canvas.dtype}")
    cv2.resize(image, (new_w, new_h), dst=canvas[:new_h, :new_w], interpolation=cv2.INTER_LINEAR)
    canvas[new_h:, :] = pad_value
    canvas[:new_h, new_w:] = pad_value
    return canvas, r


def preprocess(
    image: np.ndarray,
    input_size: Tuple[int, int],
    pad_value: int = 114,
    color_order: str = "BGR",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    out: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, float]:
    """Letterbox and convert to the network's input: float32 [3, H, W].

    ``color_order`` is the order the network expects ("BGR" for the official weights, which
    also take 0..255 values without normalization: mean 0, std 1). ``image`` is BGR, as
    OpenCV reads it. ``out`` may be a float32 [3, H, W] array to write into.
    """
    canvas, r = letterbox(to_bgr(image), input_size, pad_value)
    if color_order == "RGB":
        canvas = canvas[:, :, ::-1]
    elif color_order != "BGR":
        raise ValueError(f"color_order must be 'BGR' or 'RGB', got {color_order!r}")
    blob = out if out is not None else np.empty((3, *canvas.shape[:2]), dtype=np.float32)
    np.copyto(blob, canvas.transpose(2, 0, 1), casting="unsafe")
    if any(m != 0.0 for m in mean) or any(s != 1.0 for s in std):
        blob -= np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        blob /= np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return blob, r
