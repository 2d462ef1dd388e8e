import math

import torch

from edgedet.train.loss import iou_loss, yolox_loss
from edgedet.train.simota import pairwise_iou_cxcywh, simota_assign


def _anchors(h, w, stride):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], 1).float(), torch.full((h * w,), float(stride))


def test_candidates_are_in_box_or_within_2_5_strides_and_k_follows_ious():
    grids, strides = _anchors(10, 10, 8)  # anchor centres at 4, 12, ..., 76
    gt = torch.tensor([[43.0, 41.0, 16.0, 16.0]])  # off-grid, so no two anchors tie
    centres = (grids + 0.5) * strides[:, None]
    # predictions: each anchor predicts a 16x16 box at its own centre
    preds = torch.cat([centres, torch.full((100, 2), 16.0)], 1)
    cls = torch.zeros(100, 2)
    obj = torch.zeros(100, 1)
    a = simota_assign(gt, torch.tensor([1]), preds, cls, obj, grids, strides)
    fg_centres = centres[a.fg_mask]
    # all assigned anchors are within 2.5 strides (20 px) of the GT centre
    assert ((fg_centres - gt[0, :2]).abs() < 20).all()
    ious = pairwise_iou_cxcywh(gt, preds)[0]
    expected_k = max(int(torch.topk(ious, 10).values.sum()), 1)
    assert a.num_fg == expected_k
    # the chosen anchors are the ones whose boxes overlap the GT best
    assert set(torch.topk(ious, expected_k).indices.tolist()) == set(a.fg_mask.nonzero().squeeze(1).tolist())
    torch.testing.assert_close(a.matched_iou, ious[a.fg_mask])


def test_anchor_claimed_by_two_gts_keeps_the_cheaper():
    grids, strides = _anchors(4, 4, 8)
    centres = (grids + 0.5) * strides[:, None]
    preds = torch.cat([centres, torch.full((16, 2), 8.0)], 1)
    gts = torch.tensor([[12.0, 12.0, 8.0, 8.0], [13.0, 12.0, 8.0, 8.0]])  # nearly the same box
    a = simota_assign(gts, torch.tensor([0, 1]), preds, torch.zeros(16, 2), torch.zeros(16, 1), grids, strides)
    assert a.num_fg == len(a.matched_gt)  # one GT per anchor


def test_iou_loss_values():
    box = torch.tensor([[10.0, 10.0, 4.0, 4.0]])
    assert float(iou_loss(box, box)) == 0.0
    half = torch.tensor([[12.0, 10.0, 4.0, 4.0]])  # IoU = 8 / 24 = 1/3
    assert math.isclose(float(iou_loss(box, half)), 1 - (1 / 3) ** 2, rel_tol=1e-6)


def test_yolox_loss_on_known_input():
    # one level 2x2 at stride 8, 1 class; raw zeros, logits 0
    levels = [torch.zeros(1, 6, 2, 2, requires_grad=True)]
    targets = torch.zeros(1, 3, 5)
    targets[0, 0] = torch.tensor([0, 4.0, 4.0, 8.0, 8.0])  # exactly the box anchor (0,0) predicts: cx=(0+0)*8...
    parts = yolox_loss(levels, targets, [8])
    assert parts.num_fg >= 1
    # obj BCE at logit 0 is log 2 per anchor: 4 anchors over num_fg
    assert math.isclose(float(parts.obj.detach()), 4 * math.log(2) / parts.num_fg, rel_tol=1e-5)
    parts.total.backward()
    assert levels[0].grad is not None and levels[0].grad.abs().sum() > 0
