"""Training: SimOTA assignment, YOLOX losses, schedule, EMA and the trainer."""

from .trainer import TrainConfig, TrainError, train

__all__ = ["TrainConfig", "TrainError", "train"]
