"""The result type of the runtime: detections of one image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ["Detections", "coco_result"]


def coco_result(image_id: Any, box: Sequence[float], score: float, category_id: int) -> Dict[str, Any]:
    """One COCO results entry from an x1 y1 x2 y2 box: bbox [x, y, w, h] in pixels (2 decimals),
    the score to 5 decimals. The one formatter of COCO results (Detections, infer, eval)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"image_id": image_id, "category_id": int(category_id),
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)], "score": round(float(score), 5)}


def _colour(class_id: int) -> Tuple[int, int, int]:
    # A fixed, well-spread hue per class (golden-ratio steps), full saturation, BGR.
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


@dataclass
class Detections:
    """Detections of one image, best first.

    Attributes:
        boxes (ndarray[N, 4] float32): x1 y1 x2 y2 in original-image pixels, clipped to it.
        scores (ndarray[N] float32): obj * cls.
        class_ids (ndarray[N] int64): indices into ``class_names``.
        class_names (tuple[str]): all class names of the model.
        image_shape (tuple[int, int]): (H, W) of the image.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: Tuple[str, ...]
    image_shape: Tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def labels(self) -> List[str]:
        """The class name of each detection."""
        return [self.class_names[int(c)] for c in self.class_ids]

    def to_dicts(self) -> List[Dict[str, Any]]:
        """One plain dict per detection: box [x1, y1, x2, y2], score, class_id, class_name."""
        return [
            {"box": [round(float(v), 2) for v in box], "score": round(float(score), 5),
             "class_id": int(cid), "class_name": self.class_names[int(cid)]}
            for box, score, cid in zip(self.boxes, self.scores, self.class_ids)
        ]

    def to_coco(self, image_id: Any, category_ids: Optional[Sequence[int]] = None) -> List[Dict[str, Any]]:
        """COCO results entries: bbox [x, y, w, h]; ``category_ids[class_id]`` maps the
        contiguous class index to a COCO category id (identity by default)."""
        return [coco_result(image_id, box, score, category_ids[int(cid)] if category_ids is not None else cid)
                for box, score, cid in zip(self.boxes, self.scores, self.class_ids)]

    def draw(self, image: np.ndarray, thickness: int = 2, show_scores: bool = True) -> np.ndarray:
        """A copy of ``image`` (BGR) with the boxes and labels drawn."""
        canvas = image.copy()
        scale = max(0.4, min(canvas.shape[:2]) / 900)
        for box, score, cid in zip(self.boxes, self.scores, self.class_ids):
            colour = _colour(int(cid))
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
            text = f"{self.class_names[int(cid)]} {score:.2f}" if show_scores else self.class_names[int(cid)]
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            top = max(y1 - th - base - 2, 0)
            cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + base + 2), colour, -1)
            cv2.putText(canvas, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        return canvas
