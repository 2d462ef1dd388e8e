"""Per-channel activation scales for depthwise convolutions, kept on ONNX Runtime's fast int8 path.

Why: in a depthwise network (yolox-nano) the channels entering a depthwise conv differ in range by
20x and more, and BatchNorm folding gives some depthwise channels gains near 100, so one scale per
tensor leaves the small channels a handful of levels that the depthwise conv then amplifies. That,
not the range estimator, is what cost plain INT8 a third of the demo model's AP: quantizing those
tensors per channel (and nothing else) brings it back (see docs/int8.md for the measurements).

ONNX Runtime's CPU int8 convolution (QLinearConv, which Q/DQ pairs around a Conv are fused into)
takes one input scale and one output scale per tensor. Both per-channel needs are met without
leaving it, because a depthwise conv touches each channel alone:

- *Input of a depthwise conv* (a SiLU output): quantized per channel with scales ``s_c`` and one
  shared zero point; the dequantize before the conv uses scale 1, and ``s_c`` moves into the conv's
  per-channel weight scales (``s_w,c * s_c``); the integer weights do not change.
- *Output of the conv feeding that SiLU* (pre-activation): channel ``c`` of the conv's weights and
  bias is divided by ``g_c`` (only their per-channel scales change), so every channel spans the same
  range and one output scale fits all; a ``Mul`` by ``g`` after the dequantize restores the values
  before the SiLU, which then runs in float.

The rewrite is applied to the Q/DQ model that ``quantize_static`` wrote, at *sites* found on the
float model: ``Conv -> Sigmoid, Mul (SiLU) -> only depthwise Convs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgedet.onnx_graph import consumers_of

__all__ = ["DepthwiseSite", "depthwise_sites", "shared_zero_point", "apply_channel_scales"]

# Pre-activation values below this are clipped before ranges are equalised: SiLU(-8) = -0.003.
SILU_NEGATIVE_CLIP = 8.0


@dataclass(frozen=True)
class DepthwiseSite:
    """``producer`` (Conv) -> ``sigmoid`` and ``mul`` (its SiLU) -> ``depthwise`` convs only.
    ``pre`` is the producer's output tensor, ``post`` the SiLU's."""

    producer: str
    sigmoid: str
    mul: str
    depthwise: Tuple[str, ...]
    pre: str
    post: str


def _is_depthwise(node: onnx.NodeProto, weights: Mapping[str, onnx.TensorProto]) -> bool:
    if node.op_type != "Conv" or node.input[1] not in weights:
        return False
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    dims = weights[node.input[1]].dims  # [C_out, C_in / group, kh, kw]
    return group > 1 and dims[0] == group and dims[1] == 1


def depthwise_sites(model: onnx.ModelProto) -> List[DepthwiseSite]:
    """The ``Conv -> SiLU -> depthwise Conv(s)`` sites of a float model (nodes must be named)."""
    consumers = consumers_of(model)
    weights = {t.name: t for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    sites = []
    for mul in model.graph.node:
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        sigmoid = next((producers.get(i) for i in mul.input if getattr(producers.get(i), "op_type", "") == "Sigmoid"), None)
        if sigmoid is None:
            continue
        pre = sigmoid.input[0]
        conv = producers.get(pre)
        if conv is None or conv.op_type != "Conv" or conv.input[1] not in weights:
            continue
        if set(mul.input) != {pre, sigmoid.output[0]} or {n.name for n in consumers.get(pre, [])} != {sigmoid.name, mul.name}:
            continue
        after = consumers.get(mul.output[0], [])
        if after and all(_is_depthwise(n, weights) and n.input[0] == mul.output[0] for n in after) \
                and mul.output[0] not in {o.name for o in model.graph.output}:
            sites.append(DepthwiseSite(conv.name, sigmoid.name, mul.name, tuple(n.name for n in after), pre, mul.output[0]))
    return sites


def shared_zero_point(low: np.ndarray, high: np.ndarray, qmin: int, qmax: int) -> Tuple[int, np.ndarray]:
    """One zero point for all channels and each channel's scale, for per-channel ranges
    ``[low_c, high_c]`` (``low <= 0 <= high``): the zero point minimises the sum of log scales,
    i.e. the levels lost to sharing it. ``qmin = -128, qmax = 127`` with a symmetric range
    request gives zero point 0."""
    low, high = np.minimum(low, 0.0).astype(np.float64), np.maximum(high, 1e-8).astype(np.float64)
    if qmin < 0:  # signed, symmetric (TensorRT): zero point 0
        return 0, np.maximum(np.abs(low), high) / qmax
    best = None
    for zero in range(qmin + 1, qmax):
        scales = np.maximum(high / (qmax - zero), -low / (zero - qmin))
        cost = float(np.log(scales).sum())
        if best is None or cost < best[0]:
            best = (cost, zero, scales)
    return best[1], best[2]


class _Graph:
    """Lookups and initializer edits on a Q/DQ model."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.init = {t.name: t for t in model.graph.initializer}
        self.nodes = {n.name: n for n in model.graph.node}
        self.producers = {out: n for n in model.graph.node for out in n.output}
        self.consumers = consumers_of(model)

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.init[name])

    def add(self, array: np.ndarray, name: str) -> str:
        while name in self.init:
            name += "_"
        tensor = numpy_helper.from_array(array, name)
        self.model.graph.initializer.append(tensor)
        self.init[name] = tensor
        return name

    def dq_of(self, tensor: str) -> onnx.NodeProto:
        node = self.producers.get(tensor)
        if node is None or node.op_type != "DequantizeLinear":
            raise ValueError(f"{tensor}: expected a DequantizeLinear output")
        return node

    def q_after(self, tensor: str) -> onnx.NodeProto:
        qs = [n for n in self.consumers.get(tensor, []) if n.op_type == "QuantizeLinear"]
        if len(qs) != 1:
            raise ValueError(f"{tensor}: expected one QuantizeLinear consumer, found {len(qs)}")
        return qs[0]

    def scale_weights(self, conv: onnx.NodeProto, factor: np.ndarray, tag: str) -> None:
        """Multiply conv's per-output-channel weight scales (and its bias) by ``factor``."""
        w_dq = self.dq_of(conv.input[1])
        w_scale = self.array(w_dq.input[1])
        w_dq.input[1] = self.add((w_scale * factor).astype(np.float32), f"{w_dq.input[1]}_{tag}")
        if len(conv.input) > 2 and conv.input[2]:
            bias = conv.input[2]
            if bias in self.init:
                conv.input[2] = self.add((self.array(bias) * factor).astype(np.float32), f"{bias}_{tag}")
            else:  # int32 bias behind a DequantizeLinear: same integers, scaled scale
                b_dq = self.dq_of(bias)
                b_dq.input[1] = self.add((self.array(b_dq.input[1]) * factor).astype(np.float32), f"{b_dq.input[1]}_{tag}")


