"""Imports point down the layers of docs/architecture.md, read from the source (no imports run)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# installed module prefix -> source folder or file
SOURCES = {"edgedet.exporters": ROOT / "exporters", "edgedet.calibration": ROOT / "calibration", "edgedet": ROOT / "edgedet"}

LAYERS = [  # (layer, module prefixes)
    (1, ("edgedet.runtime",)),
    (2, ("edgedet.models", "edgedet.data", "edgedet.eval", "edgedet.zoo", "edgedet.onnx_graph")),
    (3, ("edgedet.train", "edgedet.exporters", "edgedet.calibration")),
    (4, ("edgedet.workflows",)),
    (5, ("edgedet.cli", "edgedet.cli_types", "edgedet.cli_progress")),
]
# Tools of layer 3 stand side by side: none reaches into another.
SIBLINGS = ("edgedet.train", "edgedet.exporters", "edgedet.calibration")


def _layer_of(module: str):
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return layer, prefix
    return None, None  # edgedet itself, edgedet.tables: helpers every layer may use


def _modules():
    for prefix, base in SOURCES.items():
        for path in sorted(base.rglob("*.py")):
            if prefix == "edgedet" and path.parent == ROOT / "edgedet" / "assets":
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            yield ".".join([prefix, *parts]), path, is_package


def _imports(module: str, path: Path, is_package: bool):
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # "from edgedet import exporters" names a module too
                yield f"{target}.{alias.name}", node.lineno


def _violations():
    found = []
    for module, path, is_package in _modules():
        layer, prefix = _layer_of(module)
        if module.endswith(".__main__"):  # `python -m` entry points are command lines: the CLI layer
            layer, prefix = 5, "edgedet.cli"
        if layer is None:
            continue
        seen_lines = set()
        for target, line in _imports(module, path, is_package):
            if line in seen_lines:  # one finding per import statement
                continue
            if target.startswith("exporters") or target.startswith("calibration"):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}: use edgedet.{target}")
                seen_lines.add(line)
                continue
            if not target.startswith("edgedet"):
                continue
            t_layer, t_prefix = _layer_of(target)
            if t_layer is None or t_prefix == prefix:
                continue
            if t_layer > layer or (t_layer == layer and prefix in SIBLINGS and t_prefix in SIBLINGS):
                found.append(f"{path.relative_to(ROOT)}:{line} (layer {layer}) imports {target} (layer {t_layer})")
                seen_lines.add(line)
    return found


def test_imports_point_down_only():
    assert _violations() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "calibration"
    fake.mkdir()
    (fake / "bad.py").write_text("from edgedet.exporters.fp16 import convert_fp16\nfrom ..workflows import demo\n")
    monkeypatch.setitem(SOURCES, "edgedet.calibration", fake)
    monkeypatch.setattr("tests.test_layering.ROOT", tmp_path)
    monkeypatch.setitem(SOURCES, "edgedet", tmp_path / "none")
    monkeypatch.setitem(SOURCES, "edgedet.exporters", tmp_path / "none")
    found = _violations()
    assert len(found) == 2 and "edgedet.exporters.fp16" in found[0] and "edgedet.workflows" in found[1]


@pytest.mark.parametrize("module", ["edgedet.runtime.infer", "edgedet.workflows.demo", "edgedet.calibration.quantize"])
def test_modules_are_found(module):
    assert module in {m for m, _, _ in _modules()}
