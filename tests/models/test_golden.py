"""Our models against the official implementation's outputs on the same weights."""

import pytest
import torch

from edgedet.models import build_model, fuse_model
from tests.conftest import assert_matches_golden, reference_state_dict


def _model(size):
    model = build_model(f"yolox-{size}").eval()
    model.load_state_dict(reference_state_dict(size), strict=True)
    return model


@pytest.mark.parametrize("size", ["nano", "s"])
@pytest.mark.parametrize("decoded", [True, False], ids=["decoded", "raw"])
def test_official_outputs(golden, size, decoded):
    model = _model(size)
    model.head.decode_in_inference = decoded
    with torch.no_grad():
        out = model(torch.from_numpy(golden["input"])).numpy()
    assert_matches_golden(out, golden, size, decoded)


@pytest.mark.parametrize("size", ["nano", "s"])
def test_fused_model_keeps_official_outputs(golden, size):
    model = fuse_model(_model(size))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        out = model(torch.from_numpy(golden["input"])).numpy()
    assert_matches_golden(out, golden, size, decoded=True)
