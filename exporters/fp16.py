"""float16 conversion that keeps the model's inputs, outputs and sensitive tail in float32."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import onnx

from edgedet.onnx_graph import ensure_node_names, tail_nodes, topological_sort

__all__ = ["convert_fp16"]


def convert_fp16(model: onnx.ModelProto, keep_float: Optional[Sequence[str]] = None) -> Tuple[onnx.ModelProto, List[str]]:
    """Convert weights and compute to float16 with ONNX Runtime's converter.

    Inputs and outputs stay float32, so callers never change. The nodes in ``keep_float``
    (by default the head's tail, see ``graph.tail_nodes``: the decode's exp and stride
    multiply would overflow float16's 65504 on large boxes, and the sigmoid outputs lose
    resolution near 1) stay float32 with casts around them.

    Returns the converted model and the names of the nodes kept in float32.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    work = onnx.ModelProto()
    work.CopyFrom(model)
    ensure_node_names(work)
    blocked = list(keep_float) if keep_float is not None else tail_nodes(work)
    converted = convert_float_to_float16(work, keep_io_types=True, node_block_list=blocked, disable_shape_infer=False)
    topological_sort(converted)
    return converted, blocked
