"""torch -> ONNX through the torch.export-based exporter (``torch.onnx.export(dynamo=True)``).

Chosen over the TorchScript exporter, which torch 2.9+ deprecates with a warning on every
call: the dynamo path gives a smaller graph for YOLOX (373 nodes for nano against 583 before
simplification: no Identity/Constant clutter) and a symbolic batch axis.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator, Optional, Sequence, Tuple

import onnx
import torch
from torch import nn

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "torch_to_onnx"]

DEFAULT_OPSET = 18  # the lowest opset the torch.export-based exporter emits natively
MIN_OPSET = 18


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence, for this call only, the exporter's notices that are not about our model:
    the torchvision-op registration messages (we use no torchvision op) and a deprecation
    raised inside torch's own pytree code."""
    names = ("torch.onnx", "torch.onnx._internal.exporter._registration", "torch.export", "torch._export")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def torch_to_onnx(
    module: nn.Module,
    input_size: Tuple[int, int],
    output_names: Sequence[str],
    batch: Optional[int] = 1,
    opset: int = DEFAULT_OPSET,
    example: Optional[torch.Tensor] = None,
) -> onnx.ModelProto:
    """Export ``module`` (images [B, 3, H, W] -> outputs) to an in-memory ONNX model.

    Args:
        input_size: (H, W), fixed in the graph.
        output_names: names of the graph outputs, in the module's return order.
        batch: fixed batch size, or None for a dynamic batch axis named ``batch``.
        opset: ONNX opset, at least 18.
        example: the tracing input; a random 0..255 batch of 2 (or ``batch``) by default.

    The input is named ``images``.
    """
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET} to {newest} (the newest this onnx "
                         f"{onnx.__version__} knows)")
    if example is None:
        n = 2 if batch is None else batch
        example = torch.rand(n, 3, *input_size, generator=torch.Generator().manual_seed(0)) * 255
    dynamic_shapes = None
    if batch is None:
        dynamic_shapes = {"images": {0: torch.export.Dim("batch", min=1, max=1024)}}
    module = module.eval()
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            None,
            input_names=["images"],
            output_names=list(output_names),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
            report=False,
        )
    model = program.model_proto
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:  # the exporter falls back to its own opset when conversion fails, with only a warning
        raise ValueError(f"opset {opset} was asked for but the exporter produced opset {got}; use opset {got}")
    if batch is None:  # name the symbolic batch axis of every output alike
        for value in list(model.graph.input) + list(model.graph.output):
            dim = value.type.tensor_type.shape.dim[0]
            dim.ClearField("dim_value")
            dim.dim_param = "batch"
    return model
