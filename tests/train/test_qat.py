"""Quantization-aware fine-tuning's pieces: quantizers, placement, and the way back to the model's layout."""

import copy

import onnx
import pytest
import torch

from edgedet.calibration.channel_scales import depthwise_sites
from edgedet.models import build_model
from edgedet.train.qat import (FakeQuant, FrozenBatchNorm2d, QuantSiLU, depthwise_site_producers, freeze_ranges, observe, prepare_qat,
                               qat_state_dict)


def test_fake_quant_observes_then_rounds_to_the_averaged_range():
    q = FakeQuant()
    x1, x2 = torch.tensor([-1.0, 0.0, 3.0]), torch.tensor([-3.0, 1.0, 5.0])
    assert torch.equal(q(x1), x1) and torch.equal(q(x2), x2)  # observing: values pass unchanged
    q.freeze()
    q.eval()  # the range stays as frozen
    # range: mean of the minima (-2) to mean of the maxima (4): 255 levels, zero point on a level
    assert q.scale.item() == pytest.approx(6 / 255) and q.zero_point.item() == round(2 / (6 / 255))
    y = q(torch.tensor([-10.0, 0.3, 10.0], requires_grad=True))
    levels = (y / q.scale).detach()
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # on the grid
    assert y[0].item() == pytest.approx(-2.0, abs=q.scale.item()) and y[2].item() == pytest.approx(4.0, abs=q.scale.item())


def test_in_training_the_range_follows_the_batches():
    q = FakeQuant(momentum=0.5)
    q(torch.tensor([-1.0, 1.0]))
    q.freeze()
    q.train()
    q(torch.tensor([-3.0, 5.0]))
    assert (q.low.item(), q.high.item()) == (-2.0, 3.0)
    assert q.scale.item() == pytest.approx(5 / 255)


def test_per_channel_fake_quant_keeps_a_small_channel_fine():
    q = FakeQuant(per_channel=True)
    x = torch.stack([torch.linspace(-0.01, 0.01, 50), torch.linspace(-10, 10, 50)]).reshape(1, 2, 50, 1)
    q(x)
    q.freeze()
    q.eval()
    error = (q(x) - x).abs().amax(dim=(0, 2, 3))
    assert error[0] < 1e-4 and error[1] < 0.05  # one scale for both would leave channel 0 a single level


def test_the_depthwise_sites_are_the_ones_quantize_scales_per_channel(exported):
    model = build_model("yolox-nano", num_classes=80)
    sites = depthwise_site_producers(model, torch.zeros(1, 3, 128, 160))
    assert len(sites) == len(depthwise_sites(onnx.load(str(exported["decoded"])))) == 23
    assert depthwise_site_producers(build_model("yolox-tiny", num_classes=80), torch.zeros(1, 3, 64, 64)) == {}


def test_prepared_model_quantizes_where_quantize_does():
    model = prepare_qat(build_model("yolox-nano", num_classes=6), torch.zeros(1, 3, 64, 64))
    silus = [m for m in model.modules() if isinstance(m, QuantSiLU)]
    assert sum(s.site for s in silus) == 23 and all(s.sigmoid_q is None for s in silus if s.site)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    sites = depthwise_site_producers(build_model("yolox-nano", num_classes=6).eval(), torch.zeros(1, 3, 64, 64))
    readers = {name for names in sites.values() for name in names}
    # a site's depthwise convs read its per-channel output as it is; every other conv quantizes its input
    assert {n for n, c in model.named_modules() if isinstance(c, torch.nn.Conv2d) and not hasattr(c, "in_q")} == readers
    assert len(readers) == 26
    assert sum(hasattr(m, "out_q") and not isinstance(m, QuantSiLU) for m in model.modules()) == len(convs)
    assert all(c.parametrizations.weight for c in convs)
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in build_model("yolox-nano", num_classes=6).modules())
    assert sum(isinstance(m, FakeQuant) and m.per_channel for m in model.modules()) == 46


def test_without_channel_scales_every_activation_is_per_tensor_like_quantize_no_channel_scales():
    model = prepare_qat(build_model("yolox-nano", num_classes=6), torch.zeros(1, 3, 64, 64), channel_scales=False)
    assert not any(isinstance(m, FakeQuant) and m.per_channel for m in model.modules())
    assert all(not s.site and s.sigmoid_q is not None for s in model.modules() if isinstance(s, QuantSiLU))
    assert all(hasattr(c, "in_q") for c in model.modules() if isinstance(c, torch.nn.Conv2d))


def test_weights_go_back_to_the_model_layout_unchanged():
    torch.manual_seed(0)
    reference = build_model("yolox-nano", num_classes=6).eval()
    for m in reference.modules():  # non-trivial BatchNorm statistics, so folding matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    qat = prepare_qat(copy.deepcopy(reference), torch.zeros(1, 3, 64, 64))
    observe(qat, [torch.rand(2, 3, 64, 64) * 255])
    assert freeze_ranges(qat) == 385
    restored = build_model("yolox-nano", num_classes=6).eval()
    restored.load_state_dict(qat_state_dict(qat), strict=True)
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        want, got = reference(x), restored(x)
    assert torch.equal(got, want)


def test_fine_tuning_through_the_quantizers_reaches_the_weights():
    model = prepare_qat(build_model("yolox-nano", num_classes=6), torch.zeros(1, 3, 64, 64))
    observe(model, [torch.rand(2, 3, 64, 64) * 255])
    freeze_ranges(model)
    model.eval()
    model(torch.rand(1, 3, 64, 64) * 255).sum().backward()
    stem = model.backbone.backbone.stem.conv
    grad = stem.conv.parametrizations.weight.original.grad
    assert grad is not None and grad.abs().sum() > 0
    assert stem.bn.weight.grad is not None and stem.bn.running_var.grad is None
