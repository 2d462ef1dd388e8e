"""Training augmentations of the official YOLOX recipe: Mosaic, MixUp, HSV, flip, affine.

All take an explicit ``numpy.random.Generator``, so a sample is a pure function of
(seed, epoch, index): that is what makes ``--resume`` reproduce an uninterrupted run.
Boxes are x1 y1 x2 y2 in pixels, [K, 4] float32, with labels [K] int64 beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Tuple

import cv2
import numpy as np

from edgedet.runtime.letterbox import letterbox

__all__ = ["AugmentConfig", "augment_hsv", "hflip", "random_affine", "mosaic", "mixup", "filter_boxes"]

Sample = Tuple[np.ndarray, np.ndarray, np.ndarray]  # image, boxes, labels
Loader = Callable[[int], Sample]


@dataclass(frozen=True)
class AugmentConfig:
    """Defaults of ``yolox_base.py``; nano/tiny override mosaic_scale, mixup and mosaic_prob."""

    mosaic_prob: float = 1.0
    mixup_prob: float = 1.0
    hsv_prob: float = 1.0
    flip_prob: float = 0.5
    degrees: float = 10.0
    translate: float = 0.1
    mosaic_scale: Tuple[float, float] = (0.1, 2.0)
    mixup_scale: Tuple[float, float] = (0.5, 1.5)
    shear: float = 2.0
    enable_mixup: bool = True

    @classmethod
    def for_model(cls, name: str) -> "AugmentConfig":
        if name == "yolox-nano":
            return cls(mosaic_scale=(0.5, 1.5), mosaic_prob=0.5, enable_mixup=False)
        if name == "yolox-tiny":
            return cls(mosaic_scale=(0.5, 1.5), enable_mixup=False)
        return cls()


def augment_hsv(image: np.ndarray, rng: np.random.Generator, hgain: float = 5, sgain: float = 30, vgain: float = 30) -> None:
    """In place: add to H, S and V offsets drawn in [-gain, gain], each turned on at random
    (OpenCV units: hue 0..179)."""
    gains = rng.uniform(-1, 1, 3) * [hgain, sgain, vgain] * rng.integers(0, 2, 3)
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
    cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR, dst=image)


def hflip(image: np.ndarray, boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    w = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def filter_boxes(boxes: np.ndarray, labels: np.ndarray, shape: Tuple[int, int], min_side: float = 1.0):
    """Clip boxes to an image of ``shape`` (H, W) and drop those whose shorter side is at
    most ``min_side`` pixels."""
    h, w = shape
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, w)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, h)
    sides = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    keep = sides > min_side
    return clipped[keep], labels[keep]


def _affine_matrix(rng: np.random.Generator, size: Tuple[int, int], degrees, translate, scales, shear) -> Tuple[np.ndarray, float]:
    h, w = size
    angle = rng.uniform(-degrees, degrees)
    scale = rng.uniform(*scales)
    rotation = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=scale)  # about the origin, as upstream
    shear_x = math.tan(math.radians(rng.uniform(-shear, shear)))
    shear_y = math.tan(math.radians(rng.uniform(-shear, shear)))
    m = np.ones((2, 3))
    m[0] = rotation[0] + shear_y * rotation[1]
    m[1] = rotation[1] + shear_x * rotation[0]
    m[0, 2] = rng.uniform(-translate, translate) * w
    m[1, 2] = rng.uniform(-translate, translate) * h
    return m, scale


def random_affine(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator, target_size: Tuple[int, int],
    degrees: float = 10.0, translate: float = 0.1, scales: Tuple[float, float] = (0.1, 2.0), shear: float = 2.0,
) -> Sample:
    """Rotate, scale and shear about the origin (0, 0), translate by up to ``translate`` of
    the size, warp to ``target_size`` (H, W) with border 114; boxes become the bounds of
    their warped corners. As upstream: the output shows the input's top-left region, so a
    2S mosaic needs a scale below 1 to be seen whole."""
    m, _ = _affine_matrix(rng, target_size, degrees, translate, scales, shear)
    out = cv2.warpAffine(image, m, dsize=(target_size[1], target_size[0]), borderValue=(114, 114, 114))
    if len(boxes):
        corners = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(-1, 2)  # (x1,y1) (x2,y2) (x1,y2) (x2,y1)
        corners = np.c_[corners, np.ones(len(corners))] @ m.T
        corners = corners.reshape(-1, 8)
        xs, ys = corners[:, 0::2], corners[:, 1::2]
        boxes = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], 1).astype(np.float32)
        boxes, labels = filter_boxes(boxes, labels, target_size)
    return out, boxes, labels


def mosaic(load: Loader, indices, rng: np.random.Generator, size: Tuple[int, int], cfg: AugmentConfig) -> Sample:
    """Four images around a random centre of a 2H x 2W canvas (fill 114), each resized by
    ``min(H/h, W/w)``, then ``random_affine`` down to ``size``."""
    s_h, s_w = size
    yc, xc = int(rng.uniform(0.5 * s_h, 1.5 * s_h)), int(rng.uniform(0.5 * s_w, 1.5 * s_w))
    canvas = np.full((2 * s_h, 2 * s_w, 3), 114, dtype=np.uint8)
    all_boxes, all_labels = [], []
    for k, index in enumerate(indices):
        img, boxes, labels = load(index)
        r = min(s_h / img.shape[0], s_w / img.shape[1])
        img = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        # where the image's corner touches the centre: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
        if k == 0:
            x1, y1, x2, y2 = max(xc - w, 0), max(yc - h, 0), xc, yc
            sx1, sy1 = w - (x2 - x1), h - (y2 - y1)
        elif k == 1:
            x1, y1, x2, y2 = xc, max(yc - h, 0), min(xc + w, 2 * s_w), yc
            sx1, sy1 = 0, h - (y2 - y1)
        elif k == 2:
            x1, y1, x2, y2 = max(xc - w, 0), yc, xc, min(yc + h, 2 * s_h)
            sx1, sy1 = w - (x2 - x1), 0
        else:
            x1, y1, x2, y2 = xc, yc, min(xc + w, 2 * s_w), min(yc + h, 2 * s_h)
            sx1, sy1 = 0, 0
        canvas[y1:y2, x1:x2] = img[sy1:sy1 + (y2 - y1), sx1:sx1 + (x2 - x1)]
        if len(boxes):
            shifted = boxes * r + [x1 - sx1, y1 - sy1, x1 - sx1, y1 - sy1]
            all_boxes.append(shifted.astype(np.float32))
            all_labels.append(labels)
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4), np.float32)
    labels = np.concatenate(all_labels) if all_labels else np.zeros((0,), np.int64)
    boxes, labels = filter_boxes(boxes, labels, canvas.shape[:2])
    return random_affine(canvas, boxes, labels, rng, size, cfg.degrees, cfg.translate, cfg.mosaic_scale, cfg.shear)


def mixup(sample: Sample, other: Sample, rng: np.random.Generator, cfg: AugmentConfig) -> Sample:
    """Blend ``sample`` 0.5/0.5 with ``other`` letterboxed into the same size with scale jitter
    and a flip half the time; the boxes of both are kept."""
    image, boxes, labels = sample
    h, w = image.shape[:2]
    img2, boxes2, labels2 = other
    jitter = rng.uniform(*cfg.mixup_scale)
    canvas2, r = letterbox(img2, (h, w))
    if jitter != 1.0:
        scaled = cv2.resize(canvas2, (int(w * jitter), int(h * jitter)), interpolation=cv2.INTER_LINEAR)
        canvas2 = np.full((h, w, 3), 114, np.uint8)
        ch, cw = min(h, scaled.shape[0]), min(w, scaled.shape[1])
        canvas2[:ch, :cw] = scaled[:ch, :cw]
    boxes2 = boxes2 * r * jitter
    if rng.random() < 0.5:
        canvas2, boxes2 = hflip(canvas2, boxes2.astype(np.float32))
    boxes2, labels2 = filter_boxes(boxes2.astype(np.float32), labels2, (h, w))
    blended = (0.5 * image.astype(np.float32) + 0.5 * canvas2.astype(np.float32)).astype(np.uint8)
    return blended, np.concatenate([boxes, boxes2]).astype(np.float32), np.concatenate([labels, labels2])
