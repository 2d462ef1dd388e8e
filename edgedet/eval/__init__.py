"""COCO mAP evaluation of PyTorch models and ONNX files."""

from .coco_eval import EVAL_CONF, EVAL_IOU, Metrics, evaluate_predictions, evaluate_detector, evaluate_torch

__all__ = ["Metrics", "evaluate_predictions", "evaluate_detector", "evaluate_torch", "EVAL_CONF", "EVAL_IOU"]
