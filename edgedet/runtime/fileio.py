"""Atomic file writes: a temporary file in the target folder, fsync, then a rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "check_writable", "json_safe_path"]


def check_writable(folder: Union[str, Path]) -> None:
    """Raise OSError, naming ``folder``, unless a file can be created in it (creating it if
    needed): checked before long work, so that a run does not fail only at its end."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OSError(f"{folder}: cannot write there ({e.strerror or e})") from None


def json_safe_path(path: str) -> str:
    """A file name for JSON: bytes that are not UTF-8 (kept by Python as lone surrogates, which
    strict JSON readers reject) become ``\\xNN`` escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one,
    never a part; on any failure the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777  # keep a replaced file's permissions
    except FileNotFoundError:
        mode = 0o644  # mkstemp's 0600 would make outputs unreadable to anyone else
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: Union[str, Path], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Union[str, Path], obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")
