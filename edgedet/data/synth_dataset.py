"""`edgedet data synth`: write a synthetic COCO-format dataset made by ``synth.render_sample``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from edgedet.runtime.fileio import atomic_write_bytes, atomic_write_json
from edgedet.runtime.progress import ProgressCallback, report

from .coco import split_paths
from .synth import SYNTH_CLASSES, render_sample

__all__ = ["write_synth_dataset"]


def _split_seed(seed: int, split: str) -> np.random.SeedSequence:
    # Independent, reproducible streams per (seed, split, image).
    return np.random.SeedSequence([seed, int(hashlib.sha256(split.encode()).hexdigest()[:8], 16)])


def write_synth_dataset(
    out: Path,
    splits: Dict[str, int],
    size: Tuple[int, int] = (416, 416),
    seed: int = 0,
    progress: Optional[ProgressCallback] = None,
) -> Path:
    """Write ``splits`` (e.g. {"train": 2000, "val": 300}) of synthetic images to ``out``.

    Image i of a split is rendered from its own random stream, so the output is the same
    for the same seed whatever is interrupted or re-run: images already on disk are kept
    (resume), annotations are written last and atomically.
    """
    out = Path(out)
    total, done = sum(splits.values()), 0
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SYNTH_CLASSES)]
    for split, count in splits.items():
        ann_file, image_dir = split_paths(out, split)
        image_dir.mkdir(parents=True, exist_ok=True)
        ann_file.parent.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        streams = _split_seed(seed, split).spawn(count)
        for i, stream in enumerate(streams):
            sample = render_sample(np.random.default_rng(stream), size)
            name = f"{i:06d}.jpg"
            path = image_dir / name
            if not path.is_file():
                ok, data = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
                atomic_write_bytes(path, data.tobytes())
            images.append({"id": i + 1, "file_name": name, "height": size[0], "width": size[1]})
            for box, label in zip(sample.boxes, sample.labels):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0,
                })
            done += 1
            report(progress, "synth", done, total)
        atomic_write_json(ann_file, {"info": {"description": f"edgedet synthetic shapes, seed {seed}"},
                                     "images": images, "annotations": annotations, "categories": categories}, indent=None)
    return out
