"""edgedet: YOLOX detectors from PyTorch to the edge.

Importing ``edgedet`` loads nothing heavy: the runtime lives in ``edgedet.runtime`` (numpy,
OpenCV, onnxruntime) and the PyTorch models in ``edgedet.models``.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "demo_checkpoint"]


def demo_checkpoint() -> str:
    """Path of the shipped demo checkpoint (yolox-nano trained on edgedet's synthetic set)."""
    from pathlib import Path

    path = Path(__file__).parent / "assets" / "demo_yolox_nano.pth"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the demo checkpoint is not in this installation")
    return str(path)
