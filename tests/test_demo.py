import pytest

from edgedet.workflows.demo import run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    lines = []
    result = run_demo(tmp_path / "demo", echo=lines.append, eval_images=4, calib_images=4, bench_iters=3)
    assert (tmp_path / "demo" / "yolox-nano.onnx").is_file()
    assert (tmp_path / "demo" / "infer" / "predictions.jsonl").read_text().count("\n") == 4
    assert result["infer"].done == 4 and not result["infer"].failures
    assert any(line.startswith("yolox-nano ") for line in lines) and "outputs:" in lines[-1]
    assert (tmp_path / "demo" / "yolox-nano-int8.onnx").is_file() and len(result["bench"]) == 2
