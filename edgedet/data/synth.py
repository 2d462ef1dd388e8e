"""A synthetic detection world: shapes on textured backgrounds, rendered with OpenCV.

Deterministic per random generator. Hard enough to need a real detector: objects from 8 px
to half the image, 1 to 20 per image, partial occlusion, textured and varied backgrounds,
low-contrast colours, noise and blur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

__all__ = ["SYNTH_CLASSES", "SynthSample", "render_sample"]

SYNTH_CLASSES = ("circle", "rectangle", "triangle", "star", "cross", "diamond")


@dataclass
class SynthSample:
    image: np.ndarray  # HxWx3 uint8 BGR
    boxes: np.ndarray  # [K, 4] x1 y1 x2 y2, float32, inside the image
    labels: np.ndarray  # [K] int64 indices into SYNTH_CLASSES


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(4)
    base = rng.integers(0, 256, 3)
    if kind == 0:  # smooth gradient
        other = rng.integers(0, 256, 3)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        ramp = base[None, :] * (1 - t[:, None]) + other[None, :] * t[:, None]
        img = np.broadcast_to(ramp[None] if len(t) == w else ramp[:, None], (h, w, 3))
    elif kind == 1:  # blurred colour noise (cloudy texture)
        small = rng.integers(0, 256, (max(h // 16, 2), max(w // 16, 2), 3)).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:  # stripes / checker
        period = int(rng.integers(6, 40))
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((xx // period + (yy // period) * rng.integers(2)) % 2).astype(bool)
        other = rng.integers(0, 256, 3)
        img = np.where(mask[..., None], base, other)
    else:  # flat with fine grain
        img = np.broadcast_to(base, (h, w, 3)) + rng.normal(0, 12, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8).copy()
    for _ in range(rng.integers(0, 6)):  # clutter lines that are not objects
        p1 = tuple(int(v) for v in rng.integers(0, (w, h)))
        p2 = tuple(int(v) for v in rng.integers(0, (w, h)))
        cv2.line(img, p1, p2, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


def _polygon(label: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    name = SYNTH_CLASSES[label]
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
    if name == "rectangle":
        pts = np.array([[-1, -0.6], [1, -0.6], [1, 0.6], [-1, 0.6]]) * r
    elif name == "triangle":
        t = np.array([90, 210, 330]) * np.pi / 180
        pts = np.stack([np.cos(t), -np.sin(t)], 1) * r
    elif name == "star":
        t = np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45) * r
        pts = np.stack([rad * np.sin(t), -rad * np.cos(t)], 1)
    elif name == "cross":
        a, b = 1.0, 0.33
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a],
                        [-b, b], [-a, b], [-a, -b], [-b, -b]]) * r
    else:  # diamond
        pts = np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]]) * r
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, s], [-s, c]]) + [cx, cy]


def _colour_near(rng: np.random.Generator, ref: np.ndarray) -> Tuple[int, int, int]:
    if rng.random() < 0.25:  # low contrast against the local background
        col = ref.astype(np.int64) + rng.choice([-1, 1], 3) * rng.integers(25, 45, 3)
    else:
        col = rng.integers(0, 256, 3)
    return tuple(int(v) for v in np.clip(col, 0, 255))


def render_sample(rng: np.random.Generator, size: Tuple[int, int] = (416, 416), max_objects: int = 20) -> SynthSample:
    """Render one image of ``size`` (H, W) with 1..``max_objects`` labelled shapes."""
    h, w = size
    img = _background(rng, h, w)
    boxes: List[np.ndarray] = []
    labels: List[int] = []
    n = int(rng.integers(1, max_objects + 1))
    max_side = min(h, w) / 2
    for _ in range(n * 3):  # a few tries per object to respect the occlusion limit
        if len(boxes) == n:
            break
        side = float(np.exp(rng.uniform(np.log(8), np.log(max_side))))
        r = side / 2
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        label = int(rng.integers(len(SYNTH_CLASSES)))
        pts = _polygon(label, cx, cy, r, rng.uniform(0, 2 * np.pi))
        x1, y1 = np.clip(pts.min(0), 0, [w - 1, h - 1])
        x2, y2 = np.clip(pts.max(0), 0, [w - 1, h - 1])
        if x2 - x1 < 4 or y2 - y1 < 4:
            continue
        box = np.array([x1, y1, x2, y2], dtype=np.float32)
        if boxes and _covered_fraction(np.stack(boxes), box).max() > 0.5:
            continue  # would hide more than half of an earlier object
        ref = img[int(cy), int(cx)]
        cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], _colour_near(rng, ref), cv2.LINE_AA, shift=4)
        boxes.append(box)
        labels.append(label)
    if rng.random() < 0.5:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    noise = rng.normal(0, rng.uniform(0, 10), img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    return SynthSample(img, np.stack(boxes).astype(np.float32), np.asarray(labels, dtype=np.int64))


def _covered_fraction(earlier: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Fraction of each earlier box's area that ``box`` covers."""
    lt = np.maximum(earlier[:, :2], box[:2])
    rb = np.minimum(earlier[:, 2:], box[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(earlier[:, 2:] - earlier[:, :2], axis=1)
    return inter / np.maximum(area, 1e-6)
