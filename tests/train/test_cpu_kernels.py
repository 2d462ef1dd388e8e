"""The CPU training fast paths: the fused BatchNorm+SiLU kernel and fp32 strided depthwise convs."""

import copy
import logging

import pytest
import torch
from torch import nn

from edgedet.models import build_model
from edgedet.models.blocks import BaseConv, DWConv
from edgedet.models.fuse import fuse_model
from edgedet.train import cpu_kernels
from edgedet.train.cpu_kernels import CpuTrainingConv, use_cpu_kernels

CL = torch.channels_last


def _block(in_channels: int = 12, out_channels: int = 16, ksize: int = 3, stride: int = 1, groups: int = 1):
    torch.manual_seed(0)
    block = BaseConv(in_channels, out_channels, ksize, stride, groups=groups).train()
    block.bn.eps, block.bn.momentum = 1e-3, 0.03  # as the zoo sets them
    with torch.no_grad():  # not the identity affine: catches a swapped weight and bias
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-1, 1)
    return block.to(memory_format=CL)


def _run(block, x, grad_seed=1):
    """Output, input gradient, parameter gradients and running statistics after one forward/backward."""
    x = x.clone().requires_grad_()
    y = block(x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed)).to(y.dtype)
    (y * weights).sum().backward()
    return [y.detach().float(), x.grad.float(), block.conv.weight.grad, block.bn.weight.grad, block.bn.bias.grad,
            block.bn.running_mean.clone(), block.bn.running_var.clone()]


@pytest.mark.parametrize("out_channels, shape, momentum", [
    (16, (4, 12, 40, 40), 0.03),
    (24, (3, 12, 7, 9), 0.03),  # one 16-lane group and an 8-channel tail; few rows per channel
    (37, (2, 12, 11, 13), None),  # two groups and a 5-channel tail; cumulative running averages
])
def test_fused_block_matches_the_eager_block_in_fp32(out_channels, shape, momentum):
    eager = _block(out_channels=out_channels)
    eager.bn.momentum = momentum
    fused = copy.deepcopy(eager)
    assert use_cpu_kernels(fused).fused_bn_silu == 1
    assert isinstance(fused, CpuTrainingConv) and fused.act.__class__ is nn.SiLU
    for step in range(3):  # running statistics over several steps
        x = (torch.rand(shape, generator=torch.Generator().manual_seed(step)) * 255).contiguous(memory_format=CL)
        for block in (eager, fused):  # image-scale inputs, as the stem sees; fresh gradients each step
            block.zero_grad(set_to_none=True)
        for name, a, b in zip(["y", "dx", "dconv", "dgamma", "dbeta", "running_mean", "running_var"],
                              _run(eager, x, step), _run(fused, x, step)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()), msg=f"{name}, step {step}")
    assert int(fused.bn.num_batches_tracked) == 3


def test_fused_block_under_bf16_autocast_stays_within_bf16_rounding_of_fp64():
    eager = _block(24, 24, 1)  # 24 channels: one 16-lane group and an 8-channel tail
    fused = copy.deepcopy(eager)
    use_cpu_kernels(fused)
    x = torch.randn(2, 24, 13, 11).contiguous(memory_format=CL)
    reference = _run(copy.deepcopy(eager).double(), x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _run(fused, x)
        eager_bf16 = _run(eager, x)
        assert fused(x).dtype == torch.bfloat16
    for name, ref, a, e in zip(["y", "dx", "dconv", "dgamma", "dbeta", "running_mean", "running_var"],
                               reference, got, eager_bf16):
        scale = float(ref.abs().max())
        # no worse than eager bf16 BatchNorm + SiLU (plus a little slack for the rounding order)
        assert float((a.double() - ref).abs().max()) <= 1.5 * float((e.double() - ref).abs().max()) + 1e-3 * scale, name


def test_outside_cpu_training_the_block_is_exactly_baseconv():
    eager = _block().to(memory_format=torch.contiguous_format)
    fused = copy.deepcopy(eager)
    use_cpu_kernels(fused)
    x = torch.rand(2, 12, 16, 16) * 255
    # contiguous (NCHW) weights and input in training: the eager path, bit for bit
    for a, b in zip(_run(copy.deepcopy(eager), x.contiguous()), _run(copy.deepcopy(fused), x.contiguous())):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    eager.eval(), fused.eval()
    with torch.no_grad():
        torch.testing.assert_close(fused(x.contiguous(memory_format=CL)), eager(x.contiguous(memory_format=CL)),
                                   rtol=0, atol=0)
        # conv+BatchNorm folding for export still keeps the SiLU
        torch.testing.assert_close(fuse_model(copy.deepcopy(fused))(x), eager(x), rtol=1e-4, atol=1e-3)


def test_state_dict_keys_and_checkpoints_are_unchanged():
    model = build_model("yolox-nano", num_classes=3)
    plain = model.state_dict()
    report = use_cpu_kernels(model)
    assert report.fused_bn_silu == sum(isinstance(m, BaseConv) for m in model.modules()) > 100
    assert list(model.state_dict()) == list(plain)
    build_model("yolox-nano", num_classes=3).load_state_dict(model.state_dict(), strict=True)


def test_strided_depthwise_convs_run_in_fp32_under_bf16_autocast():
    model = build_model("yolox-nano", num_classes=3)
    report = use_cpu_kernels(model)
    strided = [m for m in model.modules() if isinstance(m, CpuTrainingConv) and m.strided_depthwise]
    assert report.fp32_strided_depthwise == len(strided) == 6  # nano: dark2..dark5 and the two PAFPN down convs
    assert all(m.conv.stride == (2, 2) and m.conv.groups == m.conv.in_channels > 1 for m in strided)

    block = DWConv(8, 16, 3, stride=2).train()
    use_cpu_kernels(block)
    seen = []
    block.dconv.conv.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, out.dtype)))
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=CL).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    assert seen == [(torch.float32, torch.float32)] and y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad is not None and block.dconv.conv.weight.grad.dtype == torch.float32


