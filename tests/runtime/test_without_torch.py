"""The runtime must import and run where torch is not installed."""

import json
import subprocess
import sys
from pathlib import Path

import cv2

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
try:
    import torch
    print("TORCH IMPORTED")
except ImportError:
    pass
print(json.dumps({"n": len(det), "torch_loaded": "torch" in sys.modules}))
"""
    result = _run(code, str(exported["decoded"]), str(image))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"n": out["n"], "torch_loaded": False} and out["n"] > 0
    assert "TORCH IMPORTED" not in result.stdout


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
