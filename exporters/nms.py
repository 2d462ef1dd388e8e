"""End-to-end NMS appended to an exported graph with ONNX's NonMaxSuppression.

Input: a graph whose outputs are ``nms_boxes`` [B, N, 4] (x1 y1 x2 y2) and ``nms_scores``
[B, C, N] (see ``exporters.wrappers.NmsCandidates``). Output: a graph with

    num_dets  [B, 1] int64   number of valid rows
    boxes     [B, K, 4] float32, x1 y1 x2 y2 in input pixels, best first
    scores    [B, K] float32
    class_ids [B, K] int64 (-1 in padding rows)

with K = min(max_det, C*N); rows past num_dets are zero (class -1).

How, per batch: NonMaxSuppression gives (image, class, box) triples of the survivors;
their scores are scattered into a [B, C*N] table filled with -1, TopK takes the best K
per image, and class and box indices come back from the flat index by Div and Mod.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["NMS_OUTPUTS", "append_nms"]

NMS_OUTPUTS = ("num_dets", "boxes", "scores", "class_ids")


def append_nms(model: onnx.ModelProto, max_det: int, conf: float, iou: float) -> onnx.ModelProto:
    """Return a copy of ``model`` with NMS appended (see the module docstring)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    by_name = {o.name: o for o in graph.output}
    if set(by_name) != {"nms_boxes", "nms_scores"}:
        raise ValueError(f"expected graph outputs nms_boxes and nms_scores, got {sorted(by_name)}")
    score_dims = by_name["nms_scores"].type.tensor_type.shape.dim
    num_classes, num_anchors = score_dims[1].dim_value, score_dims[2].dim_value
    if not num_classes or not num_anchors:
        raise ValueError("nms_scores needs static class and anchor dimensions")
    k = int(min(max_det, num_classes * num_anchors))

    def const(name, value, dtype):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    max_out = const("nms_max_per_class", [max_det], np.int64)
    iou_t = const("nms_iou_threshold", [iou], np.float32)
    score_t = const("nms_score_threshold", [conf], np.float32)
    n_const = const("nms_num_anchors", num_anchors, np.int64)
    cn = const("nms_table_width", [num_classes * num_anchors], np.int64)
    k_const = const("nms_k", [k], np.int64)
    minus_one_i = const("nms_minus_one_i", -1, np.int64)
    zero_f = const("nms_zero_f", 0.0, np.float32)
    half_neg = const("nms_half_neg", -0.5, np.float32)
    axes_last = const("nms_axes_last", [-1], np.int64)
    axes_1 = const("nms_axes_1", [1], np.int64)
    four = const("nms_four", [4], np.int64)
    idx0, idx1, idx2 = (const(f"nms_col{i}", [i], np.int64) for i in range(3))

    nodes = [
        helper.make_node("NonMaxSuppression", ["nms_boxes", "nms_scores", max_out, iou_t, score_t], ["nms_selected"],
                         center_point_box=0, name="nms/NonMaxSuppression"),
        helper.make_node("GatherND", ["nms_scores", "nms_selected"], ["nms_sel_scores"], name="nms/gather_scores"),
        helper.make_node("Gather", ["nms_selected", idx0], ["nms_sel_b"], axis=1, name="nms/sel_batch"),
        helper.make_node("Gather", ["nms_selected", idx1], ["nms_sel_c"], axis=1, name="nms/sel_class"),
        helper.make_node("Gather", ["nms_selected", idx2], ["nms_sel_n"], axis=1, name="nms/sel_box"),
        helper.make_node("Mul", ["nms_sel_c", n_const], ["nms_sel_cn"], name="nms/class_offset"),
        helper.make_node("Add", ["nms_sel_cn", "nms_sel_n"], ["nms_sel_flat"], name="nms/flat_index"),
        helper.make_node("Concat", ["nms_sel_b", "nms_sel_flat"], ["nms_scatter_idx"], axis=1, name="nms/scatter_index"),
        helper.make_node("Shape", ["nms_scores"], ["nms_batch"], start=0, end=1, name="nms/batch_size"),
        helper.make_node("Concat", ["nms_batch", cn], ["nms_table_shape"], axis=0, name="nms/table_shape"),
        helper.make_node("ConstantOfShape", ["nms_table_shape"], ["nms_table_empty"],
                         value=helper.make_tensor("fill", TensorProto.FLOAT, [1], [-1.0]), name="nms/table"),
        helper.make_node("ScatterND", ["nms_table_empty", "nms_scatter_idx", "nms_sel_scores"], ["nms_table"],
                         name="nms/scatter"),
        helper.make_node("TopK", ["nms_table", k_const], ["nms_top_scores", "nms_top_idx"], axis=1, largest=1,
                         sorted=1, name="nms/topk"),
        helper.make_node("Greater", ["nms_top_scores", half_neg], ["nms_valid"], name="nms/valid"),
        helper.make_node("Cast", ["nms_valid"], ["nms_valid_i"], to=TensorProto.INT64, name="nms/valid_int"),
        helper.make_node("ReduceSum", ["nms_valid_i", axes_1], ["num_dets"], keepdims=1, name="nms/num_dets"),
        helper.make_node("Div", ["nms_top_idx", n_const], ["nms_top_class"], name="nms/class_of"),
        helper.make_node("Mod", ["nms_top_idx", n_const], ["nms_top_box"], name="nms/box_of"),
        helper.make_node("Unsqueeze", ["nms_top_box", axes_last], ["nms_top_box_u"], name="nms/box_index_u"),
        helper.make_node("Shape", ["nms_top_box"], ["nms_bk"], name="nms/bk_shape"),
        helper.make_node("Concat", ["nms_bk", four], ["nms_bk4"], axis=0, name="nms/bk4_shape"),
        helper.make_node("Expand", ["nms_top_box_u", "nms_bk4"], ["nms_gather_idx"], name="nms/box_index"),
        helper.make_node("GatherElements", ["nms_boxes", "nms_gather_idx"], ["nms_top_boxes"], axis=1,
                         name="nms/gather_boxes"),
        helper.make_node("Unsqueeze", ["nms_valid", axes_last], ["nms_valid_u"], name="nms/valid_u"),
        helper.make_node("Where", ["nms_valid_u", "nms_top_boxes", zero_f], ["boxes"], name="nms/boxes"),
        helper.make_node("Where", ["nms_valid", "nms_top_scores", zero_f], ["scores"], name="nms/scores"),
        helper.make_node("Where", ["nms_valid", "nms_top_class", minus_one_i], ["class_ids"], name="nms/class_ids"),
    ]
    graph.node.extend(nodes)
    batch_dim = score_dims[0].dim_param or score_dims[0].dim_value
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info("num_dets", TensorProto.INT64, [batch_dim, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch_dim, k, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch_dim, k]),
        helper.make_tensor_value_info("class_ids", TensorProto.INT64, [batch_dim, k]),
    ])
    return out
