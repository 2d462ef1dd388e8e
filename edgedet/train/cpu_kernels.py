"""Faster CPU training of YOLOX conv blocks (``BaseConv``: conv -> BatchNorm -> SiLU), measured on a
2-core AVX-512 BF16 CPU (docs/training.md):

- **BatchNorm + SiLU in one kernel** (``bn_silu.cpp``, built for this machine on first use by
  ``torch.utils.cpp_extension`` and cached): eager PyTorch runs them as separate memory-bound passes
  and autograd clones the in-place SiLU's input. The fused forward reads the activation map twice and
  writes it once; the backward reads the upstream gradient and the map, then its own intermediate.
- **Strided depthwise convolutions in fp32 under bf16 autocast**: oneDNN's bf16 backward for a 3x3
  depthwise conv with stride 2 runs 10 to 20 times slower than its fp32 one here (13.5 against 0.9 ms
  for 64 channels at 52x52, batch 16), while stride 1 is on par; the output goes back to bf16.

:func:`use_cpu_kernels` turns a model's ``BaseConv`` blocks into :class:`CpuTrainingConv` in place:
the same parameters, buffers and state-dict keys, so checkpoints are unchanged. In eval mode and on
other devices it is ``BaseConv``; in CPU training the strided depthwise convs take the fp32 path
whenever bf16 autocast is on, and BatchNorm + SiLU are fused for channels-last float32/bfloat16 maps
once the kernel is built (else eager). Fused, the ``bn`` and ``act`` submodules' forward hooks do not
fire: the block runs their computation itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch
from torch import nn

from edgedet.models.blocks import BaseConv

__all__ = ["CpuKernels", "CpuTrainingConv", "kernel", "use_cpu_kernels"]

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("bn_silu.cpp")
_lock = threading.Lock()
_kernel: Optional[ModuleType] = None
_kernel_error: Optional[str] = None


def kernel() -> Optional[ModuleType]:
    """The compiled BatchNorm + SiLU kernel, built on first call (about 30 s, then cached under
    ``~/.cache/torch_extensions`` or ``$TORCH_EXTENSIONS_DIR``); None, with one warning, when it
    cannot be built (no C++ compiler, say)."""
    global _kernel, _kernel_error
    with _lock:
        if _kernel is None and _kernel_error is None:
            from torch.utils.cpp_extension import load

            name = f"edgedet_bn_silu_{_build_digest()}"
            try:
                build_dir = _build_directory(name)
                # -fopenmp: ATen's parallel_for is OpenMP in torch's CPU builds, inlined from its headers
                _kernel = load(name, [str(SOURCE)], extra_cflags=["-O3", "-march=native", "-fopenmp"],
                               extra_ldflags=["-fopenmp"], build_directory=str(build_dir), verbose=False)
            except Exception as exc:  # any build failure: eager BatchNorm + SiLU still trains
                lines = str(exc).strip().splitlines()
                _kernel_error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
                log.warning("fused BatchNorm+SiLU kernel unavailable (%s); training with eager BatchNorm and SiLU",
                            _kernel_error)
        return _kernel


def _build_digest() -> str:
    """What the build depends on: the source, this CPU's instruction set (``-march=native``), and the
    torch and Python it is built against (paths included: two environments with the same versions
    still have their own headers). A cache shared between machines or environments never hands one
    another's build, nor makes them rebuild each other's."""
    try:
        cpu_flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("flags")), "")
    except OSError:
        cpu_flags = ""
    cpu_flags = cpu_flags or torch.backends.cpu.get_cpu_capability()
    depends = [SOURCE.read_bytes(), cpu_flags.encode(), torch.__version__.encode(), torch.__file__.encode(),
               sys.prefix.encode(), repr(sys.version_info[:2]).encode()]
    return hashlib.sha1(b"\0".join(depends)).hexdigest()[:12]


# A build takes about 30 s here. torch waits for another process's build lock without a limit, and a
# build killed outright (SIGKILL, out of memory) leaves its lock behind: wait this long, then remove it.
LOCK_WAIT_SECONDS = 180


def _build_directory(name: str) -> Path:
    """Where torch.utils.cpp_extension builds and caches the kernel, once no other build holds it (a
    lock older than LOCK_WAIT_SECONDS is a killed build's, and is removed)."""
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    build_dir = root / name
    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"
    waited = False
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return build_dir
        if age > LOCK_WAIT_SECONDS:
            log.warning("removing a build lock %.0f s old, left by an interrupted build: %s", age, lock)
            lock.unlink(missing_ok=True)
            return build_dir
        if not waited:
            log.info("waiting for another process's build of the kernel (%s)", lock)
            waited = True
        time.sleep(1.0)


class _BatchNormSiLUFunction(torch.autograd.Function):
    """Autograd for the kernel: saves the BatchNorm input and the batch statistics (not the SiLU input)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float):
        y, mean, invstd, var = _kernel.forward(x, weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor, _grad_mean, _grad_var):
        x, weight, bias, mean, invstd = ctx.saved_tensors
        grad_y = grad_y.to(x.dtype).contiguous(memory_format=torch.channels_last)
        grad_x, grad_weight, grad_bias = _kernel.backward(grad_y, x, weight, bias, mean, invstd)
        return grad_x, grad_weight, grad_bias, None


def _is_bf16_autocast_on_cpu() -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


class CpuTrainingConv(BaseConv):
    """``BaseConv`` with the CPU training fast paths; identical to it outside CPU training."""

    strided_depthwise: bool = False

    def _fusable(self, x: torch.Tensor) -> bool:
        bn = self.bn
        return (type(bn) is nn.BatchNorm2d and isinstance(self.act, nn.SiLU) and bn.training and bn.affine
                and x.dim() == 4 and x.dtype in (torch.float32, torch.bfloat16) and bn.weight.dtype == torch.float32
                and x.is_contiguous(memory_format=torch.channels_last) and (_kernel is not None or kernel() is not None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu":
            return super().forward(x)
        if self.strided_depthwise and _is_bf16_autocast_on_cpu():
            with torch.autocast("cpu", enabled=False):
                y = self.conv(x.float()).to(torch.bfloat16)
        else:
            y = self.conv(x)
        if not self._fusable(y):
            return self.act(self.bn(y))
        bn = self.bn
        out, mean, var = _BatchNormSiLUFunction.apply(y, bn.weight, bn.bias, bn.eps)
        if bn.track_running_stats:
            with torch.no_grad():  # what BatchNorm2d does in training: running stats, unbiased variance
                bn.num_batches_tracked.add_(1)
                momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
                count = y.numel() // y.shape[1]
                bn.running_mean.lerp_(mean, momentum)
                bn.running_var.lerp_(var * (count / max(count - 1, 1)), momentum)
        return out


@dataclasses.dataclass(frozen=True)
class CpuKernels:
    """What :func:`use_cpu_kernels` changed."""

    fused_bn_silu: int  # BaseConv blocks whose BatchNorm + SiLU run as one kernel in training
    fp32_strided_depthwise: int  # strided depthwise convs run in fp32 under bf16 autocast
    kernel_error: Optional[str] = None  # why the fused kernel is not available (then eager BN + SiLU)

    def describe(self) -> str:
        fused = (f"{self.fused_bn_silu} BatchNorm+SiLU fused" if self.kernel_error is None
                 else f"BatchNorm+SiLU eager ({self.kernel_error})")
        return f"{fused}, {self.fp32_strided_depthwise} strided depthwise convs in fp32 under bf16"


def use_cpu_kernels(model: nn.Module) -> CpuKernels:
    """Turn every ``BaseConv`` of ``model`` into :class:`CpuTrainingConv`, in place (parameters and
    state-dict keys unchanged), and build the fused kernel now rather than inside the first step."""
    fused = strided = 0
    for module in model.modules():
        if type(module) in (BaseConv, CpuTrainingConv):  # exactly these: subclasses may forward otherwise
            module.__class__ = CpuTrainingConv
            conv = module.conv
            module.strided_depthwise = conv.groups > 1 and conv.groups == conv.in_channels and conv.stride != (1, 1)
            strided += module.strided_depthwise
            fused += type(module.bn) is nn.BatchNorm2d and isinstance(module.act, nn.SiLU)
    kernel()
    return CpuKernels(fused_bn_silu=fused if _kernel is not None else 0, fp32_strided_depthwise=strided,
                      kernel_error=_kernel_error)
