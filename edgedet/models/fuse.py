"""Conv+BatchNorm folding for inference and export."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .blocks import BaseConv

__all__ = ["fuse_model"]


def fuse_model(model: nn.Module) -> nn.Module:
    """Fold every BaseConv's BatchNorm into its convolution, in place, and return the model.

    The model is put in eval mode (folding uses the running statistics). Outputs stay
    equal to float32 rounding. The fused model's state dict no longer has the BN keys,
    so fuse after loading a checkpoint, not before.
    """
    model.eval()
    for module in model.modules():
        if isinstance(module, BaseConv) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
    return model
