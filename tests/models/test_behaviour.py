"""Each test catches one of the classic reimplementation mistakes (reference section 9)."""

import torch
import torch.nn.functional as F

from edgedet.models import SPPBottleneck, build_model, decode_outputs
from edgedet.models.blocks import CSPLayer, Focus


def _capture_input(module):
    seen = {}

    def hook(_m, args):
        seen["x"] = args[0].detach().clone()

    module.register_forward_pre_hook(hook)
    return seen


def test_focus_phase_order_is_even_even_odd_row_odd_col():
    focus = Focus(1, 4, ksize=1).eval()
    seen = _capture_input(focus.conv)
    # a 2x2 image [[a, b], [c, d]] with a=1 (row 0 col 0), b=2 (row 0 col 1), c=3, d=4
    focus(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    # (even row, even col)=a, (odd row, even col)=c, (even row, odd col)=b, (odd, odd)=d
    assert seen["x"].flatten().tolist() == [1.0, 3.0, 2.0, 4.0]


def test_pafpn_upsamples_nearest_and_puts_resampled_tensor_first():
    model = build_model("yolox-nano", num_classes=2).eval()
    neck = model.backbone
    assert neck.upsample.mode == "nearest"
    lateral, c3_p4 = {}, _capture_input(neck.C3_p4)
    neck.lateral_conv0.register_forward_hook(lambda m, a, out: lateral.setdefault("y", out.detach().clone()))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64) * 255)
    up = lateral["y"].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(c3_p4["x"][:, : up.shape[1]], up)


def test_spp_concat_order_and_kernels():
    spp = SPPBottleneck(8, 8).eval()
    pooled_in = {}
    spp.conv1.register_forward_hook(lambda m, a, out: pooled_in.setdefault("y", out.detach().clone()))
    seen = _capture_input(spp.conv2)
    with torch.no_grad():
        spp(torch.randn(1, 8, 16, 16))
    y = pooled_in["y"]
    expected = torch.cat([y] + [F.max_pool2d(y, k, 1, k // 2) for k in (5, 9, 13)], 1)
    assert torch.equal(seen["x"], expected)


def test_csp_concat_puts_bottleneck_path_first():
    csp = CSPLayer(8, 8, n=1).eval()
    seen = _capture_input(csp.conv3)
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        csp(x)
        expected = torch.cat([csp.m(csp.conv1(x)), csp.conv2(x)], 1)
    assert torch.equal(seen["x"], expected)


def test_decode_known_grid_values_no_offset_no_sigmoid():
    # two levels: 2x3 at stride 8, 1x1 at stride 16; raw xy = 0.5, raw wh = log 2
    n = 2 * 3 + 1
    raw = torch.zeros(1, n, 6)
    raw[..., :2] = 0.5
    raw[..., 2:4] = torch.log(torch.tensor(2.0))
    raw[..., 4:] = 0.25
    out = decode_outputs(raw, [(2, 3), (1, 1)], [8, 16])
    cells = [(x, y) for y in range(2) for x in range(3)]  # row-major, x fastest
    expected_xy = [[(x + 0.5) * 8, (y + 0.5) * 8] for x, y in cells] + [[0.5 * 16, 0.5 * 16]]
    assert out[0, :, :2].tolist() == expected_xy
    assert torch.allclose(out[0, :, 2:4], torch.tensor([[16.0, 16.0]] * 6 + [[32.0, 32.0]]))
    assert torch.equal(out[..., 4:], raw[..., 4:])
    # raw 0 lands on the cell's top-left corner
    assert decode_outputs(torch.zeros(1, 6, 5), [(2, 3)], [8])[0, 4, :2].tolist() == [8.0, 8.0]


def test_head_channel_order_and_eval_sigmoid():
    model = build_model("yolox-nano", num_classes=3).eval()
    model.head.decode_in_inference = False
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        feats = model.backbone(x)
        levels = model.head.forward_levels(feats)
        out = model.head(feats)
        reg = model.head.reg_preds[0](model.head.reg_convs[0](model.head.stems[0](feats[0])))
    assert levels[0].shape[1] == 8
    assert torch.allclose(levels[0][:, :4], reg)
    first = levels[0].flatten(2).permute(0, 2, 1)
    assert torch.allclose(out[:, : first.shape[1], :4], first[..., :4])
    assert torch.allclose(out[:, : first.shape[1], 4:], first[..., 4:].sigmoid())


def test_training_mode_returns_raw_levels():
    model = build_model("yolox-nano", num_classes=2).train()
    levels = model(torch.rand(2, 3, 64, 64) * 255)
    assert [tuple(t.shape) for t in levels] == [(2, 7, 8, 8), (2, 7, 4, 4), (2, 7, 2, 2)]
