import pytest
from click.testing import CliRunner

from edgedet.cli import cli


@pytest.mark.slow
def test_export_command_writes_file(tmp_path):
    out = tmp_path / "n.onnx"
    result = CliRunner().invoke(cli, ["export", "-m", "yolox-nano", "--input-size", "64x96", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" in result.output and "parity (fp32)" in result.output
    assert out.is_file() and f"wrote {out}" in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--input-size", "100"], 2, "height and width must be positive multiples of 32"),
        (["--input-size", "abc"], 2, "is not a size: use N (square) or HxW"),
        (["-m", "yolox-q"], 2, "unknown model 'yolox-q'; known models: yolox-nano"),
        (["--ckpt", "/nonexistent/x.pth"], 1, "/nonexistent/x.pth: no such checkpoint file"),
    ],
    ids=["size-not-multiple", "size-garbage", "unknown-model", "missing-ckpt"],
)
def test_export_errors(tmp_path, args, code, message):
    result = CliRunner().invoke(cli, ["export", *args, "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == code
    assert message in result.output
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_all_sizes_small(tmp_path):
    result = CliRunner().invoke(cli, ["export", "--all-sizes", "--input-size", "32", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    rows = [line.split() for line in lines[header + 2:]]
    assert [r[0] for r in rows] == ["yolox-nano", "yolox-tiny", "yolox-s", "yolox-m", "yolox-l", "yolox-x"]
    assert all(r[-1] == "ok" and float(r[5]) < 1e-4 for r in rows)
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == sorted(f"{r[0]}.onnx" for r in rows)


@pytest.mark.slow
def test_ckpt_demo_is_the_shipped_checkpoint_even_beside_a_demo_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # click.Path(dir_okay=False) used to refuse --ckpt demo here
    result = CliRunner().invoke(cli, ["export", "-m", "yolox-nano", "--ckpt", "demo", "--input-size", "64",
                                      "-o", str(tmp_path / "n.onnx")])
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" not in result.output and (tmp_path / "n.onnx").is_file()


def test_eval_of_an_onnx_model_refuses_pth_only_options(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(cli, ["eval", str(model), "--data", str(tmp_path / "data"), "--input-size", "320"])
    assert result.exit_code == 2
    assert "--input-size and -m/--model are for a .pth checkpoint" in result.output


def test_an_opset_the_exporter_cannot_make_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["export", "-m", "yolox-nano", "--opset", "99", "--input-size", "64",
                                      "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1 and "opset 99 is not supported: use 18 to" in result.output
    assert not (tmp_path / "x.onnx").exists()
