"""Optimizer and learning-rate schedule of the YOLOX recipe, and the weight EMA."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["build_optimizer", "YoloxWarmCos", "ModelEMA"]


def build_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    """SGD with Nesterov momentum; weight decay on conv weights only (BN weights and all
    biases get none), as the official ``get_optimizer``."""
    decay, no_decay, biases = [], [], []
    for module in model.modules():
        if hasattr(module, "bias") and isinstance(module.bias, nn.Parameter):
            biases.append(module.bias)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.weight is not None:
                no_decay.append(module.weight)
        elif hasattr(module, "weight") and isinstance(module.weight, nn.Parameter):
            decay.append(module.weight)
    optimizer = torch.optim.SGD(no_decay, lr=lr, momentum=momentum, nesterov=True)
    optimizer.add_param_group({"params": decay, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": biases})
    return optimizer


class YoloxWarmCos:
    """``yoloxwarmcos``: quadratic warm-up from 0 over ``warmup_iters``, cosine down to
    ``min_lr_ratio * lr`` at the start of the last ``no_aug_iters``, then constant."""

    def __init__(self, lr: float, total_iters: int, warmup_iters: int, no_aug_iters: int, min_lr_ratio: float = 0.05):
        self.lr, self.total, self.warmup, self.no_aug = lr, total_iters, warmup_iters, no_aug_iters
        self.min_lr = lr * min_lr_ratio

    def __call__(self, it: int) -> float:
        if it <= self.warmup and self.warmup > 0:
            return self.lr * (it / self.warmup) ** 2
        if it >= self.total - self.no_aug:
            return self.min_lr
        span = max(self.total - self.warmup - self.no_aug, 1)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * (it - self.warmup) / span))


class ModelEMA:
    """Exponential moving average of weights, decay ``0.9998 * (1 - exp(-updates / 2000))``."""

    def __init__(self, model: nn.Module, decay: float = 0.9998, updates: int = 0) -> None:
        self.ema = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, updates
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / 2000))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        state = model.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(state[k].detach(), alpha=1 - d)
            else:
                v.copy_(state[k])
