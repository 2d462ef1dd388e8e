"""COCO-format detection datasets: ``DIR/annotations/<split>.json`` + ``DIR/images/<split>/``."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgedet.runtime.sources import read_image

__all__ = ["DatasetError", "CocoDetection", "split_paths"]

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset that cannot be used, with a one-line reason."""


def _int_or_none(value) -> Optional[int]:
    """An integer id, or None (strings, floats with a fraction, bools and missing values are not ids)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return None
    return int(value)


def _checked(entry, section: str, index: int, where: Path, ints: Sequence[str]) -> Dict:
    """``entry`` of ``section`` as a dict whose ``ints`` fields are integer ids, or a DatasetError."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: {section}[{index}] is a {type(entry).__name__}, not an object")
    for key in ints:
        value = _int_or_none(entry.get(key))
        if value is None:
            found = "missing" if key not in entry else f"{entry[key]!r}, not an integer"
            raise DatasetError(f"{where}: {section}[{index}] has no usable '{key}' ({found})")
        entry = {**entry, key: value}
    return entry


def split_paths(root: Union[str, Path], split: str) -> Tuple[Path, Path]:
    """(annotation file, image folder) of a split in edgedet's COCO layout."""
    root = Path(root)
    return root / "annotations" / f"{split}.json", root / "images" / split


@dataclass
class _Image:
    id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # [K, 4] x1 y1 x2 y2
    labels: np.ndarray  # [K] contiguous class indices


class CocoDetection:
    """A COCO-format split, validated once at load time.

    Category ids are mapped to contiguous indices in sorted-id order (``category_ids[i]`` is
    the COCO id of class i) and their names kept. Bad annotations are dropped, never
    fatal, with one warning per kind and its count: boxes of zero or negative size, boxes
    entirely outside their image (boxes partly outside are clipped), unknown categories,
    annotations of unknown images, crowd regions, and images whose file is missing.
    """

    def __init__(self, annotation_file: Union[str, Path], image_root: Union[str, Path]) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        if not self.annotation_file.is_file():
            raise DatasetError(f"{self.annotation_file}: no such annotation file")
        try:
            doc = json.loads(self.annotation_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{self.annotation_file}: not a JSON file ({e})") from None
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "categories")):
            raise DatasetError(f"{self.annotation_file}: not a COCO detection file (needs 'images' and 'categories' lists)")
        where = self.annotation_file
        categories = [_checked(c, "categories", i, where, ("id",)) for i, c in enumerate(doc["categories"])]
        categories.sort(key=lambda c: c["id"])
        if not categories:
            raise DatasetError(f"{where}: no categories")
        self.category_ids: List[int] = [c["id"] for c in categories]
        self.class_names: Tuple[str, ...] = tuple(str(c.get("name", c["id"])) for c in categories)
        index_of = {cid: i for i, cid in enumerate(self.category_ids)}
        if "annotations" not in doc:
            log.warning("%s: no 'annotations' list: every image counts as having no objects", where)
        elif not isinstance(doc["annotations"], list):
            raise DatasetError(f"{where}: 'annotations' is a {type(doc['annotations']).__name__}, not a list")
        dropped: Counter = Counter()

        per_image: Dict[int, List[Tuple[List[float], int]]] = {}
        meta = {}
        for i, im in enumerate(doc["images"]):
            im = _checked(im, "images", i, where, ("id",))
            meta[im["id"]] = im
        # What pycocotools scores: the annotations that survived, boxes clipped, ids and areas filled in.
        self._gt_annotations: List[Dict] = []
        for ann in doc.get("annotations") or []:
            if not isinstance(ann, dict):
                dropped["annotation that is not an object"] += 1
                continue
            image = meta.get(_int_or_none(ann.get("image_id")))
            if image is None:
                dropped["annotation of an unknown image"] += 1
                continue
            category = _int_or_none(ann.get("category_id"))
            if category not in index_of:
                dropped["unknown category"] += 1
                continue
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError):
                dropped["malformed or missing bbox"] += 1
                continue
            if not all(np.isfinite([x, y, w, h])):
                dropped["bbox with NaN or infinite values"] += 1
                continue
            if not (w > 0 and h > 0):
                dropped["box of zero or negative size"] += 1
                continue
            iw, ih = float(image.get("width", 0) or 0), float(image.get("height", 0) or 0)
            x1, y1 = max(x, 0.0), max(y, 0.0)
            x2, y2 = (min(x + w, iw) if iw > 0 else x + w), (min(y + h, ih) if ih > 0 else y + h)
            if x2 <= x1 or y2 <= y1:
                dropped["box outside its image"] += 1
                continue
            crowd = bool(ann.get("iscrowd", 0))
            area = ann.get("area")
            area = float(area) if isinstance(area, (int, float)) and np.isfinite(area) and area > 0 else (x2 - x1) * (y2 - y1)
            self._gt_annotations.append({"id": len(self._gt_annotations) + 1, "image_id": image["id"],
                                         "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area,
                                         "iscrowd": int(crowd)})
            if crowd:
                dropped["crowd region (scored as an ignore region, not trained on)"] += 1
                continue
            per_image.setdefault(image["id"], []).append(([x1, y1, x2, y2], index_of[category]))

        self.images: List[_Image] = []
        for image_id, im in sorted(meta.items()):
            path = self.image_root / str(im.get("file_name", ""))
            if not path.is_file():
                dropped["image file missing"] += 1
                continue
            anns = per_image.get(image_id, [])
            boxes = np.array([a[0] for a in anns], dtype=np.float32).reshape(-1, 4)
            labels = np.array([a[1] for a in anns], dtype=np.int64)
            self.images.append(_Image(image_id, path, int(im.get("width", 0) or 0), int(im.get("height", 0) or 0),
                                      boxes, labels))
        self.dropped = dict(dropped)
        for kind, count in sorted(dropped.items()):
            log.warning("%s: dropped %d: %s", where, count, kind)
        if not self.images:
            raise DatasetError(f"{where}: no usable images (images under {self.image_root})")
        kept = {im.id for im in self.images}
        self._gt_annotations = [a for a in self._gt_annotations if a["image_id"] in kept]

    def coco_ground_truth(self) -> Dict:
        """The ground truth as evaluated: a COCO dict of the usable images and the annotations
        that survived validation (clipped boxes, areas and ids filled in), not the raw file."""
        images = [{"id": im.id, "width": im.width, "height": im.height, "file_name": im.path.name} for im in self.images]
        categories = [{"id": cid, "name": name} for cid, name in zip(self.category_ids, self.class_names)]
        return {"images": images, "categories": categories, "annotations": [dict(a) for a in self._gt_annotations]}

    @classmethod
    def from_dir(cls, root: Union[str, Path], split: str) -> "CocoDetection":
        ann, images = split_paths(root, split)
        if not ann.is_file():
            raise DatasetError(f"{root}: no {split} split (expected {ann})")
        return cls(ann, images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    def annotations(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        item = self.images[index]
        return item.boxes.copy(), item.labels.copy()

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image BGR uint8, boxes [K, 4] x1 y1 x2 y2, labels [K])."""
        item = self.images[index]
        image, reason = read_image(item.path)
        if image is None:
            raise DatasetError(f"{item.path}: {reason}")
        return image, item.boxes.copy(), item.labels.copy()

    def image_id(self, index: int) -> int:
        return self.images[index].id

    def subset_ids(self, limit: Optional[int]) -> List[int]:
        return list(range(len(self) if limit is None else min(limit, len(self))))
