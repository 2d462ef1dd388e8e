"""Anchor-free YOLOX decoding, as a pure function of the head's concatenated output."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch

__all__ = ["make_grids", "decode_outputs"]


def make_grids(
    feature_sizes: Sequence[Tuple[int, int]],
    strides: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cell coordinates and strides of every anchor, levels in order.

    Returns ``grids`` [1, N, 2] holding (x, y) of each cell (row-major within a level:
    index = y*W + x) and ``stride_map`` [1, N, 1], N = sum of H_l*W_l.
    """
    grids, stride_maps = [], []
    for (h, w), stride in zip(feature_sizes, strides):
        yv, xv = torch.meshgrid(
            torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
        )
        grid = torch.stack((xv, yv), 2).reshape(1, -1, 2)
        grids.append(grid)
        stride_maps.append(torch.full((1, grid.shape[1], 1), stride, device=device))
    return torch.cat(grids, 1).to(dtype), torch.cat(stride_maps, 1).to(dtype)


def decode_outputs(
    outputs: torch.Tensor,
    feature_sizes: Sequence[Tuple[int, int]],
    strides: Sequence[int],
) -> torch.Tensor:
    """Decode raw box regressions into input-pixel boxes.

    Args:
        outputs (Tensor[B, N, 4 + K]): raw ``tx, ty, tw, th`` then K other channels
            (objectness and class scores), which pass through unchanged.
        feature_sizes: (H, W) of each level, in the order the anchors were concatenated.
        strides: stride of each level.

    Returns:
        Tensor[B, N, 4 + K] with ``cx, cy = (t_xy + grid) * stride`` and
        ``w, h = exp(t_wh) * stride``: no sigmoid on xy and no +0.5 offset, so a raw 0
        lands on the cell's top-left corner, as in the official model.
    """
    grids, stride_map = make_grids(feature_sizes, strides, outputs.dtype, outputs.device)
    xy = (outputs[..., :2] + grids) * stride_map
    wh = torch.exp(outputs[..., 2:4]) * stride_map
    return torch.cat([xy, wh, outputs[..., 4:]], dim=-1)
