"""`edgedet qat` end to end on a small dataset: files, checkpoint layout, report."""

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from edgedet import demo_checkpoint
from edgedet.cli import cli
from edgedet.data.synth_dataset import write_synth_dataset
from edgedet.models import build_model, read_checkpoint
from edgedet.runtime.metadata import from_props


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("qat-data")
    write_synth_dataset(root, {"train": 16, "val": 4}, size=(128, 128), seed=5)
    return root


@pytest.mark.slow
def test_qat_writes_a_checkpoint_an_int8_model_and_a_report(small_data, tmp_path):
    out = tmp_path / "qat"
    result = CliRunner().invoke(cli, [
        "qat", "--ckpt", "demo", "--data", str(small_data), "--input-size", "128", "--epochs", "1", "--batch", "4",
        "--num-images", "4", "--workers", "0", "--threads", "1", "--eval", str(small_data), "--limit", "4",
        "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "qat.json").read_text())
    assert report["steps"] == 4 and all(np.isfinite(report["loss_first_last"]))
    assert set(report["ap"]) >= {"fp32", "int8", "ap_drop"}
    # the fine-tuned weights: an ordinary checkpoint of the model, changed by the fine-tuning
    state, extra = read_checkpoint(out / "qat.pth")
    model = build_model("yolox-nano", num_classes=6)
    model.load_state_dict(state, strict=True)
    original, _ = read_checkpoint(demo_checkpoint("yolox-nano"))
    assert extra["input_size"] == [128, 128] and extra["qat"]["calibration_images"] == 4
    assert any(not torch.equal(state[k].float(), original[k].float()) for k in state if k.endswith("conv.weight"))
    int8 = onnx.load(str(out / "int8.onnx"))
    meta = from_props({p.key: p.value for p in int8.metadata_props})
    assert sum(n.op_type == "QuantizeLinear" for n in int8.graph.node) > 100
    assert meta.precision == "int8"
    assert "fp32" in result.output and "int8" in result.output


def test_qat_refuses_a_dataset_without_a_train_split(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["qat", "--ckpt", "demo", "--data", str(tmp_path / "empty"), "-o",
                                      str(tmp_path / "out")])
    assert result.exit_code == 1 and "train" in result.output and len(result.output.strip().splitlines()) == 1
