"""Non-maximum suppression over numpy arrays, through OpenCV's C++ implementation."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["nms", "box_iou"]


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    class_agnostic: bool = False,
) -> np.ndarray:
    """Greedy NMS; returns indices of kept boxes, highest score first.

    Args:
        boxes (ndarray[N, 4]): x1 y1 x2 y2, x2 >= x1 and y2 >= y1.
        scores (ndarray[N]): box scores; boxes scoring above 0 are candidates (filter by
            your threshold first).
        class_ids (ndarray[N]): class of each box; boxes of different classes never
            suppress each other unless ``class_agnostic``.
        iou_threshold: a box is dropped when its IoU with a kept, higher-scoring box of its
            class exceeds this. IoU uses areas without the +1 pixel convention.
    """
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    xywh = np.empty((len(boxes), 4), dtype=np.float64)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    scores64 = np.ascontiguousarray(scores, dtype=np.float32)
    if class_agnostic:
        keep = cv2.dnn.NMSBoxes(xywh, scores64, 0.0, float(iou_threshold))
    else:
        keep = cv2.dnn.NMSBoxesBatched(xywh, scores64, np.ascontiguousarray(class_ids, np.int32), 0.0, float(iou_threshold))
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    # OpenCV sorts by score with an unstable sort; make ties deterministic (lower index first).
    order = np.lexsort((keep, -scores[keep]))
    return keep[order]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4] and b [M, 4] (x1 y1 x2 y2) -> [N, M]."""
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
