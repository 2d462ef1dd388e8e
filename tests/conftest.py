"""Shared test set-up: one thread everywhere (this is a 2-core machine), reference data."""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))  # ref_weights.py, the deterministic reference-weight generator

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # runtime-only environments
    torch = None


SIZES = ("nano", "tiny", "s", "m", "l", "x")


@pytest.fixture(scope="session")
def golden():
    import numpy as np

    with np.load(DATA / "official_outputs_nano_s.npz") as f:
        return {k: f[k] for k in f.files}


def reference_rows(size: str):
    import ref_weights

    return ref_weights.keys_and_shapes_from_json(str(DATA / f"state_dict_{size}.json"))


def reference_state_dict(size: str):
    """The golden files' deterministic weights for a size, as torch tensors."""
    import ref_weights

    return {k: torch.from_numpy(v) for k, v in ref_weights.make_state_dict(reference_rows(size)).items()}


# (raw xywh abs, obj/cls abs, decoded xy abs, decoded wh rel): ten times the measured
# float32 noise, from the golden files' README.
TOLERANCES = {"nano": (1e-4, 1e-5, 1e-3, 1e-4), "s": (5e-4, 1e-4, 5e-3, 5e-4)}


def assert_matches_golden(out, golden: dict, size: str, decoded: bool, scale: float = 1.0):
    """Compare an output [1, N, 85] with the official one, at the tolerances above times ``scale``."""
    import numpy as np

    raw_tol, score_tol, xy_tol, wh_rel = (t * scale for t in TOLERANCES[size])
    ref = golden[f"{size}_{'decoded' if decoded else 'raw'}"]
    assert out.shape == ref.shape
    np.testing.assert_allclose(out[..., 4:], ref[..., 4:], rtol=0, atol=score_tol)
    if decoded:
        np.testing.assert_allclose(out[..., :2], ref[..., :2], rtol=0, atol=xy_tol)
        np.testing.assert_allclose(out[..., 2:4], ref[..., 2:4], rtol=wh_rel, atol=0)
    else:
        np.testing.assert_allclose(out[..., :4], ref[..., :4], rtol=0, atol=raw_tol)


