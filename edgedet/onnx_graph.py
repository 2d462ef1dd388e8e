"""Small helpers over ONNX graphs that export and quantization both use: node counts and names, the
head's float-sensitive tail, topological order, and writing edgedet's metadata into a model.

It sits below ``edgedet.exporters`` and ``edgedet.calibration`` so that neither reaches into the other."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List

import onnx

__all__ = ["count_nodes", "consumers_of", "tail_nodes", "ensure_node_names", "topological_sort", "set_metadata"]


def count_nodes(model: onnx.ModelProto) -> int:
    return len(model.graph.node)


def consumers_of(model: onnx.ModelProto) -> Dict[str, List[onnx.NodeProto]]:
    """``{tensor name: the nodes that read it}``, in graph order."""
    consumers: Dict[str, List[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    return dict(consumers)


def tail_nodes(model: onnx.ModelProto, anchor_op: str = "Conv") -> List[str]:
    """Names of the nodes from which no ``anchor_op`` node can be reached.

    For YOLOX that is the head's tail after the last prediction convs: the per-level concat
    of box/objectness/class outputs, the flatten and level concat, the sigmoids of obj/cls
    and the decode (exp, grid add, stride mul). This is the part that loses accuracy in
    low precision (fp16 overflow in exp, int8 per-tensor scales across mixed ranges).
    The graph must be topologically sorted, as ONNX requires; unnamed nodes are skipped
    (``ensure_node_names`` names them).
    """
    consumers: Dict[str, List[int]] = defaultdict(list)
    nodes = list(model.graph.node)
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers[name].append(i)
    reaches = [False] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):  # consumers come later, so are already known
        reaches[i] = any(
            nodes[j].op_type == anchor_op or reaches[j] for out in nodes[i].output for j in consumers.get(out, ())
        )
    return [n.name for n, r in zip(nodes, reaches) if not r and n.op_type != anchor_op and n.name]


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (``<op>_<index>``)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder ``model.graph.node`` in place so every node follows its producers
    (ONNX Runtime's fp16 converter appends its casts at the end)."""
    nodes = list(model.graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    deps = [{producer[x] for x in n.input if x in producer} for n in nodes]
    users: Dict[int, List[int]] = defaultdict(list)
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    pending = [len(d) for d in deps]
    ready = [i for i, p in enumerate(pending) if p == 0]
    order: List[int] = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for j in users[i]:
            pending[j] -= 1
            if pending[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        raise ValueError("the graph has a cycle")
    del model.graph.node[:]
    model.graph.node.extend(nodes[i] for i in order)


def set_metadata(model: onnx.ModelProto, props: Dict[str, str]) -> None:
    """Replace the model's metadata_props entries of these keys, keeping the others."""
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
