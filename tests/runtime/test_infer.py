"""`edgedet infer` on folders with bad files, resume, video, and the CLI contract."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgedet.cli import cli
from edgedet.runtime import Detector
from edgedet.runtime.infer import infer_images
from edgedet.runtime.sources import resolve_source


@pytest.fixture(scope="module")
def folder(tmp_path_factory, sample_images):
    root = tmp_path_factory.mktemp("photos")
    (root / "sub dir").mkdir()
    for i, img in enumerate(sample_images):
        cv2.imwrite(str(root / f"{i:02d}.jpg"), img)
    cv2.imwrite(str(root / "sub dir" / "ünïcode name.PNG"), sample_images[1])
    cv2.imwrite(str(root / "sixteen.png"), (sample_images[2].astype(np.uint16) * 257))
    cv2.imwrite(str(root / "gray.png"), cv2.cvtColor(sample_images[3], cv2.COLOR_BGR2GRAY))
    data = cv2.imencode(".jpg", sample_images[3])[1].tobytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("this is not a png")
    (root / "notes.txt").write_text("ignored: not an image extension")
    locked = root / "locked.jpg"
    locked.write_bytes(data)
    locked.chmod(0)
    return root


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_folder_with_bad_files(tmp_path, folder, exported):
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(tmp_path / "out")])
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    reasons = {f["path"]: f["reason"] for f in summary["failures"]}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["text.png"].startswith("not a decodable image")
    if os.geteuid() != 0:  # root reads any file
        assert reasons["locked.jpg"] == "permission denied"
    assert result.exit_code == 1
    assert "failed (" in result.output and "empty.jpg: empty file (0 bytes)" in result.output
    records = _lines(out / "predictions.jsonl")
    paths = [r["path"] for r in records]
    assert paths == sorted(paths) and "sub dir/ünïcode name.PNG" in paths
    assert {"sixteen.png", "gray.png"} <= set(paths)
    # a truncated JPEG is either decoded (partly grey) or reported as undecodable, never lost
    assert ("truncated.jpg" in paths) != reasons.get("truncated.jpg", "").startswith("not a decodable image")
    assert (out / "images" / "sub dir" / "ünïcode name.PNG").is_file()
    coco = json.loads((out / "coco_results.json").read_text())
    assert len(coco) == sum(len(r["detections"]) for r in records) > 0
    assert set(coco[0]) == {"image_id", "category_id", "bbox", "score"}


def test_resume_finishes_with_the_same_files(tmp_path, folder, exported):
    detector = Detector(exported["raw"], threads=1)
    good = tmp_path / "good"
    good.mkdir()
    for p in sorted(folder.glob("*.jpg"))[:5]:
        shutil.copy(p, good / p.name)
    full = tmp_path / "full"
    infer_images(detector, resolve_source(str(good)), full, save_images=False)
    part = tmp_path / "part"
    infer_images(detector, resolve_source(str(good)), part, save_images=False)
    # Simulate a kill after two images: two complete lines and a torn third.
    lines = (part / "predictions.jsonl").read_text().splitlines(keepends=True)
    (part / "predictions.jsonl").write_text("".join(lines[3:5]) + lines[0][: len(lines[0]) // 2])
    summary = infer_images(detector, resolve_source(str(good)), part, save_images=False, resume=True)
    assert summary.resumed == 2 and summary.done == 3
    for name in ("predictions.jsonl", "coco_results.json"):
        assert (part / name).read_bytes() == (full / name).read_bytes()


def test_batched_and_threaded_runs_agree(tmp_path, folder, exported):
    detector = Detector(exported["raw"], threads=1)
    source = resolve_source(str(folder))
    a = infer_images(detector, source, tmp_path / "a", save_images=False, workers=1, batch=1)
    b = infer_images(detector, source, tmp_path / "b", save_images=False, workers=3, batch=4)
    assert a.done == b.done and len(a.failures) == len(b.failures)
    ra, rb = _lines(tmp_path / "a" / "predictions.jsonl"), _lines(tmp_path / "b" / "predictions.jsonl")
    assert [r["path"] for r in ra] == [r["path"] for r in rb]
    for x, y in zip(ra, rb):
        assert [d["class_id"] for d in x["detections"]] == [d["class_id"] for d in y["detections"]]
        np.testing.assert_allclose([d["box"] for d in x["detections"]], [d["box"] for d in y["detections"]], atol=0.02)


def test_single_image_and_glob(tmp_path, folder, exported):
    runner = CliRunner()
    one = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder / "00.jpg"), "-o", str(tmp_path / "one"),
                              "--no-save-images"])
    assert one.exit_code == 0, one.output
    assert len(_lines(tmp_path / "one" / "predictions.jsonl")) == 1
    assert not (tmp_path / "one" / "images").exists()
    glob_run = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder / "0*.jpg"), "-o", str(tmp_path / "g"),
                                   "--classes", "0,1,2", "--no-save-images"])
    assert glob_run.exit_code == 0, glob_run.output
    records = _lines(tmp_path / "g" / "predictions.jsonl")
    assert len(records) == 5
    assert {d["class_id"] for r in records for d in r["detections"]} <= {0, 1, 2}


def test_video(tmp_path, exported, sample_images):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for img in sample_images[:1] * 6:
        writer.write(cv2.resize(img, (160, 120)))
    writer.release()
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(video), "-o", str(tmp_path / "v"),
                                      "--max-frames", "4"])
    assert result.exit_code == 0, result.output
    records = _lines(tmp_path / "v" / "predictions.jsonl")
    assert [r["frame"] for r in records] == [1, 2, 3, 4]
    assert (tmp_path / "v" / "annotated.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    "source, message",
    [("/no/such/place", "no such file, folder or camera index"), ("{empty}", "no images found")],
    ids=["missing", "empty-folder"],
)
def test_usage_errors_exit_2(tmp_path, exported, source, message):
    if source == "{empty}":
        (tmp_path / "empty").mkdir()
        source = str(tmp_path / "empty")
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), source, "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output


def test_unknown_provider_is_a_clear_error(tmp_path, exported):
    # A real image folder: the provider, not the source, is what must be refused.
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(folder), "--provider", "cudaa"])
    assert result.exit_code == 2 and "unknown provider 'cudaa'" in result.output and "Did you mean 'cuda'?" in result.output


def test_a_new_run_starts_a_fresh_images_folder(tmp_path, folder, exported):
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(out), "--provider", "cpu"])
    assert first.exit_code == 1 and (out / "images" / "00.jpg").is_file()
    second = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder / "01.jpg"), "-o", str(out),
                                 "--provider", "cpu", "--trt-cache", str(tmp_path / "trt")])
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in (out / "images").rglob("*.jpg")) == ["01.jpg"]


def test_resume_refuses_other_settings(tmp_path, folder, exported):
    out = tmp_path / "out"
    runner = CliRunner()
    runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(out), "--provider", "cpu"])
    other = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(out), "--provider", "cpu",
                                "--resume", "--conf", "0.9"])
    assert other.exit_code == 1
    assert "the earlier run used other settings (conf 0.25 -> 0.9); resuming would mix them" in other.output
    (out / "run.json").unlink()
    lost = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(out), "--provider", "cpu",
                               "--resume"])
    assert lost.exit_code == 1 and "--resume needs run.json from the earlier run" in lost.output


def test_annotated_names_never_collide(tmp_path, exported, sample_images):
    from edgedet.runtime.infer import annotated_names

    assert annotated_names(["x.jpg", "x.tiff", "x.webp", "X.JPG", "a/x.jpg"]) == {
        "x.jpg": "x.jpg", "x.tiff": "x.tiff.jpg", "x.webp": "x.webp.jpg", "X.JPG": "X~2.JPG", "a/x.jpg": "a/x.jpg"}
    src = tmp_path / "src"
    src.mkdir()
    for ext in (".jpg", ".tiff", ".webp"):
        cv2.imwrite(str(src / f"x{ext}"), sample_images[0])
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["x.jpg", "x.tiff.jpg", "x.webp.jpg"]


def test_folder_mode_names_what_it_cannot_read_and_skips_its_own_output(tmp_path, exported, sample_images):
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a.jpg"), sample_images[0])
    Image.fromarray(sample_images[1][:, :, ::-1]).save(src / "b.gif")
    (src / "dangling.jpg").symlink_to(src / "nowhere.jpg")
    (src / "loop1.jpg").symlink_to(src / "loop2.jpg")
    (src / "loop2.jpg").symlink_to(src / "loop1.jpg")
    out = src / "runs"  # inside SOURCE
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["infer", str(exported["decoded"]), str(src), "-o", str(out)])
        assert result.exit_code == 1
        assert "2 images done, 3 failed" in result.output
    assert "dangling.jpg: dangling or looping symbolic link" in result.output
    assert "loop1.jpg: dangling or looping symbolic link" in result.output
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.jpg", "b.gif.jpg"]


def test_an_unknown_class_filter_is_a_usage_error(tmp_path, folder, exported):
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(folder), "--classes", "unicorn",
                                      "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Invalid value for --classes: unknown class 'unicorn'" in result.output


def test_a_full_disk_stops_the_run_with_its_report(tmp_path, folder, exported, monkeypatch):
    import errno

    import edgedet.runtime.infer as infer_module

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(infer_module.os, "write", no_space)
    monkeypatch.setattr(infer_module, "atomic_write_text", no_space)
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(tmp_path / "o"),
                                      "--no-save-images"])
    assert result.exit_code == 1
    assert "0 images done" in result.output  # the summary is still printed, then the reason it stopped
    assert "predictions.jsonl: cannot write (No space left on device); stopped after 0 images" in result.output
    assert "could not write the outputs" in result.output


def test_output_folder_that_cannot_be_written_is_refused_first(tmp_path, folder, exported):
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", "/proc/edgedet-out"])
    assert result.exit_code == 1 and "/proc/edgedet-out: cannot write there" in result.output


def test_non_utf8_file_names_are_valid_json(tmp_path, exported, sample_images):
    src = tmp_path / "src"
    src.mkdir()
    ok, data = cv2.imencode(".jpg", sample_images[0])
    (src / os.fsdecode(b"caf\xe9.jpg")).write_bytes(data.tobytes())
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    raw = (out / "predictions.jsonl").read_bytes()
    assert json.loads(raw.decode("utf-8"))["path"] == "caf\\xe9.jpg"
    assert "\\udc" not in raw.decode("utf-8")


@pytest.mark.slow
def test_ctrl_c_twice_exits_130_and_the_run_resumes(tmp_path, exported, sample_images):
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "many"
    src.mkdir()
    for i in range(300):
        cv2.imwrite(str(src / f"{i:03d}.jpg"), sample_images[i % len(sample_images)])
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from edgedet.cli import main; main()", "infer", str(exported["decoded"]), str(src),
           "-o", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "predictions.jsonl").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # an impatient second Ctrl-C aborted the interpreter (rc 134)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    done = len((out / "predictions.jsonl").read_text().splitlines())
    assert 0 < done < 300
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} already done before" in resumed.stdout
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 300


def test_an_unreadable_subfolder_is_named(tmp_path, monkeypatch, sample_images):
    # As root every folder is readable, so the listing error os.walk reports is simulated.
    import edgedet.runtime.sources as sources

    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    cv2.imwrite(str(src / "a.jpg"), sample_images[0])
    real_walk = os.walk

    def walk(root, onerror=None, **kw):
        for folder, dirs, files in real_walk(root, onerror=onerror, **kw):
            if "locked" in dirs:
                dirs.remove("locked")
                onerror(PermissionError(13, "Permission denied", str(Path(folder) / "locked")))
            yield folder, dirs, files

    from pathlib import Path

    monkeypatch.setattr(sources.os, "walk", walk)
    source = resolve_source(str(src))
    assert [p.name for p in source.images] == ["a.jpg"]
    assert source.unreadable == [("locked", "cannot list folder (Permission denied)")]


def test_a_text_list_of_images_is_a_source(tmp_path, sample_images):
    cv2.imwrite(str(tmp_path / "a.jpg"), sample_images[0])
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "b.jpg"), sample_images[1])
    listing = tmp_path / "list.txt"
    listing.write_text(f"# captures\na.jpg\n\n{tmp_path / 'sub' / 'b.jpg'}\nmissing.jpg\n")
    source = resolve_source(str(listing))
    assert [p.name for p in source.images] == ["a.jpg", "b.jpg"]
    assert source.unreadable == [(str(tmp_path / "missing.jpg"), "listed but not found")]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="the list names no images"):
        resolve_source(str(empty))
