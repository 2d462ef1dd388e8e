"""From network outputs to detections: decoding, score selection, NMS, rescaling."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .nms import nms

__all__ = ["make_grids", "decode_raw", "select_detections", "scale_boxes"]


def make_grids(input_size: Tuple[int, int], strides: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y) cell of every anchor [N, 2] and its stride [N, 1], levels in order, row-major."""
    grids, stride_map = [], []
    for s in strides:
        h, w = input_size[0] // s, input_size[1] // s
        xv, yv = np.meshgrid(np.arange(w), np.arange(h))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        stride_map.append(np.full((h * w, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(stride_map).astype(np.float32)


def decode_raw(raw: np.ndarray, input_size: Tuple[int, int], strides: Sequence[int]) -> np.ndarray:
    """Decode a raw YOLOX output [..., N, 5 + C]: cx, cy = (t + grid) * stride, w, h = exp(t) * stride."""
    grids, stride_map = make_grids(input_size, strides)
    if raw.shape[-2] != len(grids):
        raise ValueError(f"raw output has {raw.shape[-2]} anchors, {input_size} with strides {tuple(strides)} gives {len(grids)}")
    out = np.array(raw, dtype=np.float32, copy=True)
    out[..., :2] = (out[..., :2] + grids) * stride_map
    out[..., 2:4] = np.exp(out[..., 2:4]) * stride_map
    return out


def select_detections(
    decoded: np.ndarray,
    conf: float,
    iou: float,
    max_det: int,
    class_agnostic: bool = False,
    classes: Optional[Sequence[int]] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image from a decoded output [N, 5 + C], as the official postprocess.

    Each anchor takes its single best class; it is kept when ``obj * cls >= conf`` (and its
    class is in ``classes``, when given); boxes go from cx cy w h to x1 y1 x2 y2 and pass
    class-aware NMS (class-agnostic on request); at most ``max_det`` remain, best first.

    Returns boxes [K, 4] (input pixels), scores [K], class_ids [K] (int64).
    """
    cls = decoded[:, 5:]
    scores = decoded[:, 4] * cls.max(axis=1)
    idx = np.flatnonzero(scores >= conf)
    class_ids = cls[idx].argmax(axis=1)  # only for the survivors: the argmax is the costly part
    if classes is not None:
        wanted = np.isin(class_ids, np.asarray(list(classes), dtype=np.int64))
        idx, class_ids = idx[wanted], class_ids[wanted]
    if len(idx) == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    c = decoded[idx, :4]
    boxes = np.empty((len(idx), 4), dtype=np.float32)
    boxes[:, :2] = c[:, :2] - c[:, 2:4] / 2
    boxes[:, 2:] = c[:, :2] + c[:, 2:4] / 2
    sel_scores, sel_classes = scores[idx].astype(np.float32), class_ids.astype(np.int64)
    kept = nms(boxes, sel_scores, sel_classes, iou, class_agnostic, max_keep=max_det)
    return boxes[kept], sel_scores[kept], sel_classes[kept]


def scale_boxes(boxes: np.ndarray, ratio: float, image_shape: Tuple[int, int]) -> np.ndarray:
    """Letterboxed-input boxes to original-image pixels (divide by the letterbox ratio),
    clipped to the image of ``image_shape`` (H, W)."""
    out = boxes / ratio
    h, w = image_shape
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out
