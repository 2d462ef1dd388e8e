"""Image lists of paths and URIs (text and Parquet), read by the worker that processes each image."""

import functools
import http.server
import json
import threading

import cv2
import pytest
from click.testing import CliRunner

from edgedet.cli import cli
from edgedet.runtime.sources import read_image, resolve_source


@pytest.fixture(scope="module")
def shots(tmp_path_factory, sample_images):
    root = tmp_path_factory.mktemp("shots")
    for i in range(3):
        cv2.imwrite(str(root / f"{i}.jpg"), sample_images[i])
    (root / "bad.jpg").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def http_root(shots):
    handler = functools.partial(_QuietHandler, directory=str(shots))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _predictions(out):
    return [(r["path"], r["detections"]) for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())]


def test_file_and_http_uris_read_like_the_files(shots, http_root):
    image, reason = read_image((shots / "1.jpg").as_uri())
    assert reason is None and (image == cv2.imread(str(shots / "1.jpg"))).all()
    image, reason = read_image(f"{http_root}/2.jpg")
    assert reason is None and (image == cv2.imread(str(shots / "2.jpg"))).all()
    assert read_image(f"{http_root}/nope.jpg")[1].startswith("cannot read URI (HTTP Error 404")
    assert read_image((shots / "nope.jpg").as_uri())[1].startswith("cannot read URI (")


def test_a_parquet_list_of_uris_gives_the_folders_detections(shots, http_root, exported, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    names = ["0.jpg", "1.jpg", "2.jpg"]
    uris = [(shots / n).as_uri() for n in names[:2]] + [f"{http_root}/2.jpg", f"{http_root}/missing.jpg"]
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "uri": uris}), tmp_path / "list.parquet")
    source = resolve_source(str(tmp_path / "list.parquet"))
    assert source.images == uris and source.unreadable == []

    runner = CliRunner()
    local = runner.invoke(cli, ["infer", str(exported["decoded"]), str(shots), "-o", str(tmp_path / "folder"),
                                "--no-save-images", "--workers", "1"])
    listed = runner.invoke(cli, ["infer", str(exported["decoded"]), str(tmp_path / "list.parquet"),
                                 "-o", str(tmp_path / "listed"), "--workers", "2"])
    assert local.exit_code == 1 and listed.exit_code == 1, listed.output  # bad.jpg; missing.jpg
    assert "missing.jpg: cannot read URI (HTTP Error 404" in listed.output
    by_name = {f.rsplit("/", 1)[-1]: d for f, d in _predictions(tmp_path / "folder")}
    got = _predictions(tmp_path / "listed")
    assert [f.rsplit("/", 1)[-1] for f, _ in got] == names
    assert [d for _, d in got] == [by_name[n] for n in names]  # same boxes, scores, classes
    annotated = sorted(p.name for p in (tmp_path / "listed" / "images").rglob("*.jpg"))
    assert annotated == names


def test_parquet_lists_name_their_column_or_fail_in_one_line(tmp_path, shots):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"file_name": [str(shots / "0.jpg"), "1.jpg"]}), shots / "only.parquet")
    assert [p.name for p in resolve_source(str(shots / "only.parquet")).images] == ["0.jpg", "1.jpg"]
    pq.write_table(pa.table({"a": ["x"], "b": ["y"]}), tmp_path / "two.parquet")
    with pytest.raises(ValueError, match="two.parquet: no image column: name it one of path, uri"):
        resolve_source(str(tmp_path / "two.parquet"))
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="fake.parquet: not a readable Parquet file"):
        resolve_source(str(tmp_path / "fake.parquet"))


def test_a_text_list_can_itself_be_a_uri_with_relative_entries(shots, http_root):
    (shots / "remote.txt").write_text("0.jpg\n# comment\n1.jpg\n")
    source = resolve_source(f"{http_root}/remote.txt")
    assert source.images == [f"{http_root}/0.jpg", f"{http_root}/1.jpg"]
    assert source.relative(source.images[0]) == f"127.0.0.1:{http_root.rsplit(':', 1)[1]}/0.jpg"


def test_a_scheme_pyarrow_cannot_read_is_a_per_image_failure():
    image, reason = read_image("nosuchscheme://bucket/a.jpg")
    assert image is None and reason
