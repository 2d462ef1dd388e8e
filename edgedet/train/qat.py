"""Quantization-aware fine-tuning: the fp32 model trained through the rounding its INT8 file will do.

The model is fake-quantized where ``edgedet quantize`` puts its quantizers on ONNX Runtime's CPU
path, as export folds each BatchNorm into its conv (the BatchNorms are frozen, so the fold is exact):

- every convolution's weights per output channel, symmetric int8;
- every convolution's input and output per tensor, uint8 with a zero point, and inside each SiLU
  its sigmoid and its product (ONNX Runtime runs them as QLinearSigmoid and QLinearMul);
- at the depthwise sites (``calibration/channel_scales.py``: a conv whose SiLU output feeds only
  depthwise convs) the conv's output and the SiLU's output per channel, the SiLU itself in float.

Activation ranges start from calibration images, computed the way ``quantize`` computes them (the
mean over batches of each batch's minimum and maximum), and follow the training batches by a
moving average; the weights learn to sit well on that grid. The fine-tuned weights go back into the model's
own layout (``qat_state_dict``), so the usual ``export`` and ``quantize`` make the INT8 file,
whose calibration finds nearly the same ranges.
"""

from __future__ import annotations

import time
from typing import Dict, Iterable, List, Optional, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from edgedet.models.blocks import BaseConv

from .progress import TrainProgress, TrainStep

__all__ = ["FakeQuant", "QuantSiLU", "FrozenBatchNorm2d", "prepare_qat", "observe", "freeze_ranges", "qat_state_dict",
           "depthwise_site_producers", "reobserve", "finetune_qat"]

UINT8 = (0, 255)
INT8_WEIGHTS = (-127, 127)


