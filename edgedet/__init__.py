"""edgedet: YOLOX detectors from PyTorch to the edge.

Importing ``edgedet`` loads nothing heavy: the runtime lives in ``edgedet.runtime`` (numpy,
OpenCV, onnxruntime) and the PyTorch models in ``edgedet.models``.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Detector", "Detections", "demo_checkpoint", "shipped_checkpoints", "example_images"]


def __getattr__(name: str):
    # ``from edgedet import Detector`` loads the runtime (and onnxruntime) only when asked for.
    if name in ("Detector", "Detections"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'edgedet' has no attribute {name!r}")


def shipped_checkpoints() -> dict:
    """``{model name: path}`` of the trained checkpoints shipped in the package
    (``assets/demo_<model>.pth``, e.g. ``demo_yolox_nano.pth``)."""
    from pathlib import Path

    assets = Path(__file__).parent / "assets"
    return {p.stem[len("demo_"):].replace("_", "-"): str(p) for p in sorted(assets.glob("demo_yolox_*.pth"))}


def demo_checkpoint(model_name: str = "yolox-nano") -> str:
    """Path of the shipped checkpoint of ``model_name`` (trained on edgedet's synthetic set), or a
    FileNotFoundError naming the sizes that have one."""
    name = model_name.strip().lower().replace("_", "-")
    name = name if name.startswith("yolox-") else "yolox-" + name
    shipped = shipped_checkpoints()
    if name not in shipped:
        have = ", ".join(shipped) or "none"
        raise FileNotFoundError(f"no shipped checkpoint for {name} in this installation (shipped: {have})")
    return shipped[name]


def example_images() -> str:
    """Folder of the example images shipped in the package (what ``edgedet demo`` and
    ``edgedet bench --end-to-end`` use by default)."""
    from pathlib import Path

    path = Path(__file__).parent / "assets" / "images"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: the example images are not in this installation")
    return str(path)
