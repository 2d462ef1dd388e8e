"""torch -> ONNX export for YOLOX: wrappers, export, simplification, fp16, NMS, parity."""

from .export import ExportError, ExportResult, export_model
from .parity import ParityError, ParityReport

__all__ = ["export_model", "ExportResult", "ExportError", "ParityError", "ParityReport"]
