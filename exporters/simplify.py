"""Graph simplification: onnxsim first, onnxslim when onnxsim is missing or fails."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Tuple

import onnx

from edgedet.onnx_graph import count_nodes

__all__ = ["SimplifyReport", "simplify"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimplifyReport:
    tool: str  # "onnxsim", "onnxslim" or "none"
    nodes_before: int
    nodes_after: int
    note: str = ""  # why the fallback ran, when it did


def _onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    return simplified


def _onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


def simplify(model: onnx.ModelProto) -> Tuple[onnx.ModelProto, SimplifyReport]:
    """Simplify ``model``; returns the new model and a report saying which tool ran.

    Raises RuntimeError when neither tool is installed or both fail.
    """
    before = count_nodes(model)
    errors = []
    for tool, run in (("onnxsim", _onnxsim), ("onnxslim", _onnxslim)):
        try:
            result = run(model)
        except ImportError:
            errors.append(f"{tool} is not installed")
            continue
        except Exception as e:  # both tools raise a variety of types on graphs they cannot handle
            errors.append(f"{tool} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            log.warning("%s; trying the next simplifier", errors[-1])
            continue
        return result, SimplifyReport(tool, before, count_nodes(result), "; ".join(errors))
    raise RuntimeError("could not simplify the model: " + "; ".join(errors) + " (install onnxsim or onnxslim, or pass --no-simplify)")
