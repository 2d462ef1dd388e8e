"""YOLOX in PyTorch: the size zoo, checkpoint loading, fusion and cost counting."""

from .blocks import BaseConv, CSPLayer, DWConv, Focus, SPPBottleneck
from .checkpoint import CheckpointError, LoadResult, load_checkpoint, read_checkpoint
from .decode import decode_outputs
from .flops import ModelCost, count_cost, zoo_cost
from .fuse import fuse_model
from .head import YOLOXHead
from .pafpn import YOLOPAFPN
from .yolox import YOLOX
from .zoo import ZOO, ModelSpec, build_model, get_spec, model_names

__all__ = [
    "YOLOX",
    "YOLOPAFPN",
    "YOLOXHead",
    "BaseConv",
    "DWConv",
    "Focus",
    "CSPLayer",
    "SPPBottleneck",
    "ZOO",
    "ModelSpec",
    "build_model",
    "get_spec",
    "model_names",
    "load_checkpoint",
    "read_checkpoint",
    "CheckpointError",
    "LoadResult",
    "fuse_model",
    "decode_outputs",
    "ModelCost",
    "count_cost",
    "zoo_cost",
]
