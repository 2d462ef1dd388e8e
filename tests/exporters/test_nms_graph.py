"""The NMS appended to a graph, against a slow, obvious per-class reference."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from edgedet.exporters.nms import append_nms


def _reference(boxes, scores, max_det, conf, iou):
    """Per image: per class greedy NMS over candidates with score > conf, then the best max_det."""
    def iou_of(a, b):
        lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
        inter = np.prod(np.clip(rb - lt, 0, None))
        union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
        return inter / union

    results = []
    for b in range(scores.shape[0]):
        kept = []
        for c in range(scores.shape[1]):
            order = [i for i in np.argsort(-scores[b, c], kind="stable") if scores[b, c, i] > conf]
            chosen = []
            for i in order:
                if all(iou_of(boxes[b, i], boxes[b, j]) <= iou for j in chosen):
                    chosen.append(i)
            kept += [(scores[b, c, i], c, i) for i in chosen[:max_det]]
        kept.sort(key=lambda t: -t[0])
        results.append(kept[:max_det])
    return results


def _graph(batch, classes, anchors):
    # boxes_in --Identity--> nms_boxes ; scores_in --Identity--> nms_scores
    graph = helper.make_graph(
        [helper.make_node("Identity", ["boxes_in"], ["nms_boxes"]),
         helper.make_node("Identity", ["scores_in"], ["nms_scores"])],
        "candidates",
        [helper.make_tensor_value_info("boxes_in", TensorProto.FLOAT, ["batch", anchors, 4]),
         helper.make_tensor_value_info("scores_in", TensorProto.FLOAT, ["batch", classes, anchors])],
        [helper.make_tensor_value_info("nms_boxes", TensorProto.FLOAT, ["batch", anchors, 4]),
         helper.make_tensor_value_info("nms_scores", TensorProto.FLOAT, ["batch", classes, anchors])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_append_nms_matches_reference():
    rng = np.random.default_rng(0)
    batch, classes, anchors, max_det = 3, 4, 60, 25
    xy = rng.uniform(0, 100, (batch, anchors, 2))
    wh = rng.uniform(5, 40, (batch, anchors, 2))
    boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (batch, classes, anchors)).astype(np.float32)
    model = append_nms(_graph(batch, classes, anchors), max_det=max_det, conf=0.3, iou=0.45)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    num_dets, out_boxes, out_scores, out_classes = session.run(None, {"boxes_in": boxes, "scores_in": scores})
    for b, want in enumerate(_reference(boxes, scores, max_det, 0.3, 0.45)):
        n = int(num_dets[b, 0])
        assert n == len(want)
        np.testing.assert_allclose(out_scores[b, :n], [w[0] for w in want], rtol=1e-6)
        assert out_classes[b, :n].tolist() == [w[1] for w in want]
        np.testing.assert_array_equal(out_boxes[b, :n], boxes[b, [w[2] for w in want]])
        assert np.all(out_classes[b, n:] == -1) and np.all(out_boxes[b, n:] == 0)
