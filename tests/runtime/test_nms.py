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


@pytest.mark.parametrize("agnostic", [False, True], ids=["class-aware", "agnostic"])
def test_early_stopping_path_equals_full_nms_cut_to_max_keep(agnostic):
    from edgedet.runtime.nms import EARLY_STOP_MIN_CANDIDATES

    rng = np.random.default_rng(4)
    n = EARLY_STOP_MIN_CANDIDATES + 500
    xy = rng.uniform(0, 600, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 80, (n, 2))], 1).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / n + 1e-3
    classes = rng.integers(0, 5, n)
    full = nms(boxes, scores, classes, 0.45, agnostic)  # OpenCV path (no max_keep)
    early = nms(boxes, scores, classes, 0.45, agnostic, max_keep=100)
    assert len(early) == 100 and early.tolist() == full[:100].tolist()
    assert nms(boxes[:50], scores[:50], classes[:50], 0.45, agnostic, max_keep=10).tolist() == \
        _reference_nms(boxes[:50], scores[:50], classes[:50], 0.45, agnostic)[:10]
