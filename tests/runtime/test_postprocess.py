import numpy as np
import torch

from edgedet.models.decode import decode_outputs
from edgedet.runtime.postprocess import decode_raw, scale_boxes, select_detections


def test_numpy_decode_equals_torch_decode():
    raw = np.random.default_rng(0).normal(0, 1, (2, 16 * 20 + 8 * 10 + 4 * 5, 9)).astype(np.float32)
    want = decode_outputs(torch.from_numpy(raw), [(16, 20), (8, 10), (4, 5)], [8, 16, 32]).numpy()
    np.testing.assert_allclose(decode_raw(raw, (128, 160), (8, 16, 32)), want, rtol=1e-6, atol=1e-4)


def test_select_takes_best_class_scores_obj_times_cls_and_runs_class_aware_nms():
    # anchors: cx cy w h obj cls0 cls1
    pred = np.array([
        [50, 50, 20, 20, 0.9, 0.9, 0.1],   # class 0, score 0.81
        [51, 50, 20, 20, 0.9, 0.8, 0.1],   # class 0, overlaps the first -> suppressed
        [51, 50, 20, 20, 0.9, 0.1, 0.7],   # class 1, same place -> kept (class-aware)
        [90, 90, 10, 10, 0.5, 0.4, 0.3],   # score 0.2 < conf
    ], np.float32)
    boxes, scores, classes = select_detections(pred, conf=0.25, iou=0.45, max_det=10)
    np.testing.assert_allclose(scores, [0.81, 0.63], rtol=1e-6)
    assert classes.tolist() == [0, 1]
    np.testing.assert_allclose(boxes[0], [40, 40, 60, 60])
    _, agn_scores, _ = select_detections(pred, conf=0.25, iou=0.45, max_det=10, class_agnostic=True)
    assert len(agn_scores) == 1
    _, only1, cls1 = select_detections(pred, conf=0.25, iou=0.45, max_det=10, classes=[1])
    assert cls1.tolist() == [1]
    assert len(select_detections(pred, conf=0.25, iou=0.45, max_det=1)[1]) == 1


def test_scale_boxes_divides_by_ratio_and_clips():
    boxes = np.array([[-10, 5, 100, 300]], np.float32)
    np.testing.assert_allclose(scale_boxes(boxes, 0.5, (400, 150)), [[0, 10, 150, 400]])
