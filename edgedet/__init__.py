"""edgedet: YOLOX detectors from PyTorch to the edge.

Importing ``edgedet`` loads nothing heavy: the runtime lives in ``edgedet.runtime`` (numpy,
OpenCV, onnxruntime) and the PyTorch models in ``edgedet.models``.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Detector", "Detections", "demo_checkpoint", "example_images"]


def __getattr__(name: str):
    # ``from edgedet import Detector`` loads the runtime (and onnxruntime) only when asked for.
    if name in ("Detector", "Detections"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'edgedet' has no attribute {name!r}")


def demo_checkpoint() -> str:
    """Path of the shipped demo checkpoint (yolox-nano trained on edgedet's synthetic set)."""
    from pathlib import Path

    path = Path(__file__).parent / "assets" / "demo_yolox_nano.pth"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the demo checkpoint is not in this installation")
    return str(path)


def example_images() -> str:
    """Folder of the example images shipped in the package (what ``edgedet demo`` and
    ``edgedet bench --end-to-end`` use by default)."""
    from pathlib import Path

    path = Path(__file__).parent / "assets" / "images"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: the example images are not in this installation")
    return str(path)
