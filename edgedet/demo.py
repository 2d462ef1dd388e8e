"""`edgedet demo`: the whole pipeline on embedded defaults, with no downloads."""

from __future__ import annotations

from typing import Callable

__all__ = ["run_demo"]


def run_demo(echo: Callable[[str], None] = print) -> None:
    """Show the zoo, then build yolox-nano and run it once."""
    import time

    import torch

    from .models import build_model, zoo_cost
    from .models.zoo import ZOO
    from .tables import format_table

    rows = []
    for name, spec in ZOO.items():
        cost = zoo_cost(name)
        rows.append((name, f"{spec.test_size[0]}x{spec.test_size[1]}", f"{cost.params:,}", f"{cost.gflops:.2f}"))
    echo(format_table(("model", "input", "params", "GFLOPs"), rows))
    model = build_model("yolox-nano").eval()
    start = time.perf_counter()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 416, 416) * 255)
    echo(f"yolox-nano forward at 416x416: output {tuple(out.shape)} in {time.perf_counter() - start:.3f}s")
