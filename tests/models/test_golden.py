"""Our models against the official implementation's outputs on the same weights."""

import numpy as np
import pytest
import torch

from edgedet.models import build_model, fuse_model
from tests.conftest import reference_state_dict

# (raw xywh abs, obj/cls abs, decoded xy abs, decoded wh rel): ten times the measured
# float32 noise, from the golden files' README.
TOLERANCES = {"nano": (1e-4, 1e-5, 1e-3, 1e-4), "s": (5e-4, 1e-4, 5e-3, 5e-4)}


def _model(size):
    model = build_model(f"yolox-{size}").eval()
    model.load_state_dict(reference_state_dict(size), strict=True)
    return model


def assert_matches_golden(out: np.ndarray, golden: dict, size: str, decoded: bool, scale: float = 1.0):
    """Compare an output [1, N, 85] with the official one, at the tolerances above times ``scale``."""
    raw_tol, score_tol, xy_tol, wh_rel = (t * scale for t in TOLERANCES[size])
    ref = golden[f"{size}_{'decoded' if decoded else 'raw'}"]
    assert out.shape == ref.shape
    np.testing.assert_allclose(out[..., 4:], ref[..., 4:], rtol=0, atol=score_tol)
    if decoded:
        np.testing.assert_allclose(out[..., :2], ref[..., :2], rtol=0, atol=xy_tol)
        np.testing.assert_allclose(out[..., 2:4], ref[..., 2:4], rtol=wh_rel, atol=0)
    else:
        np.testing.assert_allclose(out[..., :4], ref[..., :4], rtol=0, atol=raw_tol)


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
