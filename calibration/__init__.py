"""INT8 quantization: calibration sets and ONNX Runtime static QDQ quantization."""

from .calibration_set import CalibrationError, CalibrationSet
from .quantize import QuantizeError, QuantizeResult, quantize_model

__all__ = ["CalibrationSet", "CalibrationError", "quantize_model", "QuantizeResult", "QuantizeError"]
