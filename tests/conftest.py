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
