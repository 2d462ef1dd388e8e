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


def _write_coco(root, doc):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "val.json").write_text(json.dumps(doc))
    return root / "annotations" / "val.json"


@pytest.mark.parametrize("change, message", [
    (lambda d: d["images"][0].update(id="abc"), "images[0] has no usable 'id' ('abc', not an integer)"),
    (lambda d: d["categories"][0].pop("id"), "categories[0] has no usable 'id' (missing)"),
    (lambda d: d["images"].__setitem__(0, 7), "images[0] is a int, not an object"),
    (lambda d: d.__setitem__("annotations", {}), "'annotations' is a dict, not a list"),
], ids=["string-image-id", "category-without-id", "image-not-object", "annotations-not-list"])
def test_malformed_coco_files_are_one_line_errors(tmp_path, dataset, change, message):
    from edgedet.data.coco import DatasetError

    doc = json.loads(dataset.annotation_file.read_text())
    change(doc)
    ann = _write_coco(tmp_path, doc)
    with pytest.raises(DatasetError, match=r"val\.json: " + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        CocoDetection(ann, dataset.image_root)


def test_what_validation_drops_is_not_scored(tmp_path, dataset, caplog):
    # Broken annotations (no bbox, NaN bbox, not an object, no id/area) are dropped with a warning,
    # and the scores are computed on the repaired ground truth: perfect predictions still score 1.
    doc = json.loads(dataset.annotation_file.read_text())
    first = doc["images"][0]["id"]
    doc["annotations"] += [{"image_id": first, "category_id": doc["categories"][0]["id"]},
                           {"image_id": first, "category_id": doc["categories"][0]["id"], "bbox": [float("nan")] * 4},
                           "not an annotation"]
    for a in doc["annotations"][:3]:
        a.pop("id", None)
        a.pop("area", None)
    ann = _write_coco(tmp_path, doc)
    repaired = CocoDetection(ann, dataset.image_root)
    assert repaired.dropped == {"malformed or missing bbox": 1, "bbox with NaN or infinite values": 1,
                                "annotation that is not an object": 1}
    assert "dropped 1: malformed or missing bbox" in caplog.text
    metrics = evaluate_predictions(repaired, _as_results(repaired))
    assert metrics.AP == pytest.approx(1.0)


def test_missing_annotations_list_is_warned(tmp_path, dataset, caplog):
    doc = json.loads(dataset.annotation_file.read_text())
    del doc["annotations"]
    CocoDetection(_write_coco(tmp_path, doc), dataset.image_root)
    assert "no 'annotations' list: every image counts as having no objects" in caplog.text


def test_eval_goes_past_an_unreadable_image_and_refuses_other_class_counts(tmp_path):
    import torch
    from click.testing import CliRunner

    from edgedet import demo_checkpoint
    from edgedet.cli import cli

    data_dir = tmp_path / "synth"
    write_synth_dataset(data_dir, {"val": 4}, size=(128, 128), seed=2)
    broken = sorted((data_dir / "images" / "val").iterdir())[0]
    broken.write_bytes(b"not an image")
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "demo", "--data", str(data_dir), "--input-size", "128",
                                 "--json", str(tmp_path / "nowhere" / "m.json")])
    assert result.exit_code == 1 and "could not write the metrics" in result.output and "AP50" in result.output
    result = runner.invoke(cli, ["eval", "demo", "--data", str(data_dir), "--input-size", "128"])
    assert result.exit_code == 1 and "AR100" in result.output
    assert f"left out (1 images could not be read; scored on 3)" in result.output
    assert f"{broken}: not a decodable image" in result.output

    state = torch.load(demo_checkpoint(), weights_only=True)
    state["model"] = {k: (v[:3] if k.startswith("head.cls_preds") else v) for k, v in state["model"].items()}
    three = tmp_path / "three.pth"
    torch.save(state, three)
    result = runner.invoke(cli, ["eval", str(three), "--data", str(data_dir), "--input-size", "128"])
    assert result.exit_code == 1 and "three.pth predicts 3 classes" in result.output and "has 6" in result.output


def test_eval_of_an_onnx_model_without_metadata_is_one_line(tmp_path):
    import onnx
    from click.testing import CliRunner

    from edgedet.cli import cli
    from edgedet.exporters import export_model

    data_dir = tmp_path / "synth"
    write_synth_dataset(data_dir, {"val": 2}, size=(64, 64), seed=2)
    path = tmp_path / "bare.onnx"
    export_model("yolox-nano", path, num_classes=6, input_size=(64, 64), simplify=False, echo=lambda _m: None)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    result = CliRunner().invoke(cli, ["eval", str(path), "--data", str(data_dir)])
    assert result.exit_code == 1 and "bare.onnx: metadata key edgedet.format_version is missing" in result.output
