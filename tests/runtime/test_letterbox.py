import cv2
import numpy as np
import pytest

from edgedet.runtime.letterbox import letterbox, preprocess, to_bgr


def _reference(img, size, pad=114):
    """The contract in plain steps: r = min(H/h, W/w), INTER_LINEAR to (int(w r), int(h r)), top-left, pad."""
    r = min(size[0] / img.shape[0], size[1] / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size[0], size[1], 3), pad, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, r


@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (100, 50), (416, 416), (7, 900)],
                         ids=["landscape", "portrait", "small-upscaled", "exact", "extreme"])
def test_letterbox_matches_contract(shape):
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    got, r = letterbox(img, (416, 416))
    want, want_r = _reference(img, (416, 416))
    assert r == want_r and np.array_equal(got, want)


def test_pad_is_bottom_right_only():
    img = np.zeros((100, 200, 3), np.uint8)
    canvas, r = letterbox(img, (128, 128))
    assert r == 0.64
    assert (canvas[:64, :128] == 0).all() and (canvas[64:] == 114).all()


def test_preprocess_is_bgr_0_255_chw_and_rgb_reverses():
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0], img[..., 2] = 10, 200  # blue 10, red 200
    blob, _ = preprocess(img, (32, 32))
    assert blob.dtype == np.float32 and blob.shape == (3, 32, 32)
    assert blob[0].max() == 10 and blob[2].max() == 200
    rgb, _ = preprocess(img, (32, 32), color_order="RGB")
    assert rgb[0].max() == 200
    normed, _ = preprocess(img, (32, 32), mean=(10, 0, 0), std=(2, 1, 1))
    assert normed[0].max() == 0


@pytest.mark.parametrize(
    "image",
    [np.full((8, 8), 50, np.uint8), np.full((8, 8, 1), 50, np.uint8), np.full((8, 8, 4), 50, np.uint8),
     np.full((8, 8, 3), 50 * 257, np.uint16), np.full((8, 8, 3), 50 / 255, np.float32),
     np.full((8, 8, 3), 50.2, np.float64)],
    ids=["gray", "gray-1ch", "bgra", "uint16", "float-0-1", "float-0-255"],
)
def test_to_bgr_conversions(image):
    out = to_bgr(image)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8 and (out == 50).all()


def test_to_bgr_rejects_bad_input():
    with pytest.raises(ValueError, match="expected a uint8, uint16 or float image, got dtype int32"):
        to_bgr(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="got shape"):
        to_bgr(np.zeros((4, 4, 2), np.uint8))
