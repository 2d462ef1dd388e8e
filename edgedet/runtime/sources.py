"""What `edgedet infer` reads: image files, folders, globs, videos and cameras."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "Source", "resolve_source", "read_image", "as_image"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm", ".gif"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass
class Source:
    kind: str  # "images" | "video" | "camera"
    images: List[Path]  # for "images", sorted
    root: Optional[Path] = None  # relative paths in outputs are taken from here
    video: Optional[Union[str, int]] = None  # a file path or a camera index
    # Entries of a folder that could not be looked at (dangling or looping links, unreadable
    # folders): (path, reason). A run reports them as failures.
    unreadable: List[Tuple[str, str]] = field(default_factory=list)

    def relative(self, path: Path) -> str:
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.as_posix()


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


LIST_EXTENSIONS = {".txt", ".lst"}


def _image_list(listing: Path) -> Source:
    """A text file with one image path per line (relative paths are taken from the file's folder;
    blank lines and lines starting with # are skipped). Missing files become failures of the run."""
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{listing}: cannot read the list of images ({e})") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not entries:
        raise ValueError(f"{listing}: the list names no images")
    paths = [p if p.is_absolute() else listing.parent / p for p in map(Path, entries)]
    found = [p for p in paths if p.is_file()]
    missing = [(str(p), "listed but not found") for p in paths if not p.is_file()]
    return Source("images", found, root=listing.parent, unreadable=missing)


def _walk_images(root: Path) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Image files under ``root`` (recursive, sorted; linked folders are not followed, so a link
    loop cannot recurse) and what could not be looked at, with the reason."""
    found: List[Path] = []
    unreadable: List[Tuple[str, str]] = []

    def on_error(e: OSError) -> None:
        unreadable.append((Path(e.filename).relative_to(root).as_posix() if e.filename else str(root),
                           f"cannot list folder ({e.strerror or e})"))

    for folder, _dirs, files in os.walk(root, onerror=on_error):
        for name in files:
            p = Path(folder) / name
            if not _is_image(p):
                continue
            if p.is_symlink() and not p.exists():
                unreadable.append((p.relative_to(root).as_posix(), "dangling or looping symbolic link"))
            else:
                found.append(p)
    return sorted(found), sorted(unreadable)


def resolve_source(source: str) -> Source:
    """Classify ``source``: a camera index (``0``), a video file, an image file, a folder
    (searched recursively, extensions case-insensitive), a glob pattern, or a ``.txt``/``.lst``
    list of image paths, one per line.

    Raises ValueError when nothing usable is found.
    """
    if source.isdigit():
        return Source("camera", [], video=int(source))
    path = Path(source)
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        return _image_list(path)
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            return Source("video", [], video=str(path))
        return Source("images", [path], root=path.parent)  # any extension: the file was named explicitly
    if path.is_dir():
        found, unreadable = _walk_images(path)
        if not found and not unreadable:
            raise ValueError(f"{source}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, any case)")
        return Source("images", found, root=path, unreadable=unreadable)
    if any(ch in source for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(source, recursive=True) if os.path.isfile(p) and _is_image(Path(p)))
        if not found:
            raise ValueError(f"{source}: the pattern matches no image files")
        return Source("images", found, root=Path(os.path.commonpath([str(p.parent) for p in found])))
    raise ValueError(f"{source}: no such file, folder or camera index")


def read_image(path: Path) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Read an image as BGR uint8; returns ``(image, None)`` or ``(None, reason)``.

    The bytes are read by Python (so any path, Unicode included, works and the reason for a
    failure is known) and decoded by OpenCV; 16-bit, gray and alpha images become 8-bit BGR.
    """
    try:
        data = path.read_bytes()
    except PermissionError:
        return None, "permission denied"
    except IsADirectoryError:
        return None, "is a folder"
    except OSError as e:
        return None, f"cannot read file ({e.strerror or e})"
    if not data:
        return None, "empty file (0 bytes)"
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as e:
        return None, f"cannot decode image ({str(e).strip().splitlines()[-1]})"
    if image is None:
        return None, "not a decodable image (corrupt, truncated, another format, or over OpenCV's pixel limit)"
    return image, None


def as_image(item: Union[str, Path, np.ndarray, object]) -> np.ndarray:
    """An image array from what a caller hands ``Detector``: a path (str or Path, read and
    decoded; an unreadable file is a ValueError naming it and why), a numpy array (returned as it
    is: BGR, gray or BGRA; uint8, uint16 or float) or a PIL image (converted to BGR)."""
    if isinstance(item, np.ndarray):
        return item
    if isinstance(item, (str, Path)):
        image, reason = read_image(Path(item))
        if image is None:
            raise ValueError(f"{item}: {reason}")
        return image
    if hasattr(item, "convert") and hasattr(item, "mode") and hasattr(item, "size"):  # PIL, without importing it
        return np.asarray(item.convert("RGB"))[:, :, ::-1]
    raise TypeError(f"expected an image path, a numpy array or a PIL image, got {type(item).__name__}")
