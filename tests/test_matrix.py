import json

import pytest
from click.testing import CliRunner

from edgedet.cli import cli
from edgedet.workflows.matrix import Cell, pareto_front


def test_pareto_front():
    cells = [Cell("a", "fp32", "ok", ap=0.5, p50_ms=10), Cell("b", "int8", "ok", ap=0.45, p50_ms=5),
             Cell("c", "fp16", "ok", ap=0.4, p50_ms=8), Cell("d", "fp32", "ok", ap=0.6, p50_ms=20),
             Cell("e", "fp32", "failed")]
    assert [c.size for c in pareto_front(cells)] == ["b", "a", "d"]


@pytest.mark.slow
def test_matrix_two_cells_resume_and_a_failing_cell(tmp_path, reference_ckpt, calib_dir):
    out = tmp_path / "report"
    args = ["matrix", "--sizes", "nano", "--precisions", "fp32,int8", "--input-size", "64", "--iters", "3",
            "--ckpt", f"nano={reference_ckpt}", "--out", str(out)]
    first = CliRunner().invoke(cli, args)  # int8 without --calib fails, fp32 succeeds
    assert first.exit_code == 1, first.output
    report = json.loads((out / "report.json").read_text())
    status = {c["precision"]: c for c in report["cells"]}
    assert status["fp32"]["status"] == "ok" and status["int8"]["status"] == "failed"
    assert "int8 needs --calib" in status["int8"]["reason"]
    assert (out / "report.md").is_file() and (out / "pareto.png").stat().st_size > 0
    second = CliRunner().invoke(cli, args + ["--calib", str(calib_dir), "--budget-ms", "10000"])
    assert second.exit_code == 0, second.output
    assert "nano fp32: done before, skipped" in second.output
    report = json.loads((out / "report.json").read_text())
    assert all(c["status"] == "ok" for c in report["cells"]) and "Within 10000 ms" in report["choice"]
    assert "no weights" not in (out / "report.md").read_text()  # the reference weights count as weights


@pytest.fixture
def calib_dir(tmp_path, sample_images):
    import cv2

    folder = tmp_path / "calib"
    folder.mkdir()
    for i, img in enumerate(sample_images):
        cv2.imwrite(str(folder / f"{i}.jpg"), img)
    return folder
