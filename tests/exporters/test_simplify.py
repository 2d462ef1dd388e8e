import onnx
import pytest
from onnx import TensorProto, helper

from edgedet.exporters import simplify as S


def _model():
    # x -> Identity -> Identity -> y : onnxsim and onnxslim both fold the Identities
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"]), helper.make_node("Identity", ["t"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_onnxsim_runs_first():
    model, report = S.simplify(_model())
    assert report.tool == "onnxsim" and report.nodes_before == 2 and report.nodes_after < 2 and not report.note
    onnx.checker.check_model(model)


def test_onnxslim_is_the_fallback_and_says_why(monkeypatch):
    def broken(_model):
        raise RuntimeError("simulated onnxsim failure")

    monkeypatch.setattr(S, "_onnxsim", broken)
    model, report = S.simplify(_model())
    assert report.tool == "onnxslim" and "onnxsim failed: RuntimeError: simulated onnxsim failure" in report.note


def test_neither_simplifier_is_an_error(monkeypatch):
    def missing(_model):
        raise ImportError

    monkeypatch.setattr(S, "_onnxsim", missing)
    monkeypatch.setattr(S, "_onnxslim", missing)
    with pytest.raises(RuntimeError, match="onnxsim is not installed; onnxslim is not installed.*--no-simplify"):
        S.simplify(_model())