class FakeQuant(nn.Module):
    """uint8 fake quantization (straight-through gradient inside the range), per tensor or per
    channel (axis 1). While ``observing`` it passes values through and records each batch's
    extremes; ``freeze`` sets the range to their means (``quantize``'s estimator). In training mode
    the range then follows each batch's extremes by an exponential moving average, so the weights
    cannot push values out of it unnoticed; in eval mode it stays as it is."""

    def __init__(self, per_channel: bool = False, momentum: float = 0.01) -> None:
        super().__init__()
        self.per_channel = per_channel
        self.momentum = momentum
        self.observing = True
        self._lows: List[torch.Tensor] = []
        self._highs: List[torch.Tensor] = []
        self.register_buffer("low", torch.zeros(1))
        self.register_buffer("high", torch.zeros(1))
        self.register_buffer("scale", torch.ones(1))
        self.register_buffer("zero_point", torch.zeros(1, dtype=torch.int32))

    def _extremes(self, x: torch.Tensor):
        dims = [d for d in range(x.dim()) if d != 1] if self.per_channel else list(range(x.dim()))
        x = x.detach().float()
        return x.amin(dim=dims).reshape(-1), x.amax(dim=dims).reshape(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            low, high = self._extremes(x)
            self._lows.append(low)
            self._highs.append(high)
            return x
        if self.training:
            low, high = self._extremes(x)
            self._set_range(torch.lerp(self.low, low, self.momentum), torch.lerp(self.high, high, self.momentum))
        if self.per_channel:
            return torch.fake_quantize_per_channel_affine(x, self.scale, self.zero_point, 1, *UINT8)
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, *UINT8)

    def _set_range(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low, self.high = low.clamp(max=0.0), high.clamp(min=0.0)
        self.scale = ((self.high - self.low) / (UINT8[1] - UINT8[0])).clamp(min=1e-8)
        self.zero_point = torch.round(-self.low / self.scale).clamp(*UINT8).to(torch.int32)

    def freeze(self) -> None:
        """End observing: the range becomes the mean of the observed batches' extremes."""
        if not self._lows:
            raise RuntimeError("a fake quantizer saw no data before freeze()")
        self._set_range(torch.stack(self._lows).mean(0), torch.stack(self._highs).mean(0))
        self._lows, self._highs = [], []
        self.observing = False


class QuantSiLU(nn.Module):
    """SiLU as ONNX Runtime's int8 graph runs it: sigmoid and product each quantized, or, at a
    depthwise site, in float with its output quantized per channel."""

    def __init__(self, site: bool) -> None:
        super().__init__()
        self.site = site
        self.sigmoid_q = None if site else FakeQuant()
        self.out_q = FakeQuant(per_channel=site)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(x)
        if self.sigmoid_q is not None:
            gate = self.sigmoid_q(gate)
        return self.out_q(x * gate)


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that always normalizes with its running statistics (which no longer change) and
    keeps its scale and shift trainable: the fold that ONNX export makes stays exact while the
    conv before it is fine-tuned in its own, well-conditioned parametrization."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                        self.eps)

    def fold_gain(self) -> torch.Tensor:
        """Per channel, what folding multiplies the conv's weights by."""
        return self.weight / torch.sqrt(self.running_var + self.eps)


class _WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric int8 of a conv weight as export folds it (times ``bn``'s gain
    when there is one), divided back, so the conv and the BatchNorm after it compute what the
    folded int8 conv will; the scale follows the weight."""

    def __init__(self, bn: "FrozenBatchNorm2d | None" = None) -> None:
        super().__init__()
        self.bn = [bn]  # a list: not a submodule (its parameters belong to the model)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        bn = self.bn[0]
        gain = bn.fold_gain().reshape(-1, 1, 1, 1) if bn is not None else None
        if gain is not None:
            # a channel whose gain is (near) zero contributes nothing either way
            gain = torch.where(gain.abs() < 1e-12, torch.full_like(gain, 1e-12), gain)
            w = w * gain
        scale = (w.detach().abs().amax(dim=(1, 2, 3)) / INT8_WEIGHTS[1]).clamp(min=1e-12)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        w = torch.fake_quantize_per_channel_affine(w, scale, zero, 0, *INT8_WEIGHTS)
        return w / gain if gain is not None else w


def depthwise_site_producers(model: nn.Module, example: torch.Tensor) -> Dict[str, List[str]]:
    """The BaseConvs whose output (after its activation) is read only by depthwise convolutions,
    each with the names of those Conv2d modules, found by watching every torch call of one forward
    pass (a concat, an add or any other read of that output makes it an ordinary conv)."""
    from torch.overrides import TorchFunctionMode

    outputs: Dict[int, str] = {}
    keep: List[torch.Tensor] = []  # holds the outputs so that their ids are not reused in the pass
    reads: Dict[str, List[bool]] = {}
    readers: Dict[str, List[str]] = {}

    def record(_m, _i, out, name):
        outputs[id(out)] = name
        keep.append(out)

    class _Reads(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if getattr(func, "__name__", "") != "__get__":  # attribute reads (x.shape) are not uses
                depthwise = _is_depthwise_call(func, args, kwargs)
                for a in _flatten(list(args) + list(kwargs.values())):
                    name = outputs.get(id(a)) if isinstance(a, torch.Tensor) else None
                    if name is not None:
                        reads.setdefault(name, []).append(depthwise and a is args[0])
            return func(*args, **kwargs)

    def reader(inputs, name):
        producer = outputs.get(id(inputs[0]))
        if producer is not None:
            readers.setdefault(producer, []).append(name)

    handles = [m.register_forward_hook(lambda mod, i, out, name=name: record(mod, i, out, name))
               for name, m in model.named_modules() if isinstance(m, BaseConv)]
    handles += [m.register_forward_pre_hook(lambda mod, inputs, name=name: reader(inputs, name))
                for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad(), _Reads():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return {name: readers.get(name, []) for name, kinds in reads.items() if kinds and all(kinds)}


def _is_depthwise_call(func, args, kwargs) -> bool:
    if func not in (torch.nn.functional.conv2d, torch.conv2d) or len(args) < 2:
        return False
    weight = args[1]
    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
    return groups > 1 and weight.shape[1] == 1 and groups == weight.shape[0]


def _flatten(items: Iterable) -> list:
    flat = []
    for item in items:
        if isinstance(item, (list, tuple)):
            flat.extend(_flatten(item))
        else:
            flat.append(item)
    return flat


def prepare_qat(model: nn.Module, example: torch.Tensor, channel_scales: bool = True) -> nn.Module:
    """Put fake quantizers into ``model``, in place, where the folded INT8 graph quantizes, and
    freeze its BatchNorms (running statistics fixed, scale and shift trainable); returns the
    model, its quantizers observing. Feed calibration batches (``observe``), then
    ``freeze_ranges`` and train. ``qat_state_dict`` gives the weights back in the model's layout.
    ``channel_scales=False`` matches ``quantize --no-channel-scales``: every activation per tensor."""
    model.eval()
    sites = depthwise_site_producers(model, example) if channel_scales else {}
    # the depthwise convs of a site read its per-channel quantized output as it is
    site_readers = {conv for readers in sites.values() for conv in readers}
    for m in list(model.modules()):
        if isinstance(m, BaseConv) and isinstance(m.bn, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(m.bn.num_features, eps=m.bn.eps)
            frozen.load_state_dict(m.bn.state_dict())
            m.bn = frozen
    for name, m in model.named_modules():
        if not isinstance(m, BaseConv):
            continue
        site = name in sites
        if isinstance(m.act, nn.SiLU) or type(m.act).__name__ == "ExportSiLU":
            m.act = QuantSiLU(site)
        bn = m.bn if isinstance(m.bn, FrozenBatchNorm2d) else None
        pre_activation = bn if bn is not None else m.conv
        pre_activation.register_module("out_q", FakeQuant(per_channel=site))
        pre_activation.register_forward_hook(lambda mod, _i, out: mod.out_q(out))
        parametrize.register_parametrization(m.conv, "weight", _WeightFakeQuant(bn))
        if f"{name}.conv" not in site_readers:
            m.conv.register_module("in_q", FakeQuant())
            m.conv.register_forward_pre_hook(lambda mod, inp: (mod.in_q(inp[0]),))
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and not parametrize.is_parametrized(m):  # the prediction convs of the head
            m.register_module("in_q", FakeQuant())
            m.register_forward_pre_hook(lambda mod, inp: (mod.in_q(inp[0]),))
            m.register_module("out_q", FakeQuant())
            m.register_forward_hook(lambda mod, _i, out: mod.out_q(out))
            parametrize.register_parametrization(m, "weight", _WeightFakeQuant())
    return model


def observe(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Run calibration ``batches`` through a prepared model in eval mode; returns their count."""
    model.eval()
    n = 0
    with torch.no_grad():
        for batch in batches:
            model(batch)
            n += 1
    return n


def freeze_ranges(model: nn.Module) -> int:
    """Fix every quantizer's range from what it observed; returns how many there are."""
    quantizers = [m for m in model.modules() if isinstance(m, FakeQuant)]
    for q in quantizers:
        q.freeze()
    return len(quantizers)


def qat_state_dict(qat_model: nn.Module) -> Dict[str, torch.Tensor]:
    """The fine-tuned weights in the model's own layout (the keys and shapes of a fresh model), so
    they load strictly and export as any checkpoint does."""
    state = {}
    for key, value in qat_model.state_dict().items():
        if any(part in ("in_q", "out_q", "sigmoid_q") for part in key.split(".")):
            continue
        state[key.replace(".parametrizations.weight.original", ".weight")] = value.detach().clone()
    return state


def reobserve(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Estimate every quantizer's range again on ``batches`` (the calibration images) and keep it
    fixed from then on, in training too: the last steps then train for the ranges that
    ``quantize`` will compute on the same images."""
    for q in model.modules():
        if isinstance(q, FakeQuant):
            q.observing, q._lows, q._highs = True, [], []
    observe(model, batches)
    freeze_ranges(model)
    for q in model.modules():
        if isinstance(q, FakeQuant):
            q.momentum = 0.0


def finetune_qat(model: nn.Module, dataset, strides: Sequence[int], calibration: torch.Tensor, *, epochs: float = 1.0,
                 batch: int = 16, lr_per_image: float = 1e-4 / 16, frozen_fraction: float = 0.25, workers: int = 1,
                 seed: int = 0, progress: Optional[TrainProgress] = None) -> List[float]:
    """Fine-tune a model that ``prepare_qat`` prepared: its quantizers are calibrated on
    ``calibration`` (images, N x 3 x H x W, as ``quantize`` prepares them) and then trained through,
    for ``epochs`` (fractions allowed) of ``dataset`` (a ``TrainDataset``; mosaic off) with SGD
    (Nesterov), a cosine learning rate from ``lr_per_image * batch`` and the L1 loss on. For the
    last ``frozen_fraction`` of the steps the ranges are estimated again on ``calibration`` and held.
    Returns the loss of every step."""
    from .schedule import YoloxWarmCos
    from .trainer import train_step, worker_init

    def calibration_batches():
        return (calibration[i:i + 8] for i in range(0, len(calibration), 8))

    observe(model, calibration_batches())
    freeze_ranges(model)
    dataset.set_epoch(0, mosaic_enabled=False)
    generator = torch.Generator().manual_seed(seed)
    # spawned workers with one thread each, as the trainer's (see its loader)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         generator=generator, worker_init_fn=worker_init if workers else None,
                                         multiprocessing_context="spawn" if workers else None)
    steps = max(1, int(epochs * len(loader)))
    freeze_at = int(steps * (1 - frozen_fraction)) if frozen_fraction > 0 else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr_per_image * batch, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = YoloxWarmCos(lr_per_image * batch, steps, warmup_iters=0, no_aug_iters=0, min_lr_ratio=0.0)  # cosine to 0
    losses: List[float] = []
    start = time.perf_counter()
    model.train()
    while len(losses) < steps:
        for images, targets in loader:
            step = len(losses)
            if step >= steps:
                break
            if step == freeze_at:
                reobserve(model, calibration_batches())
                model.train()
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            parts = train_step(model, optimizer, images, targets, strides, precision="fp32", use_l1=True)
            losses.append(float(parts.total.detach()))
            if progress:
                progress(TrainStep(1, 1, step + 1, steps, batch, lr, (step + 1) * batch / (time.perf_counter() - start),
                                   parts.as_floats()))
    model.eval()
    return losses