def _set_qparams(graph: _Graph, node: onnx.NodeProto, scale: np.ndarray, zero: np.ndarray, axis) -> None:
    node.input[1] = graph.add(scale.astype(np.float32), f"{node.input[1]}_cs")
    node.input[2] = graph.add(zero, f"{node.input[2]}_cs")
    for attr in [a for a in node.attribute if a.name == "axis"]:
        node.attribute.remove(attr)
    if axis is not None:
        node.attribute.append(helper.make_attribute("axis", axis))


def apply_channel_scales(model: onnx.ModelProto, sites: Sequence[DepthwiseSite],
                         channel_ranges: Mapping[str, Tuple[np.ndarray, np.ndarray]]) -> int:
    """Rewrite the Q/DQ ``model`` (from ``quantize_static``) in place at ``sites``; returns how
    many sites were rewritten. ``channel_ranges[tensor] = (low[C], high[C])`` for each site's
    ``pre`` and ``post`` tensors. Sites whose nodes were left in float are skipped."""
    graph = _Graph(model)
    done = 0
    for site in sites:
        try:
            producer, sigmoid, mul = (graph.nodes[site.producer], graph.nodes[site.sigmoid], graph.nodes[site.mul])
            depthwise = [graph.nodes[d] for d in site.depthwise]
            pre_q, post_q = graph.q_after(site.pre), graph.q_after(site.post)
            post_dqs = graph.consumers[post_q.output[0]]
            if any(n.op_type != "DequantizeLinear" for n in post_dqs) or \
                    {c.name for dq in post_dqs for c in graph.consumers.get(dq.output[0], [])} != set(site.depthwise):
                continue
            for conv in [producer, *depthwise]:
                graph.dq_of(conv.input[1])
        except (KeyError, ValueError):
            continue
        dtype = graph.array(pre_q.input[2]).dtype
        qmin, qmax = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)

        # Producer: equalise channel spans, one output scale, Mul by g after the dequantize.
        low, high = (np.asarray(a, np.float64) for a in channel_ranges[site.pre])
        low, high = np.minimum(np.maximum(low, -SILU_NEGATIVE_CLIP), 0.0), np.maximum(high, 0.0)
        span = np.maximum(high - low, 1e-6)
        gain = span / span.max()
        graph.scale_weights(producer, (1.0 / gain), "cs")
        lo, hi = float((low / gain).min()), float((high / gain).max())
        if qmin < 0:
            scale, zero = max(-lo, hi) / qmax, 0
        else:
            scale = (hi - lo) / (qmax - qmin)
            zero = int(np.clip(round(qmin - lo / scale), qmin, qmax))
        pre_dqs = [n for n in graph.consumers[pre_q.output[0]] if n.op_type == "DequantizeLinear"]
        for node in [pre_q, *pre_dqs]:
            _set_qparams(graph, node, np.array(scale, np.float32), np.array(zero, dtype), None)
        # A Mul by g after the dequantize restores the values. (A per-axis DequantizeLinear with
        # scale x g would do both, but ONNX Runtime then runs it on a slow path: 0.7 ms a tensor.)
        gain_name = graph.add(gain.astype(np.float32).reshape(1, -1, 1, 1), f"{site.pre}_channel_gain")
        for dq in pre_dqs:
            users = [n for n in graph.consumers.get(dq.output[0], []) if n.name in (sigmoid.name, mul.name)]
            if not users:
                continue
            restored = f"{dq.output[0]}_restored"
            restore = helper.make_node("Mul", [dq.output[0], gain_name], [restored], name=f"{dq.name}_channel_gain")
            model.graph.node.insert(list(model.graph.node).index(dq) + 1, restore)
            for user in users:
                user.input[:] = [restored if i == dq.output[0] else i for i in user.input]
        # The SiLU's inner sigmoid feeds the Mul in float (its Q/DQ pair would only add error).
        for i, name in enumerate(mul.input):
            node = graph.producers.get(name)
            if node is not None and node.op_type == "DequantizeLinear":
                q = graph.producers.get(node.input[0])
                if q is not None and q.op_type == "QuantizeLinear" and q.input[0] == sigmoid.output[0]:
                    mul.input[i] = sigmoid.output[0]

        # SiLU output: per-channel scales, one zero point; the scales move into the depthwise weights.
        low, high = channel_ranges[site.post]
        zero, scales = shared_zero_point(np.asarray(low), np.asarray(high), qmin, qmax)
        # ONNX Runtime's per-axis QuantizeLinear is a slow generic kernel (4 ms on a 1.3M-element
        # tensor, 40x its per-tensor one): divide by the scales in a Mul, then quantize with scale 1.
        inverse = graph.add((1.0 / scales).astype(np.float32).reshape(1, -1, 1, 1), f"{site.post}_inverse_scale")
        divided = f"{site.post}_per_channel"
        model.graph.node.insert(list(model.graph.node).index(post_q),
                                helper.make_node("Mul", [site.post, inverse], [divided], name=f"{post_q.name}_per_channel"))
        post_q.input[0] = divided
        _set_qparams(graph, post_q, np.array(1.0, np.float32), np.array(zero, dtype), None)
        for dq in post_dqs:
            _set_qparams(graph, dq, np.array(1.0, np.float32), np.array(zero, dtype), None)
        for conv in depthwise:
            _rescale_depthwise(graph, conv, scales)
        done += 1
    _drop_unused(model)
    return done


