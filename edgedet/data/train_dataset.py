"""The training view of a COCO-format dataset: augmented, letterboxed, padded targets."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from edgedet.runtime.letterbox import letterbox

from .augment import AugmentConfig, augment_hsv, filter_boxes, hflip, mixup, mosaic
from .coco import CocoDetection

__all__ = ["TrainDataset", "MAX_LABELS"]

MAX_LABELS = 120


class TrainDataset(Dataset):
    """Samples for training: ``(image float32 [3, H, W] BGR 0..255, targets [MAX_LABELS, 5])``
    with target rows ``(class, cx, cy, w, h)`` in input pixels, zero-padded.

    Each sample is a pure function of (seed, epoch, index); call ``set_epoch`` before each
    epoch (the DataLoader re-sends the dataset to its workers every epoch).
    """

    def __init__(self, coco: CocoDetection, input_size: Tuple[int, int], cfg: AugmentConfig, seed: int = 0) -> None:
        self.coco = coco
        self.input_size = tuple(input_size)
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0
        self.mosaic_enabled = True

    def set_epoch(self, epoch: int, mosaic_enabled: bool = True) -> None:
        self.epoch = epoch
        self.mosaic_enabled = mosaic_enabled

    def __len__(self) -> int:
        return len(self.coco)

    def sample(self, index: int):
        """(image HxWx3 uint8, boxes x1y1x2y2, labels) after augmentation, before padding."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        cfg, size = self.cfg, self.input_size
        if self.mosaic_enabled and rng.random() < cfg.mosaic_prob:
            others = rng.integers(0, len(self.coco), 3).tolist()
            image, boxes, labels = mosaic(self.coco.load, [index] + others, rng, size, cfg)
            if cfg.enable_mixup and rng.random() < cfg.mixup_prob:
                image, boxes, labels = mixup((image, boxes, labels), self.coco.load(int(rng.integers(len(self.coco)))), rng, cfg)
        else:
            image, boxes, labels = self.coco.load(index)
        if self.mosaic_enabled and rng.random() < cfg.hsv_prob:
            augment_hsv(image, rng)
        if rng.random() < cfg.flip_prob:
            image, boxes = hflip(image, boxes)
        canvas, r = letterbox(image, size)
        boxes, labels = filter_boxes(boxes * r, labels, size)
        return canvas, boxes, labels

    def __getitem__(self, index: int):
        canvas, boxes, labels = self.sample(index)
        targets = np.zeros((MAX_LABELS, 5), dtype=np.float32)
        n = min(len(boxes), MAX_LABELS)
        if n:
            b = boxes[:n]
            targets[:n, 0] = labels[:n]
            targets[:n, 1] = (b[:, 0] + b[:, 2]) / 2
            targets[:n, 2] = (b[:, 1] + b[:, 3]) / 2
            targets[:n, 3] = b[:, 2] - b[:, 0]
            targets[:n, 4] = b[:, 3] - b[:, 1]
        image = torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1))).float()
        return image, torch.from_numpy(targets)
