"""The wheel as users install it: non-editable, run from a folder outside the checkout."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True)
    return next(out.glob("edgedet-*.whl"))


def test_wheel_holds_only_edgedet_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"edgedet", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "edgedet/exporters/export.py" in names and "edgedet/calibration/quantize.py" in names
    assert "edgedet/assets/demo_yolox_nano.pth" in names and "edgedet/assets/probe.onnx" in names
    assert sum(n.startswith("edgedet/assets/images/") and n.endswith(".jpg") for n in names) >= 1
    # every package of the source tree is in the wheel (pyproject lists them one by one)
    for init in [*ROOT.glob("edgedet/**/__init__.py"), ROOT / "exporters" / "__init__.py",
                 ROOT / "calibration" / "__init__.py"]:
        relative = init.relative_to(ROOT).as_posix()
        installed = relative if relative.startswith("edgedet/") else "edgedet/" + relative
        assert installed in names, f"{relative} is not in the wheel: add its package to pyproject.toml"


@pytest.mark.slow
def test_installed_wheel_runs_demo_and_bench_outside_the_checkout(wheel, tmp_path):
    # A fresh environment that sees the wheel's edgedet first and this environment's dependencies
    # after it (a path in a .pth file; the editable install's finder is not loaded from there).
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    run_cli = "import sys; from edgedet.cli import main; sys.argv[0] = 'edgedet'; main()"
    where = subprocess.run([sys.executable, "-S", "-c", "import edgedet, edgedet.exporters; print(edgedet.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(target)

    demo = subprocess.run([sys.executable, "-S", "-c", run_cli, "demo", "-o", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "demo" / "infer" / "predictions.jsonl").is_file()
    bench = subprocess.run([sys.executable, "-S", "-c", run_cli, "bench", "demo/yolox-nano.onnx", "--end-to-end",
                            "--iters", "2", "--warmup", "1"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert "e2e img/s" in bench.stdout
