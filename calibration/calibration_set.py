"""Calibration sets: images pre-processed exactly as the runtime does, cached on disk.

A ``CalibrationSet`` satisfies ONNX Runtime's ``CalibrationDataReader`` protocol directly:
``get_next()`` returns ``{input_name: batch}`` (``"images"`` in edgedet's exports) or None, and it can be iterated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Union

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgedet.runtime.fileio import atomic_write_bytes
from edgedet.runtime.letterbox import preprocess
from edgedet.runtime.metadata import ModelMetadata
from edgedet.runtime.sources import IMAGE_EXTENSIONS, read_image

__all__ = ["CalibrationError", "CalibrationSet", "find_calibration_images", "default_cache_dir"]

log = logging.getLogger(__name__)


class CalibrationError(ValueError):
    """An unusable calibration source, with a one-line reason."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgedet" / "calibration"


def find_calibration_images(source: Union[str, Path], split: str = "train") -> List[Path]:
    """Images of a calibration source: a folder of images (recursive), or a COCO-format
    dataset (``edgedet data synth`` output included), whose ``split`` is used."""
    root = Path(source)
    if not root.exists():
        raise CalibrationError(f"{root}: no such calibration source")
    if (root / "annotations").is_dir():
        ann = root / "annotations" / f"{split}.json"
        if not ann.is_file():
            raise CalibrationError(f"{root}: COCO dataset without a {split} split ({ann})")
        try:
            doc = json.loads(ann.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CalibrationError(f"{ann}: unreadable annotations ({e})") from None
        folder = root / "images" / split
        paths = sorted(folder / im["file_name"] for im in doc.get("images", []) if (folder / im["file_name"]).is_file())
    elif root.is_dir():
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    elif root.is_file() and root.suffix.lower() in IMAGE_EXTENSIONS:
        paths = [root]
    else:
        raise CalibrationError(f"{root}: not an image folder or a COCO-format dataset")
    if not paths:
        raise CalibrationError(f"{root}: no images found")
    return paths


class CalibrationSet(CalibrationDataReader):
    """``num_images`` images sampled by ``seed`` from ``source``, letterboxed for ``meta``.

    The tensors are built once and cached as ``.npy`` in ``cache_dir``, keyed by the chosen
    files (path, size, mtime), the input size and the pre-processing, so trying another
    calibration method does not decode the images again. Unreadable files are skipped with
    a warning; fewer images than asked is a warning, none an error.
    """

    def __init__(self, source: Union[str, Path], meta: ModelMetadata, num_images: int = 200, seed: int = 0,
                 batch: int = 1, cache_dir: Optional[Path] = None, split: str = "train",
                 input_name: str = "images") -> None:
        if num_images < 1:
            raise CalibrationError(f"num_images must be at least 1, got {num_images}")
        paths = find_calibration_images(source, split)
        if len(paths) < num_images:
            log.warning("%s has %d images, fewer than the %d asked for: using all of them", source, len(paths), num_images)
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(paths), size=min(num_images, len(paths)), replace=False).tolist())
        self.paths = [paths[i] for i in chosen]
        self.meta, self.batch, self.input_name = meta, batch, input_name
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.key = self._key()
        self.cache_hit = False
        self.tensors = self._load_or_build()
        self._cursor = 0

    def _key(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        m = self.meta
        h.update(json.dumps([list(m.input_size), m.pad_value, m.color_order, list(m.mean), list(m.std)]).encode())
        return h.hexdigest()[:24]

    @property
    def images_fingerprint(self) -> str:
        """Hash of the chosen files' paths, sizes and modification times and of the pre-processing:
        the same images prepared the same way (not a hash of the pixels)."""
        return self.key

    def _load_or_build(self) -> np.ndarray:
        cache = self.cache_dir / f"{self.key}.npy"
        if cache.is_file():
            try:
                tensors = np.load(cache, allow_pickle=False)
                self.cache_hit = True
                return tensors
            except (OSError, ValueError):
                log.warning("%s: unreadable calibration cache, rebuilding it", cache)
        blobs = []
        for p in self.paths:
            image, reason = read_image(p)
            if image is None:
                log.warning("%s: skipped for calibration: %s", p, reason)
                continue
            blob, _ = preprocess(image, self.meta.input_size, self.meta.pad_value, self.meta.color_order,
                                 self.meta.mean, self.meta.std)
            blobs.append(blob)
        if not blobs:
            raise CalibrationError("no readable calibration images")
        tensors = np.stack(blobs)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        import io

        buffer = io.BytesIO()
        np.save(buffer, tensors, allow_pickle=False)
        atomic_write_bytes(cache, buffer.getvalue())
        return tensors

    def __len__(self) -> int:
        return len(self.tensors)

    # CalibrationDataReader protocol
    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self._cursor >= len(self.tensors):
            return None
        batch = self.tensors[self._cursor:self._cursor + self.batch]
        self._cursor += self.batch
        return {self.input_name: np.ascontiguousarray(batch)}

    def rewind(self) -> None:
        self._cursor = 0

    def __iter__(self) -> Iterator[Dict[str, np.ndarray]]:
        self.rewind()
        return iter(self.get_next, None)

    def subset(self, count: int) -> np.ndarray:
        return self.tensors[:count]
