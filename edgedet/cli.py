"""The ``edgedet`` command line. Each command parses its options and calls one library
function; heavy libraries (torch, onnx) are imported inside the commands that need them."""

from __future__ import annotations

import logging
import sys
from typing import Optional

import click

from . import __version__
from .tables import format_table


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edgedet")
@click.option("-v", "--verbose", is_flag=True, help="Print debug messages.")
def cli(verbose: bool) -> None:
    """edgedet: YOLOX detectors from PyTorch to the edge.

    Export YOLOX to ONNX, quantize it, and run it on ONNX Runtime's TensorRT, CUDA and
    CPU providers. Run `edgedet COMMAND --help` for each command's options.
    """
    _setup_logging(verbose)


@cli.command()
@click.option(
    "--input-size", type=int, default=None, metavar="N",
    help="Count FLOPs at N x N instead of each model's official test size.",
)
def info(input_size: Optional[int]) -> None:
    """Print the YOLOX model zoo: sizes, parameters and FLOPs.

    FLOPs are counted from the models themselves, in the YOLOX README's convention
    (2 x (conv MACs + bias adds + 2 per BatchNorm element)); "conv GFLOPs" counts
    convolutions alone.

    Example: edgedet info --input-size 320
    """
    from .models.flops import zoo_cost
    from .models.zoo import ZOO

    size = (input_size, input_size) if input_size else None
    rows = []
    for name, spec in ZOO.items():
        at = size or spec.test_size
        cost = zoo_cost(name, at)
        rows.append((
            name, f"{spec.depth:g}", f"{spec.width:g}", "yes" if spec.depthwise else "no",
            f"{at[0]}x{at[1]}", f"{cost.params:,}", f"{cost.gflops:.2f}", f"{cost.conv_gflops:.2f}",
        ))
    header = ("model", "depth", "width", "depthwise", "input", "params", "GFLOPs", "conv GFLOPs")
    click.echo(format_table(header, rows))


@cli.command()
def demo() -> None:
    """Run the end-to-end demo on the embedded default, with no downloads.

    Example: edgedet demo
    """
    from .demo import run_demo

    run_demo(echo=click.echo)


def main() -> None:
    cli(prog_name="edgedet")


if __name__ == "__main__":
    main()
