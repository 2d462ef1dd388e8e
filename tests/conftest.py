"""Shared test set-up: one thread everywhere (this is a 2-core machine), reference data."""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

DATA = Path(__file__).parent / "assets"
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




@pytest.fixture(scope="session")
def reference_ckpt(tmp_path_factory):
    """A yolox-nano checkpoint with the golden files' deterministic weights (varied,
    untied scores, unlike a freshly initialised model)."""
    path = tmp_path_factory.mktemp("ckpt") / "nano_reference.pth"
    torch.save({"model": reference_state_dict("nano")}, path)
    return path


RUNTIME_SIZE = (128, 160)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, reference_ckpt):
    """yolox-nano with reference weights at 128x160, exported once per format:
    decoded (batch 1), raw (dynamic batch), nms (dynamic batch)."""
    from edgedet.exporters import export_model

    folder = tmp_path_factory.mktemp("onnx")
    paths = {}
    for fmt, batch in (("decoded", 1), ("raw", None), ("nms", None)):
        paths[fmt] = folder / f"nano_{fmt}.onnx"
        export_model("yolox-nano", paths[fmt], ckpt=reference_ckpt, input_size=RUNTIME_SIZE, batch=batch,
                     output_format=fmt, conf=0.25, iou=0.45, max_det=100, echo=lambda _m: None)
    return paths


@pytest.fixture(scope="session")
def sample_images():
    """Five synthetic BGR images of different sizes."""
    import numpy as np

    from edgedet.data.synth import render_sample

    rng = np.random.default_rng(7)
    return [render_sample(rng, size).image for size in ((120, 160), (200, 150), (64, 64), (300, 400), (97, 131))]
