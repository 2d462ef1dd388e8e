"""YOLOX losses over the head's raw per-level outputs, with SimOTA targets.

Loss = 5 * IoU loss (1 - IoU^2) + objectness BCE (all anchors) + class BCE (fg anchors,
target onehot * IoU) + L1 on raw regressions (when ``use_l1``, the last epochs), each summed
and divided by the number of foreground anchors (at least 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

from edgedet.models.decode import make_grids

from .simota import simota_assign

__all__ = ["LossParts", "iou_loss", "yolox_loss"]

IOU_LOSS_WEIGHT = 5.0


@dataclass
class LossParts:
    total: torch.Tensor
    iou: torch.Tensor
    obj: torch.Tensor
    cls: torch.Tensor
    l1: torch.Tensor
    num_fg: float

    def as_floats(self) -> Dict[str, float]:
        return {"loss": float(self.total.detach()), "iou": float(self.iou.detach()), "obj": float(self.obj.detach()),
                "cls": float(self.cls.detach()),
                "l1": float(self.l1.detach()), "num_fg": self.num_fg}


def iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - IoU^2 of matched boxes (cx cy w h) [K, 4] -> [K]."""
    tl = torch.max(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    br = torch.min(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    inter = (br - tl).clamp(min=0).prod(1)
    union = pred[:, 2:].prod(1) + target[:, 2:].prod(1) - inter
    iou = inter / (union + 1e-16)
    return 1 - iou ** 2


def yolox_loss(levels: List[torch.Tensor], targets: torch.Tensor, strides: Sequence[int], use_l1: bool = False) -> LossParts:
    """Loss of a batch.

    Args:
        levels: the head's training output, per level Tensor[B, 5 + C, H, W] (reg, obj logit, cls logits).
        targets (Tensor[B, T, 5]): rows (class, cx, cy, w, h) in input pixels, zero rows are padding.
    """
    feature_sizes = [tuple(level.shape[-2:]) for level in levels]
    flat = torch.cat([level.flatten(2) for level in levels], 2).permute(0, 2, 1).float()  # [B, N, 5+C]
    grids, stride_map = make_grids(feature_sizes, strides, flat.dtype, flat.device)
    grids, stride_map = grids[0], stride_map[0, :, 0]
    raw_reg = flat[..., :4]
    pred_boxes = torch.cat([(raw_reg[..., :2] + grids) * stride_map[:, None], torch.exp(raw_reg[..., 2:4]) * stride_map[:, None]], -1)
    obj_logits, cls_logits = flat[..., 4:5], flat[..., 5:]
    num_classes = cls_logits.shape[-1]

    obj_targets, fg_masks, cls_t, reg_t, l1_t = [], [], [], [], []
    num_fg = 0.0
    for b in range(flat.shape[0]):
        gts = targets[b][(targets[b, :, 3] > 0) & (targets[b, :, 4] > 0)]
        if len(gts) == 0:
            fg = torch.zeros(flat.shape[1], dtype=torch.bool, device=flat.device)
            cls_t.append(flat.new_zeros((0, num_classes)))
            reg_t.append(flat.new_zeros((0, 4)))
            l1_t.append(flat.new_zeros((0, 4)))
        else:
            a = simota_assign(gts[:, 1:5], gts[:, 0], pred_boxes[b].detach(), cls_logits[b].detach(),
                              obj_logits[b].detach(), grids, stride_map)
            fg = a.fg_mask
            num_fg += a.num_fg
            matched = gts[a.matched_gt]
            cls_t.append(F.one_hot(matched[:, 0].long(), num_classes).float() * a.matched_iou[:, None])
            reg_t.append(matched[:, 1:5])
            s = stride_map[fg][:, None]
            g = grids[fg]
            l1_t.append(torch.cat([matched[:, 1:3] / s - g, torch.log(matched[:, 3:5] / s + 1e-8)], 1))
        fg_masks.append(fg)
        obj_targets.append(fg.float()[:, None])
    fg_all = torch.cat(fg_masks)
    denom = max(num_fg, 1.0)
    boxes_fg = pred_boxes.reshape(-1, 4)[fg_all]
    loss_iou = iou_loss(boxes_fg, torch.cat(reg_t)).sum() / denom
    loss_obj = F.binary_cross_entropy_with_logits(obj_logits.reshape(-1, 1), torch.cat(obj_targets), reduction="sum") / denom
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits.reshape(-1, num_classes)[fg_all], torch.cat(cls_t), reduction="sum") / denom
    if use_l1:
        loss_l1 = F.l1_loss(raw_reg.reshape(-1, 4)[fg_all], torch.cat(l1_t), reduction="sum") / denom
    else:
        loss_l1 = flat.new_zeros(())
    total = IOU_LOSS_WEIGHT * loss_iou + loss_obj + loss_cls + loss_l1
    return LossParts(total, loss_iou, loss_obj, loss_cls, loss_l1, num_fg)
