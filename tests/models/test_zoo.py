import json

import pytest
import torch

from edgedet.models import ZOO, build_model, get_spec, zoo_cost
from tests.conftest import DATA, SIZES, reference_rows


def _reference(size):
    return json.loads((DATA / f"state_dict_{size}.json").read_text())


@pytest.mark.parametrize("size", SIZES)
def test_state_dict_layout_matches_official(size):
    with torch.device("meta"):
        model = build_model(f"yolox-{size}")
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == reference_rows(size)  # keys, shapes and order


@pytest.mark.parametrize("size", SIZES)
def test_params_flops_and_batchnorm(size):
    ref = _reference(size)
    cost = zoo_cost(f"yolox-{size}")
    assert cost.params == ref["trainable_params"]
    assert cost.conv_gflops == pytest.approx(ref["conv_gflops_at_test_size"], rel=1e-9)
    assert cost.gflops == pytest.approx(ref["readme_style_gflops_at_test_size"], rel=1e-9)
    with torch.device("meta"):
        model = build_model(f"yolox-{size}")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == ref["batchnorm"]["count"]
    assert {(m.eps, m.momentum) for m in bns} == {(1e-3, 0.03)}
    spec = get_spec(size)
    assert (spec.depth, spec.width, spec.depthwise, list(spec.test_size)) == (
        ref["depth"], ref["width"], ref["depthwise"], ref["test_size"])


def test_custom_model_and_class_count():
    model = build_model("yolox-nano", num_classes=3, depth=0.5, width=0.125).eval()
    out = model(torch.rand(2, 3, 64, 96) * 255)
    assert out.shape == (2, (8 * 12 + 4 * 6 + 2 * 3), 8)
    assert model.head.cls_preds[0].bias.detach() == pytest.approx(torch.full((3,), -4.59512), abs=1e-4)


@pytest.mark.parametrize("name", ["yolox_s", "S", "YOLOX-S", "s"])
def test_name_aliases(name):
    assert get_spec(name) is ZOO["yolox-s"]


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(ValueError) as e:
        get_spec("yolox-smal")
    msg = str(e.value)
    assert "known models: yolox-nano, yolox-tiny, yolox-s" in msg
    assert "Did you mean 'yolox-s'?" in msg or "Did you mean 'yolox-m'?" in msg


def test_unknown_activation_lists_valid():
    with pytest.raises(ValueError, match="valid names: export_silu, lrelu, relu, silu"):
        build_model("yolox-nano", act="gelu")
