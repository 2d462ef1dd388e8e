"""edgedet: YOLOX detectors from PyTorch to the edge.

Importing ``edgedet`` loads nothing heavy: the runtime lives in ``edgedet.runtime`` (numpy,
OpenCV, onnxruntime) and the PyTorch models in ``edgedet.models``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