def _rescale_depthwise(graph: _Graph, conv: onnx.NodeProto, input_scales: np.ndarray) -> None:
    """Fold per-channel input scales into a depthwise conv whose input dequantizes with scale 1."""
    w_dq = graph.dq_of(conv.input[1])
    w_scale = graph.array(w_dq.input[1])
    w_dq.input[1] = graph.add((w_scale * input_scales).astype(np.float32), f"{w_dq.input[1]}_cs")
    if len(conv.input) > 2 and conv.input[2] and conv.input[2] not in graph.init:
        # int32 bias quantized with (input scale x weight scale): re-express it on the new scale.
        b_dq = graph.dq_of(conv.input[2])
        real = graph.array(b_dq.input[0]).astype(np.float64) * graph.array(b_dq.input[1])
        new_scale = (w_scale * input_scales).astype(np.float32)
        ints = np.clip(np.round(real / new_scale), np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        b_dq.input[0] = graph.add(ints, f"{b_dq.input[0]}_cs")
        b_dq.input[1] = graph.add(new_scale, f"{b_dq.input[1]}_cs")


def _drop_unused(model: onnx.ModelProto) -> None:
    """Remove nodes and initializers nothing reads any more (the SiLUs' inner Q/DQ pairs)."""
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            model.graph.node.remove(node)
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
