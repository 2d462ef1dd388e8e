"""The runtime must import and run where torch is not installed."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Makes `import torch` (and anything under it) fail, as on an edge device.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed (blocked by the test)")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_runtime_detects_without_torch(exported, sample_images, tmp_path):
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), sample_images[0])
    code = """
import json, sys, cv2
from edgedet.runtime import Detector
det = Detector(sys.argv[1], threads=1)(cv2.imread(sys.argv[2]))
loaded = "torch" in sys.modules
try:
    import torch
    blocked = False
except ImportError:
    blocked = True
print(json.dumps({"n": len(det), "torch_loaded": loaded, "torch_blocked": blocked}))
"""
    result = _run(code, str(exported["decoded"]), str(image))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # the blocker held (so a torch import anywhere on the way would have failed the run), and nothing tried one
    assert out == {"n": out["n"], "torch_loaded": False, "torch_blocked": True} and out["n"] > 0


CLI_WITHOUT_TORCH = """
import sys
from edgedet.cli import main
sys.argv = ["edgedet", *sys.argv[1:]]
try:
    main()
finally:
    assert "torch" not in sys.modules, "torch was imported"
"""


def test_infer_command_without_torch(exported, sample_images, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(sample_images[:3]):
        cv2.imwrite(str(folder / f"{i}.jpg"), img)
    result = _run(CLI_WITHOUT_TORCH, "infer", str(exported["decoded"]), str(folder), "-o", str(tmp_path / "out"),
                  "--no-save-images")
    assert result.returncode == 0, result.stderr
    assert "3 images done, 0 failed" in result.stdout


def test_bench_command_without_torch(exported):
    result = _run(CLI_WITHOUT_TORCH, "bench", str(exported["decoded"]), "--iters", "3", "--warmup", "0", "--end-to-end")
    assert result.returncode == 0, result.stderr
    assert "matmul peak" in result.stdout


# The runtime-only install ([cpu] or [gpu]): no torch, onnx, onnxscript, pycocotools or matplotlib.
BLOCK_TOOLKIT = BLOCK_TORCH.replace('name == "torch" or name.startswith("torch.")',
                                    'name.split(".")[0] in ("torch", "onnx", "onnxscript", "pycocotools", "matplotlib")')


def _run_runtime_only(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TOOLKIT + CLI_WITHOUT_TORCH, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, needs", [
    (["export", "-m", "yolox-nano"], "torch, onnx, onnxscript"),
    (["quantize", "README.md", "--calib", "."], "onnx"),
    (["train", "--data", "."], "torch, pycocotools"),
    (["eval", "README.md", "--data", "."], "pycocotools, torch"),
    (["demo"], "torch, onnx, onnxscript, pycocotools"),
    (["matrix", "--out", "report"], "torch, onnx, onnxscript, pycocotools, matplotlib"),
], ids=["export", "quantize", "train", "eval", "demo", "matrix"])
def test_toolkit_commands_fail_with_one_line_on_the_runtime_install(args, needs):
    result = _run_runtime_only(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"Error: edgedet {args[0]} needs {needs}, which this installation lacks (the runtime-only "
                     'install); add the toolkit: pip install "edgedet[full]" (or "edgedet[toolkit,gpu]" with '
                     "onnxruntime-gpu)"]


def test_info_without_the_toolkit_shows_the_zoo_and_the_providers():
    result = _run_runtime_only("info")
    assert result.returncode == 0, result.stderr
    assert "yolox-nano   0.33   0.25        yes  416x416     912,159    1.08         1.05" in result.stdout
    assert "from the zoo table (torch is not installed)" in result.stdout
    assert any(line.split()[:2] == ["CPUExecutionProvider", "yes"] for line in result.stdout.splitlines())


def test_ray_engine_without_ray_is_one_line(exported, tmp_path):
    blocker = BLOCK_TORCH.replace('name == "torch" or name.startswith("torch.")',
                                  'name.split(".")[0] in ("torch", "ray")')
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), cv2.imread(str(ROOT / "edgedet" / "assets" / "images" / "shapes_0.jpg")))
    result = subprocess.run([sys.executable, "-c", blocker + CLI_WITHOUT_TORCH, "infer", str(exported["decoded"]),
                             str(folder), "--engine", "ray", "-o", str(tmp_path / "o")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == 'Error: --engine ray needs Ray: pip install "edgedet[ray]"'
