"""Loading official YOLOX checkpoints (and edgedet's own) into our models, safely."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from edgedet.runtime.errors import first_line

__all__ = ["CheckpointError", "LoadResult", "read_checkpoint", "load_checkpoint", "guess_model_name", "num_classes_of"]

log = logging.getLogger(__name__)

_CLASS_PRED_PREFIX = "head.cls_preds."


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with a message that says why."""


@dataclass
class LoadResult:
    """What ``load_checkpoint`` did."""

    path: str
    skipped_keys: List[str] = field(default_factory=list)  # left at their initial values
    checkpoint_num_classes: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)  # the file's other top-level entries

    @property
    def class_predictions_reinitialised(self) -> bool:
        return bool(self.skipped_keys)


def read_checkpoint(path: Union[str, Path]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a checkpoint without executing code from it.

    Accepts the official layout ``{"model": state_dict, ...}`` and a bare state dict.
    Returns ``(state_dict, extra)`` where ``extra`` holds the other top-level entries
    (``start_epoch``, ``class_names``, ...).

    Raises CheckpointError for a missing file, a file that is not a checkpoint, or one
    that would need arbitrary unpickling (``weights_only=True`` refuses it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: it holds Python objects that only arbitrary unpickling "
            f"could restore, and edgedet never executes code from a checkpoint ({first_line(e)})"
        ) from e
    except Exception as e:  # torch raises many types on a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first_line(e)})") from e
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        state_dict, extra = dict(obj["model"]), {k: v for k, v in obj.items() if k != "model"}
    elif isinstance(obj, Mapping):
        state_dict, extra = dict(obj), {}
    else:
        raise CheckpointError(
            f"{path}: expected a dict {{'model': state_dict, ...}} or a bare state dict, got {type(obj).__name__}"
        )
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if not state_dict or bad:
        raise CheckpointError(
            f"{path}: not a model state dict"
            + (f" (entry {bad[0]!r} is a {type(state_dict[bad[0]]).__name__}, not a tensor)" if bad else " (it is empty)")
        )
    # NaN or Inf weights make every output NaN, which later compares equal to itself in no check
    # and gives zero detections everywhere: refuse them here, where the cause is known.
    broken = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"{path}: {len(broken)} tensor(s) hold NaN or Inf values, first {broken[0]!r}; "
                              f"the weights are corrupt (a diverged training run?)")
    return state_dict, extra


def _shapes(state: Mapping[str, Any]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def num_classes_of(state: Mapping[str, torch.Tensor]) -> Optional[int]:
    """Class count of a YOLOX state dict (rows of its first class-prediction conv), or None."""
    weight = state.get(_CLASS_PRED_PREFIX + "0.weight")
    return int(weight.shape[0]) if weight is not None else None


def guess_model_name(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Which zoo size a state dict has the layout of (class count ignored), or None."""
    from .zoo import ZOO, build_model

    wanted = {k: s for k, s in _shapes(state_dict).items() if not k.startswith(_CLASS_PRED_PREFIX)}
    num_classes = num_classes_of(state_dict) or 80
    for name in ZOO:
        with torch.device("meta"):
            candidate = build_model(name, num_classes=num_classes)
        shapes = {k: s for k, s in _shapes(candidate.state_dict()).items() if not k.startswith(_CLASS_PRED_PREFIX)}
        if shapes == wanted:
            return name
    return None


def load_checkpoint(model: nn.Module, path: Union[str, Path], strict: bool = True) -> LoadResult:
    """Load a checkpoint file into ``model``.

    With ``strict`` (the default) every key and shape must match, with one exception: when
    only the class count differs (fine-tuning COCO weights to other classes), everything
    but ``head.cls_preds.*`` is loaded, the class predictions keep their initial values,
    and a warning says so. Any other mismatch raises CheckpointError naming the size the
    file looks like. With ``strict=False``, mismatching keys are skipped and reported.
    """
    state_dict, extra = read_checkpoint(path)
    own = _shapes(model.state_dict())
    theirs = _shapes(state_dict)
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    mismatched = sorted(k for k in set(own) & set(theirs) if own[k] != theirs[k])
    result = LoadResult(str(path), checkpoint_num_classes=num_classes_of(state_dict), extra=extra)

    only_classes = (
        not missing and not unexpected and mismatched and all(k.startswith(_CLASS_PRED_PREFIX) for k in mismatched)
    )
    if missing or unexpected or mismatched:
        if only_classes or not strict:
            skip = set(mismatched) | set(unexpected)
            model.load_state_dict({k: v for k, v in state_dict.items() if k not in skip}, strict=False)
            result.skipped_keys = sorted(skip | set(missing))
            if only_classes:
                ours = num_classes_of(model.state_dict())
                log.warning(
                    "%s: checkpoint has %s classes, the model %s: loaded everything except the "
                    "class predictions (head.cls_preds), which stay newly initialised",
                    path, result.checkpoint_num_classes, ours,
                )
            else:
                log.warning("%s: loaded non-strictly, skipped %d keys", path, len(result.skipped_keys))
            return result
        looks_like = guess_model_name(state_dict)
        expected = getattr(getattr(model, "spec", None), "name", "this model")
        what = f"it looks like {looks_like}" if looks_like else "it matches no known YOLOX size"
        detail = (missing or unexpected or mismatched)[0]
        raise CheckpointError(
            f"{path}: checkpoint does not fit {expected} ({what}; {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(mismatched)} mismatched keys, e.g. {detail!r})"
        )
    model.load_state_dict(state_dict, strict=True)
    return result
