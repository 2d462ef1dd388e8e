import pytest
from click.testing import CliRunner

from edgedet import __version__
from edgedet.cli import cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"edgedet, version {__version__}"


def test_info_prints_zoo_with_measured_counts():
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["model", "depth", "width", "depthwise", "input", "params", "GFLOPs", "conv", "GFLOPs"]
    rows = {line.split()[0]: line.split() for line in lines[2:8]}
    assert rows["yolox-nano"][4:7] == ["416x416", "912,159", "1.08"]
    assert rows["yolox-x"][4:7] == ["640x640", "99,071,455", "281.93"]
    assert lines[8] == "counted from the models"


def test_zoo_table_facts_match_the_counted_models():
    # The torch-free zoo table stores what zoo_cost counts; GFLOPs scale with H x W.
    import pytest

    from edgedet.models.flops import zoo_cost
    from edgedet.zoo import ZOO

    for name, spec in ZOO.items():
        cost = zoo_cost(name)
        assert (spec.params, spec.gflops, spec.conv_gflops) == (cost.params, pytest.approx(cost.gflops),
                                                                pytest.approx(cost.conv_gflops))
    at_320 = zoo_cost("yolox-s", (320, 256))
    assert ZOO["yolox-s"].gflops_at((320, 256)) == (pytest.approx(at_320.gflops), pytest.approx(at_320.conv_gflops))


def test_info_rejects_an_input_size_off_the_stride():
    result = CliRunner().invoke(cli, ["info", "--input-size", "300"])
    assert result.exit_code == 2 and "300 is not a positive multiple of 32" in result.output


def test_info_input_size():
    result = CliRunner().invoke(cli, ["info", "--input-size", "320"])
    assert result.exit_code == 0
    assert "320x320" in result.output


def test_provider_option_is_checked_before_any_work(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    result = CliRunner().invoke(cli, ["bench", str(model), "--provider", "cuad"])
    assert result.exit_code == 2
    assert "Invalid value for '--provider': unknown provider 'cuad'" in result.output
    assert "Did you mean 'cuda'?" in result.output


def test_data_synth_takes_its_folder_as_argument_or_out_option(tmp_path):
    for args in (["data", "synth", str(tmp_path / "a")], ["data", "synth", "-o", str(tmp_path / "b")]):
        result = CliRunner().invoke(cli, [*args, "--train", "1", "--val", "0", "--size", "64"])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "annotations" / "train.json").is_file()
    assert (tmp_path / "b" / "annotations" / "train.json").is_file()
    result = CliRunner().invoke(cli, ["data", "synth", str(tmp_path / "c"), "-o", str(tmp_path / "d")])
    assert result.exit_code == 2 and "give the output folder once: as OUT or as -o/--out" in result.output


def test_every_option_of_every_command_has_help():
    import click

    def options(command, path=""):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from options(sub, f"{path} {name}")
        else:
            yield from ((path, p) for p in command.params if isinstance(p, click.Option))

    missing = [f"{path} {p.opts[0]}" for path, p in options(cli) if not p.help and p.name != "help"]
    assert missing == []


def _edgedet(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "from edgedet.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_broken_onnx_file_is_one_line_in_every_command(tmp_path):
    from edgedet import example_images
    from edgedet.data.synth_dataset import write_synth_dataset

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage" * 50)
    write_synth_dataset(tmp_path / "data", {"val": 2}, size=(64, 64), seed=0)
    commands = [["infer", str(broken), example_images(), "-o", str(tmp_path / "o")],
                ["bench", str(broken), "--iters", "1"],
                ["eval", str(broken), "--data", str(tmp_path / "data")],
                ["quantize", str(broken), "--calib", example_images()]]
    for args in commands:
        result = _edgedet(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "broken.onnx" in lines[0], (args, lines)
        assert "not a usable ONNX model" in lines[0] or "not an ONNX model" in lines[0]


def test_the_error_boundary_turns_the_unexpected_into_one_line(monkeypatch, capsys):
    import sys

    import pytest

    import edgedet.cli as cli_module

    def boom(*_args, **_kwargs):
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr(cli_module.cli, "main", boom)
    monkeypatch.setattr(sys, "argv", ["edgedet", "info"])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == ("Error: something nobody foresaw (RuntimeError; -v shows the traceback)\n")
    monkeypatch.setattr(sys, "argv", ["edgedet", "-v", "info"])
    with pytest.raises(RuntimeError, match="something nobody foresaw"):  # -v: the traceback
        cli_module.main()


def test_ckpt_demo_resolves_per_model():
    from edgedet import demo_checkpoint, shipped_checkpoints

    assert "yolox-nano" in shipped_checkpoints() and demo_checkpoint("nano") == shipped_checkpoints()["yolox-nano"]
    assert demo_checkpoint("yolox-tiny") == shipped_checkpoints()["yolox-tiny"]
    result = CliRunner().invoke(cli, ["export", "-m", "yolox-x", "--ckpt", "demo", "-o", "x.onnx"])
    assert result.exit_code == 2
    expected = ("Invalid value for --ckpt: no shipped checkpoint for yolox-x in this installation "
                "(shipped: yolox-nano, yolox-tiny")
    assert expected in result.output


@pytest.mark.parametrize("args, message", [
    (["build-engine", "{model}", "--batch-profile", "1,4"], "use MIN,OPT,MAX"),
    (["build-engine", "{model}", "--batch-profile", "4,2,8"], "need 1 <= MIN <= OPT <= MAX"),
    (["matrix", "--ckpt", "nano", "-o", "{out}"], "use SIZE=PATH"),
    (["matrix", "--ckpt", "=x.pth", "-o", "{out}"], "use SIZE=PATH"),
])
def test_structured_options_are_parsed_by_their_types(tmp_path, args, message):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not used")
    args = [a.format(model=model, out=tmp_path / "out") for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_structured_option_values():
    from edgedet.cli_types import BATCH_PROFILE, SIZE_PATH

    assert BATCH_PROFILE.convert(" 1, 4 ,8", None, None) == (1, 4, 8)
    assert SIZE_PATH.convert("yolox-tiny=runs/t/best.pth", None, None) == ("tiny", "runs/t/best.pth")
    assert SIZE_PATH.convert("s=a=b.pth", None, None) == ("s", "a=b.pth")
