"""Bilinear `grid_sample` with a double backward, for augmentation under R1 regularisation.

Always bilinear, zero padding, `align_corners=False`. PyTorch versions before native higher-order
grid_sample derivatives fail on the second backward ("derivative for
aten::grid_sampler_2d_backward is not implemented"). When `enabled` and the running PyTorch lacks
that derivative, this module samples with plain tensor ops (gather + lerp) instead, which autograd
differentiates to any order. Otherwise it calls `torch.nn.functional.grid_sample`.
"""
from typing import Dict

import torch
import torch.nn.functional as F

enabled = False  # the training loop sets this to True

_native_double_backward: Dict[str, bool] = {}  # device type -> does F.grid_sample support it?


def grid_sample(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample `input: [N, C, H, W]` at `grid: [N, H_out, W_out, 2]` (x, y in [-1, 1]) bilinearly."""
    if enabled and not _has_native_double_backward(input.device):
        return _grid_sample_gather(input, grid)
    return F.grid_sample(input=input, grid=grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _has_native_double_backward(device: torch.device) -> bool:
    key = device.type
    if key not in _native_double_backward:
        try:
            x = torch.ones([1, 1, 2, 2], device=device, requires_grad=True)
            g = torch.zeros([1, 1, 1, 2], device=device)
            y = F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
            (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
            torch.autograd.grad(dx.square().sum(), x, allow_unused=True)
            _native_double_backward[key] = True
        except RuntimeError:
            _native_double_backward[key] = False
    return _native_double_backward[key]


def _grid_sample_gather(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling with zero padding from differentiable tensor ops only."""
    n, c, h, w = input.shape
    out_h, out_w = grid.shape[1], grid.shape[2]
    # align_corners=False: -1 and +1 are the outer edges of the border pixels.
    ix = ((grid[..., 0] + 1) * w - 1) / 2
    iy = ((grid[..., 1] + 1) * h - 1) / 2
    x0 = ix.detach().floor()
    y0 = iy.detach().floor()
    fx = ix - x0
    fy = iy - y0
    flat = input.reshape(n, c, h * w)
    out = input.new_zeros([n, c, out_h * out_w])
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xs, ys = x0 + dx, y0 + dy
            inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
            index = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).long().reshape(n, 1, -1).expand(n, c, -1)
            weight = (wx * wy * inside).reshape(n, 1, -1)
            out = out + flat.gather(2, index) * weight.to(input.dtype)
    return out.reshape(n, c, out_h, out_w)
