"""Non-maximum suppression over numpy arrays: OpenCV's C++ implementation, or, for very many
candidates of which only the best few are wanted, an early-stopping vectorised greedy pass."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

__all__ = ["nms", "box_iou", "EARLY_STOP_MIN_CANDIDATES"]

# Above this many candidates, with ``max_keep`` given, the greedy pass that stops after
# ``max_keep`` kept boxes wins: OpenCV's loop is quadratic in the candidates (136 ms for a
# yolox-s output whose 8400 anchors all pass the threshold).
EARLY_STOP_MIN_CANDIDATES = 2000


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    class_agnostic: bool = False,
    max_keep: Optional[int] = None,
) -> np.ndarray:
    """Greedy NMS; returns indices of kept boxes, highest score first (ties: lower index).

    Args:
        boxes (ndarray[N, 4]): x1 y1 x2 y2, x2 >= x1 and y2 >= y1.
        scores (ndarray[N]): box scores; boxes scoring above 0 are candidates (filter by
            your threshold first).
        class_ids (ndarray[N]): class of each box; boxes of different classes never
            suppress each other unless ``class_agnostic``.
        iou_threshold: a box is dropped when its IoU with a kept, higher-scoring box of its
            class exceeds this. IoU uses areas without the +1 pixel convention.
        max_keep: only the first ``max_keep`` kept boxes are needed (the result is the same
            as full NMS cut to that length).
    """
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    if max_keep is not None and len(boxes) > EARLY_STOP_MIN_CANDIDATES:
        return _greedy_early_stop(boxes, scores, class_ids, iou_threshold, class_agnostic, max_keep)
    xywh = np.empty((len(boxes), 4), dtype=np.float64)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    scores32 = np.ascontiguousarray(scores, dtype=np.float32)
    if class_agnostic:
        keep = cv2.dnn.NMSBoxes(xywh, scores32, 0.0, float(iou_threshold))
    else:
        keep = cv2.dnn.NMSBoxesBatched(xywh, scores32, np.ascontiguousarray(class_ids, np.int32), 0.0, float(iou_threshold))
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    # OpenCV sorts by score with an unstable sort; make ties deterministic (lower index first).
    order = np.lexsort((keep, -scores[keep]))
    keep = keep[order]
    return keep if max_keep is None else keep[:max_keep]


def _greedy_early_stop(boxes, scores, class_ids, iou_threshold, class_agnostic, max_keep) -> np.ndarray:
    """Greedy NMS in score order that stops after ``max_keep`` kept boxes: one vectorised
    IoU row per kept box over the boxes still alive, so the cost is O(max_keep * N)."""
    valid = np.flatnonzero(scores > 0)
    order = valid[np.lexsort((valid, -scores[valid]))]
    b = boxes[order].astype(np.float64)
    if not class_agnostic:  # offset each class far apart so boxes of different classes never overlap
        span = float(b.max() - b.min()) + 1.0
        b = b + (class_ids[order].astype(np.float64) * span)[:, None]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    alive = np.arange(len(order))  # positions (in score order) not yet kept or suppressed
    kept = []
    while len(alive) and len(kept) < max_keep:
        i, rest = alive[0], alive[1:]
        kept.append(order[i])
        w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        alive = rest[iou <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4] and b [M, 4] (x1 y1 x2 y2) -> [N, M]."""
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
