"""FLOPs and parameter counts measured from the model itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

__all__ = ["ModelCost", "count_cost", "zoo_cost"]


@dataclass(frozen=True)
class ModelCost:
    params: int
    conv_macs: int  # sum over Conv2d of (Cin/groups)*kh*kw*Hout*Wout*Cout
    conv_bias_adds: int  # output elements of convs that have a bias
    bn_elements: int  # output elements of BatchNorm2d layers

    @property
    def conv_gflops(self) -> float:
        """2 * conv MACs, in GFLOPs."""
        return 2 * self.conv_macs / 1e9

    @property
    def gflops(self) -> float:
        """The convention of the YOLOX README: 2 * (conv MACs + bias adds + 2 per BN element)."""
        return 2 * (self.conv_macs + self.conv_bias_adds + 2 * self.bn_elements) / 1e9


def count_cost(model: nn.Module, input_size: Tuple[int, int]) -> ModelCost:
    """Count parameters and per-image operations of ``model`` at ``input_size`` (H, W).

    The model runs one batch-1 forward pass with hooks on the device of its parameters.
    Build it on the meta device (``with torch.device("meta"): build_model(...)``, as
    :func:`zoo_cost` does) and the count costs no compute, even for YOLOX-X at 640.
    """
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    totals = {"macs": 0, "bias": 0, "bn": 0}

    def on_conv(module: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        totals["macs"] += (module.in_channels // module.groups) * kh * kw * out.numel()
        if module.bias is not None:
            totals["bias"] += out.numel()

    def on_bn(_module, _inp, out: torch.Tensor) -> None:
        totals["bn"] += out.numel()

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_hook(on_bn))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return ModelCost(params, totals["macs"], totals["bias"], totals["bn"])


def zoo_cost(name: str, input_size: Optional[Tuple[int, int]] = None, num_classes: int = 80) -> ModelCost:
    """Cost of a zoo model at ``input_size`` (default: its official test size), counted on
    the meta device."""
    from .zoo import build_model, get_spec

    with torch.device("meta"):
        model = build_model(name, num_classes=num_classes)
    return count_cost(model, input_size or get_spec(name).test_size)
