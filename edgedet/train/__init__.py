"""Training: SimOTA assignment, YOLOX losses, schedule, EMA and the trainer."""

from .progress import EpochEval, TrainProgress, TrainStep
from .trainer import TrainConfig, TrainError, train

__all__ = ["TrainConfig", "TrainError", "train", "TrainStep", "EpochEval", "TrainProgress"]
