"""SimOTA label assignment, as in the code that trained the released YOLOX weights (<= 0.3.0).

Candidates are anchors whose centre is inside the GT box OR within 2.5 strides of its
centre; anchors not both inside the box AND near the centre pay a 1e5 cost penalty.
Cost = class BCE on sqrt(cls * obj) + 3 * (-log IoU) + penalty. Each GT takes its k
cheapest candidates with k = int(sum of its top-10 IoUs), at least 1; an anchor claimed by
several GTs keeps the cheapest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Assignment", "pairwise_iou_cxcywh", "simota_assign"]

CENTER_RADIUS = 2.5
IOU_WEIGHT = 3.0
OUTSIDE_PENALTY = 1e5
TOPK_CANDIDATES = 10


@dataclass
class Assignment:
    fg_mask: torch.Tensor  # [N] bool, anchors that got a GT
    matched_gt: torch.Tensor  # [K] index of the GT of each fg anchor (in fg order)
    matched_iou: torch.Tensor  # [K] IoU between the fg anchor's prediction and its GT

    @property
    def num_fg(self) -> int:
        return int(self.fg_mask.sum())


def pairwise_iou_cxcywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes a [G, 4] and b [N, 4], both cx cy w h -> [G, N]."""
    a1, a2 = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b1, b2 = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return inter / union.clamp(min=1e-12)


@torch.no_grad()
def simota_assign(
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    pred_boxes: torch.Tensor,
    cls_logits: torch.Tensor,
    obj_logits: torch.Tensor,
    grids: torch.Tensor,
    strides: torch.Tensor,
) -> Assignment:
    """Assign GTs to anchors for one image.

    Args:
        gt_boxes (Tensor[G, 4]): cx cy w h, input pixels; gt_classes (Tensor[G]) indices.
        pred_boxes (Tensor[N, 4]): decoded predictions, cx cy w h.
        cls_logits (Tensor[N, C]), obj_logits (Tensor[N, 1]): before sigmoid.
        grids (Tensor[N, 2]): cell (x, y) of each anchor; strides (Tensor[N]).
    """
    n = pred_boxes.shape[0]
    g = gt_boxes.shape[0]
    centres = (grids + 0.5) * strides[:, None]  # [N, 2]
    gt_l, gt_t = gt_boxes[:, 0:1] - gt_boxes[:, 2:3] / 2, gt_boxes[:, 1:2] - gt_boxes[:, 3:4] / 2
    gt_r, gt_b = gt_boxes[:, 0:1] + gt_boxes[:, 2:3] / 2, gt_boxes[:, 1:2] + gt_boxes[:, 3:4] / 2
    cx, cy = centres[None, :, 0], centres[None, :, 1]
    in_box = (cx > gt_l) & (cx < gt_r) & (cy > gt_t) & (cy < gt_b)  # [G, N]
    radius = CENTER_RADIUS * strides[None, :]
    in_centre = ((cx - gt_boxes[:, 0:1]).abs() < radius) & ((cy - gt_boxes[:, 1:2]).abs() < radius)
    candidate = (in_box | in_centre).any(0)  # [N]
    both = (in_box & in_centre)[:, candidate]  # [G, M]

    cand_boxes = pred_boxes[candidate]
    ious = pairwise_iou_cxcywh(gt_boxes, cand_boxes)  # [G, M]
    iou_cost = -torch.log(ious + 1e-8)
    probs = (cls_logits[candidate].float().sigmoid() * obj_logits[candidate].float().sigmoid()).sqrt()  # [M, C]
    onehot = F.one_hot(gt_classes.long(), cls_logits.shape[1]).float()  # [G, C]
    cls_cost = F.binary_cross_entropy(
        probs[None].expand(g, -1, -1), onehot[:, None].expand(-1, probs.shape[0], -1), reduction="none"
    ).sum(-1)
    cost = cls_cost + IOU_WEIGHT * iou_cost + OUTSIDE_PENALTY * (~both).float()

    # dynamic k per GT from its top IoUs
    matching = torch.zeros_like(cost, dtype=torch.bool)
    top = torch.topk(ious, min(TOPK_CANDIDATES, ious.shape[1]), dim=1).values
    ks = top.sum(1).int().clamp(min=1)
    for i in range(g):
        _, idx = torch.topk(cost[i], int(min(ks[i], cost.shape[1])), largest=False)
        matching[i, idx] = True
    claimed = matching.sum(0)
    if (claimed > 1).any():  # several GTs on one anchor: the cheapest wins
        multi = claimed > 1
        best = cost[:, multi].argmin(0)
        matching[:, multi] = False
        matching[best, multi.nonzero().squeeze(1)] = True
    fg_in_cand = matching.any(0)
    matched_gt = matching[:, fg_in_cand].float().argmax(0)
    matched_iou = (matching.float() * ious).sum(0)[fg_in_cand]
    fg_mask = torch.zeros(n, dtype=torch.bool, device=pred_boxes.device)
    cand_idx = candidate.nonzero().squeeze(1)
    fg_mask[cand_idx[fg_in_cand]] = True
    return Assignment(fg_mask, matched_gt, matched_iou)