def test_whole_model_gradients_stay_close_to_fp64():
    # one fp32 channels-last step of yolox-nano: the fused model's gradients against an fp64 eager run
    from edgedet.train.loss import yolox_loss

    torch.manual_seed(0)
    base = build_model("yolox-nano", num_classes=3).train()
    images = torch.rand(2, 3, 96, 96) * 255
    targets = torch.tensor([[[0, 30.0, 30.0, 24.0, 18.0], [0, 0, 0, 0, 0]],
                            [[2, 60.0, 45.0, 30.0, 40.0], [1, 15.0, 70.0, 12.0, 12.0]]])

    def gradients(model, dtype):
        model = model.to(dtype).to(memory_format=CL)
        levels = model(images.to(dtype).contiguous(memory_format=CL))
        yolox_loss([lv.double() for lv in levels], targets.double(), (8, 16, 32)).total.backward()
        return torch.cat([p.grad.double().flatten() for p in model.parameters()])

    reference = gradients(copy.deepcopy(base), torch.float64)
    fused = copy.deepcopy(base)
    use_cpu_kernels(fused)
    error = float((gradients(fused, torch.float32) - reference).norm() / reference.norm())
    assert error < 2e-3  # measured 3.4e-4 (eager fp32: 1.9e-4)


def test_a_kernel_that_cannot_be_built_falls_back_to_eager_with_a_warning(monkeypatch, caplog):
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Error building extension 'edgedet_bn_silu': g++: not found")

    monkeypatch.setattr(cpu_kernels, "_kernel", None)
    monkeypatch.setattr(cpu_kernels, "_kernel_error", None)
    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    eager = _block()
    fused = copy.deepcopy(eager)
    with caplog.at_level(logging.WARNING, logger="edgedet"):
        report = use_cpu_kernels(fused)
    assert report.fused_bn_silu == 0 and "g++: not found" in report.kernel_error
    assert "BatchNorm+SiLU eager" in report.describe()
    assert any("kernel unavailable" in r.getMessage() for r in caplog.records)
    x = torch.rand(2, 12, 8, 8).contiguous(memory_format=CL)
    for a, b in zip(_run(eager, x), _run(fused, x)):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_a_build_waits_for_another_builds_lock_and_removes_a_killed_builds(monkeypatch, tmp_path):
    import os
    import threading
    import time

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(cpu_kernels, "LOCK_WAIT_SECONDS", 2.0)

    def locked(name, age):
        lock = tmp_path / name / "lock"
        lock.parent.mkdir()
        lock.touch()
        os.utime(lock, (time.time() - age, time.time() - age))
        return lock

    old = locked("old", 60)  # a killed build's: removed at once
    start = time.monotonic()
    assert cpu_kernels._build_directory("old") == tmp_path / "old" and not old.exists()
    assert time.monotonic() - start < 1
    busy = locked("busy", 0)  # another process building: released after a second
    threading.Timer(1.0, busy.unlink).start()
    start = time.monotonic()
    assert cpu_kernels._build_directory("busy") == tmp_path / "busy"
    assert 0.9 < time.monotonic() - start < 2
    stuck = locked("stuck", 0)  # never released: removed once it is older than the wait
    start = time.monotonic()
    cpu_kernels._build_directory("stuck")
    assert not stuck.exists() and 1.9 < time.monotonic() - start < 4
