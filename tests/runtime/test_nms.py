import numpy as np
import pytest

from edgedet.runtime.nms import box_iou, nms


def _reference_nms(boxes, scores, classes, thr, agnostic):
    """Slow, obvious greedy NMS."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        ok = True
        for j in kept:
            if (agnostic or classes[i] == classes[j]) and box_iou(boxes[i:i + 1], boxes[j:j + 1])[0, 0] > thr:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


@pytest.mark.parametrize("agnostic", [False, True], ids=["class-aware", "agnostic"])
@pytest.mark.parametrize("thr", [0.3, 0.65])
def test_nms_matches_reference(agnostic, thr):
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 60, (300, 2))], 1).astype(np.float32)
    scores = rng.permutation(300).astype(np.float32) / 300 + 0.001  # distinct
    classes = rng.integers(0, 4, 300)
    got = nms(boxes, scores, classes, thr, agnostic).tolist()
    assert got == _reference_nms(boxes, scores, classes, thr, agnostic)


def test_nms_empty_and_iou_values():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).shape == (0,)
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0]])
