import json

import numpy as np
import pytest

from edgedet.data.coco import CocoDetection
from edgedet.data.synth_dataset import write_synth_dataset
from edgedet.eval import evaluate_predictions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synth_dataset(root, {"val": 5}, size=(128, 128), seed=2)
    return CocoDetection.from_dir(root, "val")


def _as_results(ds, jitter=0.0, drop_every=0):
    out = []
    for i in range(len(ds)):
        boxes, labels = ds.annotations(i)
        for k, (b, c) in enumerate(zip(boxes, labels)):
            if drop_every and k % drop_every == 0:
                continue
            x1, y1, x2, y2 = (float(v) for v in b)
            out.append({"image_id": ds.image_id(i), "category_id": int(c),
                        "bbox": [x1 + jitter, y1, x2 - x1, y2 - y1], "score": 0.9})
    return out


def test_perfect_predictions_score_one(dataset):
    m = evaluate_predictions(dataset, _as_results(dataset))
    assert m.AP == pytest.approx(1.0) and m.AP50 == pytest.approx(1.0)


def test_missing_and_shifted_predictions_score_lower(dataset):
    assert evaluate_predictions(dataset, _as_results(dataset, drop_every=2)).AP < 0.8
    assert evaluate_predictions(dataset, _as_results(dataset, jitter=3.0)).AP < 0.9
    assert evaluate_predictions(dataset, []).AP == 0.0


def test_wrong_class_scores_zero(dataset):
    results = [dict(r, category_id=(r["category_id"] + 1) % 6) for r in _as_results(dataset)]
    assert evaluate_predictions(dataset, results).AP < 0.05


@pytest.mark.slow
def test_eval_command_on_a_checkpoint_and_an_onnx_model(tmp_path):
    from click.testing import CliRunner

    from edgedet.cli import cli
    from edgedet.exporters import export_model

    data_dir = tmp_path / "synth"
    write_synth_dataset(data_dir, {"val": 5}, size=(128, 128), seed=2)
    runner = CliRunner()
    keys = {"AP", "AP50", "AP75", "APs", "APm", "APl"}

    # The shipped checkpoint (.pth, PyTorch path) on its own classes: a trained model scores.
    out = tmp_path / "pth.json"
    result = runner.invoke(cli, ["eval", "demo", "--data", str(data_dir), "--input-size", "128", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "AP50" in result.output and "AR100" in result.output
    metrics = json.loads(out.read_text())
    assert keys <= set(metrics) and all(0.0 <= metrics[k] <= 1.0 for k in keys) and metrics["AP50"] > 0.1

    # An .onnx export (runtime path), and one whose class count differs from the data's: one line, exit 1.
    onnx_path = tmp_path / "six.onnx"
    export_model("yolox-nano", onnx_path, num_classes=6, input_size=(128, 128), echo=lambda _m: None)
    out = tmp_path / "onnx.json"
    result = runner.invoke(cli, ["eval", str(onnx_path), "--data", str(data_dir), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert keys <= set(json.loads(out.read_text()))
    wrong = tmp_path / "three.onnx"
    export_model("yolox-nano", wrong, num_classes=3, input_size=(128, 128), echo=lambda _m: None)
    result = runner.invoke(cli, ["eval", str(wrong), "--data", str(data_dir)])
    assert result.exit_code == 1 and "3 classes" in result.output and "6" in result.output
