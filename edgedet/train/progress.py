"""What a training run reports while it runs: one typed event per step and per evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Union

from edgedet.eval.coco_eval import Metrics

__all__ = ["TrainStep", "EpochEval", "TrainProgress"]


@dataclass(frozen=True)
class TrainStep:
    """One optimizer step: ``iter`` of ``iters`` in ``epoch`` of ``epochs`` (all counted from 1)."""

    epoch: int
    epochs: int
    iter: int
    iters: int
    batch: int
    lr: float
    images_per_s: float  # training steps of this epoch so far
    losses: Dict[str, float]  # loss, iou, obj, cls, l1, num_fg

    def to_record(self) -> Dict[str, float]:
        """The line of train_log.jsonl."""
        return {"epoch": self.epoch, "iter": self.iter, "iters": self.iters, "lr": self.lr,
                "images_per_s": self.images_per_s, **self.losses}

    @property
    def eta_minutes(self) -> float:
        """Minutes of training steps left at this epoch's speed (evaluations not counted)."""
        steps_left = (self.epochs - self.epoch) * self.iters + self.iters - self.iter
        return steps_left * self.batch / max(self.images_per_s, 1e-9) / 60


@dataclass(frozen=True)
class EpochEval:
    """Validation of the EMA weights after ``epoch``."""

    epoch: int
    epochs: int
    metrics: Metrics


TrainProgress = Callable[[Union[TrainStep, EpochEval]], None]
