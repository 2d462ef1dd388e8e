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
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["yolox-nano"][4:7] == ["416x416", "912,159", "1.08"]
    assert rows["yolox-x"][4:7] == ["640x640", "99,071,455", "281.93"]


def test_info_input_size():
    result = CliRunner().invoke(cli, ["info", "--input-size", "320"])
    assert result.exit_code == 0
    assert "320x320" in result.output
