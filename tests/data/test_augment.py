"""Each augmentation keeps boxes on the pixels: draw filled boxes, augment, check the colour."""

import numpy as np
import pytest

from edgedet.data.augment import AugmentConfig, augment_hsv, hflip, mixup, mosaic, random_affine


def _scene(seed, size=(160, 200)):
    """Grey image with three solid, non-overlapping coloured boxes (class = colour index)."""
    rng = np.random.default_rng(seed)
    img = np.full((*size, 3), 30, np.uint8)
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]
    boxes = []
    for k, x0 in enumerate((10, 75, 140)):
        w, h = int(rng.integers(30, 50)), int(rng.integers(40, 90))
        y0 = int(rng.integers(5, size[0] - h - 5))
        img[y0:y0 + h, x0:x0 + w] = colours[k]
        boxes.append([x0, y0, x0 + w, y0 + h])
    return img, np.array(boxes, np.float32), np.arange(3)


COLOURS = np.array([(0, 0, 255), (0, 255, 0), (255, 0, 0)])


def _assert_boxes_on_pixels(img, boxes, labels, min_fraction=0.6):
    assert len(boxes) > 0
    for box, label in zip(boxes, labels):
        x1, y1, x2, y2 = np.round(box).astype(int)
        if min(x2 - x1, y2 - y1) < 6:
            continue
        inner = img[y1 + 2:y2 - 2, x1 + 2:x2 - 2].reshape(-1, 3).astype(int)
        close = (np.abs(inner - COLOURS[label]).sum(1) < 60).mean()
        assert close >= min_fraction, (box, label, close)


def test_hflip_moves_boxes_with_pixels():
    img, boxes, labels = _scene(0)
    out, flipped = hflip(img, boxes)
    _assert_boxes_on_pixels(out, flipped, labels, 0.99)


@pytest.mark.parametrize("seed", range(4))
def test_random_affine_keeps_boxes_on_pixels(seed):
    img, boxes, labels = _scene(seed)
    out, b, lab = random_affine(img, boxes, labels, np.random.default_rng(seed), (160, 200), degrees=0, shear=0,
                                scales=(0.7, 1.3), translate=0.1)
    _assert_boxes_on_pixels(out, b, lab, 0.9)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_keeps_boxes_on_pixels(seed):
    scenes = [_scene(s) for s in range(4)]
    cfg = AugmentConfig(degrees=0, shear=0, mosaic_scale=(0.8, 1.2))
    out, boxes, labels = mosaic(lambda i: tuple(x.copy() for x in scenes[i]), [0, 1, 2, 3], np.random.default_rng(seed),
                                (160, 200), cfg)
    assert out.shape == (160, 200, 3)
    _assert_boxes_on_pixels(out, boxes, labels, 0.9)


def test_mixup_blends_and_keeps_both_sets_of_boxes():
    a, b = _scene(0), _scene(1)
    out, boxes, labels = mixup(a, b, np.random.default_rng(0), AugmentConfig(mixup_scale=(1.0, 1.0)))
    assert len(boxes) >= len(a[1]) and out.shape == a[0].shape
    x1, y1, x2, y2 = a[1][0].astype(int)
    y, x = y1 + 5, x1 + 5
    other = {int(b[0][y, x, 2]), int(b[0][y, b[0].shape[1] - 1 - x, 2])}  # b may have been flipped
    assert any(abs(int(out[y, x, 2]) - (255 + v) // 2) <= 2 for v in other)


def test_hsv_is_a_per_colour_map_and_keeps_geometry():
    img, boxes, labels = _scene(0)
    out = img.copy()
    augment_hsv(out, np.random.default_rng(1), 5, 30, 30)
    assert out.shape == img.shape and not np.array_equal(out, img)
    colours, inverse = np.unique(img.reshape(-1, 3), axis=0, return_inverse=True)
    for k in range(len(colours)):  # one input colour -> one output colour (OpenCV's SIMD rounds +-1)
        mapped = out.reshape(-1, 3)[inverse.ravel() == k].astype(int)
        assert (mapped.max(0) - mapped.min(0)).max() <= 1
