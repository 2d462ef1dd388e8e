"""What `edgedet infer` reads: image files, folders, globs, lists of paths or URIs, videos and cameras.

An image is a local ``Path`` or a URI string (``file://``, ``http(s)://``, and with pyarrow
installed every scheme pyarrow's file systems read: ``s3://``, ``gs://``, ``hdfs://`` ...). URIs are
read when the image is processed, by whichever worker processes it, so on a Ray cluster every
node must be able to read them.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "Source", "ImageLocation", "resolve_source", "read_image", "as_image",
           "is_uri", "as_location", "read_bytes"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm", ".gif"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


ImageLocation = Union[Path, str]  # a local file, or a URI (str)

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
HTTP_TIMEOUT_S = 60


def is_uri(location: Union[str, Path]) -> bool:
    """``scheme://...`` (``file://``, ``https://``, ``s3://`` ...) as opposed to a local path."""
    return isinstance(location, str) and _URI.match(location) is not None


def as_location(text: str) -> ImageLocation:
    """A URI stays a string (``Path`` would fold its ``//``); anything else is a local path."""
    return text if is_uri(text) else Path(text)


def read_bytes(location: ImageLocation) -> bytes:
    """The bytes of a local file or a URI. Raises OSError (with a reason) when they cannot be read,
    ImportError when the URI's scheme needs pyarrow and it is not installed."""
    if not is_uri(location):
        return Path(location).read_bytes()
    scheme = location.split("://", 1)[0].lower()
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(location).path)).read_bytes()
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(location, timeout=HTTP_TIMEOUT_S) as response:
                return response.read()
        except ValueError as e:  # a malformed URL
            raise OSError(str(e)) from None
    try:
        from pyarrow import fs
    except ImportError:
        raise ImportError(f"{scheme}:// URIs are read with pyarrow: pip install pyarrow (edgedet[ray] has it)") from None
    try:
        filesystem, path = fs.FileSystem.from_uri(location)
        with filesystem.open_input_stream(path) as stream:
            return stream.readall()
    except (OSError, ValueError) as e:  # pyarrow: ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise OSError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


@dataclass
class Source:
    kind: str  # "images" | "video" | "camera"
    images: List[ImageLocation]  # for "images", in order
    root: Optional[Path] = None  # relative paths in outputs are taken from here
    video: Optional[Union[str, int]] = None  # a file path or a camera index
    # Entries of a folder that could not be looked at (dangling or looping links, unreadable
    # folders): (path, reason). A run reports them as failures.
    unreadable: List[Tuple[str, str]] = field(default_factory=list)

    def relative(self, path: ImageLocation) -> str:
        """The name of ``path`` in the outputs: relative to ``root`` for a local file, the URI
        without its scheme (``bucket/key.jpg``) for a URI."""
        if is_uri(path):
            parts = urllib.parse.urlsplit(path)
            return (parts.netloc + parts.path).lstrip("/")
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.as_posix()


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


LIST_EXTENSIONS = {".txt", ".lst", ".parquet"}
# Columns of a Parquet list that hold the images, in order of preference.
PARQUET_COLUMNS = ("path", "uri", "url", "image", "file")


def _list_entries(listing: ImageLocation) -> List[str]:
    """The entries of a list: lines of a text file (blank lines and # comments skipped), or a
    column of a Parquet file (the first of ``PARQUET_COLUMNS``, else its only string column)."""
    try:
        data = read_bytes(listing)
    except (OSError, ImportError) as e:
        raise ValueError(f"{listing}: cannot read the list of images ({e})") from None
    if str(listing).lower().endswith(".parquet"):
        return _parquet_entries(listing, data)
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{listing}: the list is not UTF-8 text ({e})") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _parquet_entries(listing: ImageLocation, data: bytes) -> List[str]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{listing}: Parquet lists are read with pyarrow: pip install pyarrow "
                         "(edgedet[ray] has it)") from None
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ValueError(f"{listing}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    column = next((c for c in PARQUET_COLUMNS if c in strings), strings[0] if len(strings) == 1 else None)
    if column is None:
        raise ValueError(f"{listing}: no image column: name it one of {', '.join(PARQUET_COLUMNS)} "
                         f"(string columns here: {', '.join(strings) or 'none'})")
    return [v.strip() for v in table.column(column).to_pylist() if v and v.strip()]


def _image_list(listing: ImageLocation) -> Source:
    """A list of image paths or URIs (see ``_list_entries``). Relative paths are taken from the
    list's folder (or URI). Missing local files become failures of the run; URIs are read, and
    fail, when processed."""
    entries = _list_entries(listing)
    if not entries:
        raise ValueError(f"{listing}: the list names no images")
    if is_uri(listing):
        base = listing.rsplit("/", 1)[0]
        locations = [as_location(e) if is_uri(e) or posixpath.isabs(e) else f"{base}/{e}" for e in entries]
        return Source("images", locations)
    folder = Path(listing).parent
    locations = [e if is_uri(e) else (e if e.is_absolute() else folder / e) for e in map(as_location, entries)]
    found = [p for p in locations if is_uri(p) or p.is_file()]
    missing = [(str(p), "listed but not found") for p in locations if not is_uri(p) and not p.is_file()]
    return Source("images", found, root=folder, unreadable=missing)


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
    (searched recursively, extensions case-insensitive), a glob pattern, an image URI, or a list
    of image paths or URIs: ``.txt``/``.lst`` (one per line) or ``.parquet`` (a ``path``/``uri``
    column), local or itself a URI.

    Raises ValueError when nothing usable is found.
    """
    if source.isdigit():
        return Source("camera", [], video=int(source))
    if is_uri(source):
        if posixpath.splitext(urllib.parse.urlsplit(source).path)[1].lower() in LIST_EXTENSIONS:
            return _image_list(source)
        return Source("images", [source])
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


def read_image(path: ImageLocation) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Read an image (a local file or a URI) as BGR uint8; returns ``(image, None)`` or ``(None, reason)``.

    The bytes are read by Python (so any path, Unicode included, works and the reason for a
    failure is known) and decoded by OpenCV; 16-bit, gray and alpha images become 8-bit BGR.
    """
    try:
        data = read_bytes(path)
    except PermissionError:
        return None, "permission denied"
    except IsADirectoryError:
        return None, "is a folder"
    except ImportError as e:
        return None, str(e)
    except OSError as e:
        return None, f"cannot read {'URI' if is_uri(path) else 'file'} ({e.strerror or e})"
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
        image, reason = read_image(as_location(item) if isinstance(item, str) else item)
        if image is None:
            raise ValueError(f"{item}: {reason}")
        return image
    if hasattr(item, "convert") and hasattr(item, "mode") and hasattr(item, "size"):  # PIL, without importing it
        return np.asarray(item.convert("RGB"))[:, :, ::-1]
    raise TypeError(f"expected an image path, a numpy array or a PIL image, got {type(item).__name__}")
