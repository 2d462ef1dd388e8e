import os

import pytest

from edgedet.runtime.fileio import atomic_write_bytes, atomic_write_json


def test_atomic_write_replaces_whole_file_with_readable_permissions(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json(path, {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert path.stat().st_mode & 0o777 == 0o644
    os.chmod(path, 0o600)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x.bin", object())  # not bytes: the write fails
    assert list(tmp_path.iterdir()) == []
