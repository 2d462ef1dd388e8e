"""The edgedet runtime: numpy, OpenCV and onnxruntime only (never torch).

    from edgedet.runtime import Detector
    detector = Detector("yolox_nano.onnx")
    detections = detector(cv2.imread("street.jpg"))
"""

from .detections import Detections
from .detector import Detector
from .metadata import MetadataError, ModelMetadata
from .providers import CPUOptions, CUDAOptions, ProviderError, TensorRTOptions

__all__ = [
    "Detector",
    "Detections",
    "ModelMetadata",
    "MetadataError",
    "ProviderError",
    "TensorRTOptions",
    "CUDAOptions",
    "CPUOptions",
]
