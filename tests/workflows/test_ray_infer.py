"""`edgedet infer --engine ray` on a local Ray (2 CPUs): the local engine's outputs, failures and resume."""

import json

import cv2
import pytest
from click.testing import CliRunner

from edgedet.cli import cli

ray = pytest.importorskip("ray")  # in the dev extra, so the suite runs it; the runtime install has no Ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, sample_images):
    root = tmp_path_factory.mktemp("ray-src")
    for i in range(9):
        cv2.imwrite(str(root / f"{i:02d}.jpg"), sample_images[i % len(sample_images)])
    (root / "broken.jpg").write_bytes(b"not an image")
    (root / "sub").mkdir()
    cv2.imwrite(str(root / "sub" / "x.png"), sample_images[0])
    return root


def _outputs(out):
    summary = json.loads((out / "summary.json").read_text())
    return ((out / "predictions.jsonl").read_text(), (out / "coco_results.json").read_text(),
            summary["failures"], summary["done"] + summary.get("resumed", 0))


@pytest.mark.slow
def test_ray_engine_gives_the_local_outputs_and_resumes_by_shards(local_ray, folder, exported, tmp_path):
    from edgedet.runtime.sources import resolve_source
    from edgedet.workflows.ray_infer import infer_ray

    runner = CliRunner()
    local = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(tmp_path / "local"),
                                "--no-save-images"])
    assert local.exit_code == 1  # broken.jpg
    ray_run = runner.invoke(cli, ["infer", str(exported["decoded"]), str(folder), "-o", str(tmp_path / "ray"),
                                  "--no-save-images", "--engine", "ray"])
    assert ray_run.exit_code == 1, ray_run.output
    assert "broken.jpg: not a decodable image" in ray_run.output
    local_files, ray_files = _outputs(tmp_path / "local"), _outputs(tmp_path / "ray")
    assert ray_files[:3] == local_files[:3]  # same predictions (boxes, scores, classes), same failures

    # Resume: shards of 4 images; an interrupted run is one whose later shards and final files are missing.
    out = tmp_path / "sharded"
    options = {"providers": "cpu", "threads": 1}
    infer_ray(str(exported["decoded"]), resolve_source(str(folder)), out, detector_options=options,
              save_images=False, shard_size=4)
    shards = sorted((out / "shards").iterdir())
    assert len(shards) == 3
    for f in [shards[-1], out / "predictions.jsonl", out / "coco_results.json", out / "summary.json"]:
        f.unlink()
    summary = infer_ray(str(exported["decoded"]), resolve_source(str(folder)), out, detector_options=options,
                        save_images=False, shard_size=4, resume=True)
    assert summary.resumed == 8
    assert (out / "predictions.jsonl").read_text() == local_files[0]
    assert (out / "coco_results.json").read_text() == local_files[1]


def test_ray_engine_refuses_videos_and_other_settings_on_resume(local_ray, exported, folder, tmp_path):
    from edgedet.runtime.sources import resolve_source
    from edgedet.workflows.ray_infer import infer_ray

    out = tmp_path / "o"
    infer_ray(str(exported["decoded"]), resolve_source(str(folder / "00.jpg")), out,
              detector_options={"providers": "cpu", "threads": 1}, save_images=False)
    with pytest.raises(ValueError, match="the earlier run used other settings"):
        infer_ray(str(exported["decoded"]), resolve_source(str(folder / "00.jpg")), out,
                  detector_options={"providers": "cpu", "threads": 1, "conf": 0.9}, save_images=False, resume=True)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    result = CliRunner().invoke(cli, ["infer", str(exported["decoded"]), str(video), "--engine", "ray"])
    assert result.exit_code == 2 and "--engine ray takes images" in result.output


def test_ray_engine_reads_a_parquet_list_of_uris(local_ray, exported, folder, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgedet.runtime import Detector
    from edgedet.runtime.infer import infer_images
    from edgedet.runtime.sources import resolve_source
    from edgedet.workflows.ray_infer import infer_ray

    uris = [(folder / n).as_uri() for n in ("00.jpg", "broken.jpg", "sub/x.png", "gone.jpg")]
    pq.write_table(pa.table({"path": uris}), tmp_path / "list.parquet")
    options = {"providers": "cpu", "threads": 1}
    ray_summary = infer_ray(str(exported["decoded"]), resolve_source(str(tmp_path / "list.parquet")), tmp_path / "ray",
                            detector_options=options, save_images=False)
    local_summary = infer_images(Detector(exported["decoded"], **options), resolve_source(str(tmp_path / "list.parquet")),
                                 tmp_path / "local", save_images=False)
    assert ray_summary.done == local_summary.done == 2
    assert sorted(ray_summary.failures) == sorted(local_summary.failures)
    assert [f.split("/")[-1] for f, _ in sorted(ray_summary.failures)] == ["broken.jpg", "gone.jpg"]
    assert (tmp_path / "ray" / "predictions.jsonl").read_text() == (tmp_path / "local" / "predictions.jsonl").read_text()
