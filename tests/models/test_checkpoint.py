import logging
import pickle

import pytest
import torch

from edgedet.models import CheckpointError, build_model, load_checkpoint
from edgedet.models.checkpoint import guess_model_name
from tests.conftest import reference_state_dict


@pytest.fixture(scope="module")
def nano_weights():
    return reference_state_dict("nano")


def _fresh(num_classes=80, name="yolox-nano"):
    return build_model(name, num_classes=num_classes).eval()


def _same(model, state):
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items())


def test_official_layout(tmp_path, nano_weights):
    path = tmp_path / "yolox_nano.pth"
    torch.save({"start_epoch": 300, "model": nano_weights, "optimizer": None, "best_ap": 25.8}, path)
    model = _fresh()
    result = load_checkpoint(model, path)
    assert _same(model, nano_weights)
    assert result.extra["start_epoch"] == 300 and not result.skipped_keys


def test_bare_state_dict(tmp_path, nano_weights):
    path = tmp_path / "bare.pth"
    torch.save(nano_weights, path)
    model = _fresh()
    load_checkpoint(model, path)
    assert _same(model, nano_weights)


def test_class_count_change_loads_all_but_class_predictions(tmp_path, nano_weights, caplog):
    path = tmp_path / "coco.pth"
    torch.save({"model": nano_weights}, path)
    model = _fresh(num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.cls_preds.")}
    with caplog.at_level(logging.WARNING):
        result = load_checkpoint(model, path)
    assert result.class_predictions_reinitialised and result.checkpoint_num_classes == 80
    assert sorted(result.skipped_keys) == sorted(before)
    assert "checkpoint has 80 classes, the model 3" in caplog.text
    assert _same(model, {k: v for k, v in nano_weights.items() if not k.startswith("head.cls_preds.")})
    assert _same(model, before)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(_fresh(), tmp_path / "nope.pth")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights")
    with pytest.raises(CheckpointError, match=r"notes.pth: not a PyTorch checkpoint"):
        load_checkpoint(_fresh(), path)


def test_wrong_size_says_which_size_it_looks_like(tmp_path):
    path = tmp_path / "tiny.pth"
    with torch.device("meta"):
        tiny = build_model("yolox-tiny")
    torch.save({"model": {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in tiny.state_dict().items()}}, path)
    with pytest.raises(CheckpointError, match=r"does not fit yolox-nano \(it looks like yolox-tiny;"):
        load_checkpoint(_fresh(), path)


def test_guess_model_name_ignores_class_count(nano_weights):
    assert guess_model_name(nano_weights) == "yolox-nano"
    three = {k: v for k, v in nano_weights.items()}
    three = {k: (v[:3] if k.startswith("head.cls_preds.") else v) for k, v in three.items()}
    assert guess_model_name(three) == "yolox-nano"


class _Payload:
    def __reduce__(self):
        return (print, ("executed!",))


def test_file_needing_arbitrary_unpickling_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="refused to load.*never executes code"):
        load_checkpoint(_fresh(), path)
    assert "executed!" not in capsys.readouterr().out


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_refused_with_the_key(tmp_path, nano_weights, value):
    state = {k: v.clone() for k, v in nano_weights.items()}
    key = "head.cls_preds.0.weight"
    state[key][0, 0, 0, 0] = value
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"broken\.pth: 1 tensor\(s\) hold NaN or Inf values, first "
                                              r"'head\.cls_preds\.0\.weight'"):
        load_checkpoint(_fresh(), path)
