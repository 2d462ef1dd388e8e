"""One-line reasons from exceptions, for the one-line errors edgedet prints."""

from __future__ import annotations

__all__ = ["first_line", "ort_detail"]


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def ort_detail(line: str) -> str:
    """``line`` without ONNX Runtime's ``[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : `` prefix."""
    return line.split(" : ")[-1] if line.startswith("[ONNXRuntimeError]") else line
