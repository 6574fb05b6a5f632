"""Upsample, FIR-filter and downsample 2-D images: StyleGAN's resampling primitive.

`upfirdn2d(x, f, up, down, padding)` does, per channel of `x: [N, C, H, W]`:
  1. upsample by inserting `up - 1` zeros after every sample;
  2. pad with zeros by `[x0, x1, y0, y1]` (negative values crop);
  3. "valid" FIR filtering with `f` (a true convolution, or a correlation if `flip_filter`),
     the filter scaled by `gain ** (f.ndim / 2)`; 1-D (separable) filters run along x, then y;
  4. keep every `down`-th sample, starting at index 0.
`filter2d`, `upsample2d` and `downsample2d` are the same-size / 2x wrappers networks use.
A compiled CUDA kernel is used when `impl='cuda'`, `x` lives on a GPU and the plugin builds.
"""
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .. import custom_ops

IntOrPair = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int]]


# ------------------------------------------------------------------------------------------------
# Argument parsing shared by all entry points.

def _parse_scaling(scaling: IntOrPair, name: str) -> Tuple[int, int]:
    if isinstance(scaling, (int, np.integer)):
        scaling = [int(scaling), int(scaling)]
    values = [int(v) for v in scaling]
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"upfirdn2d: {name} must be an int >= 1 or a pair [x, y] of them, got {scaling!r}")
    return values[0], values[1]


def _parse_padding(padding: Padding) -> Tuple[int, int, int, int]:
    if isinstance(padding, (int, np.integer)):
        padding = [int(padding), int(padding)]
    values = [int(v) for v in padding]
    if len(values) == 2:
        values = [values[0], values[0], values[1], values[1]]
    if len(values) != 4:
        raise ValueError(f"upfirdn2d: padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding!r}")
    return values[0], values[1], values[2], values[3]


def _get_filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """Return (width, height) of a filter from `setup_filter`; None means the 1x1 identity."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError("upfirdn2d: f must be None or a 1-D/2-D tensor from setup_filter()")
    return int(f.shape[-1]), int(f.shape[0])


# ------------------------------------------------------------------------------------------------
# Public functions.

def setup_filter(f, device: torch.device = torch.device("cpu"), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: Optional[bool] = None) -> torch.Tensor:
    """Turn a list/array/tensor into a float32 FIR filter for `upfirdn2d`.

    1-D filters with at least 8 taps stay separable (1-D) unless `separable` says otherwise; shorter
    ones become the outer product `f x f`. The filter is normalised to unit sum, optionally flipped,
    and scaled by `gain ** (ndim / 2)` so that the 2-D response has total gain `gain`.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim > 2:
        raise ValueError(f"setup_filter: f must be a scalar, 1-D or 2-D, got shape {tuple(f.shape)}")
    if f.numel() == 0:
        f = torch.ones([1], dtype=torch.float32)
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("setup_filter: a 2-D filter cannot be made separable")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], up: IntOrPair = 1, down: IntOrPair = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample each channel of `x: [N, C, H, W]` (see module doc)."""
    upx, upy = _parse_scaling(up, "up")
    downx, downy = _parse_scaling(down, "down")
    pads = _parse_padding(padding)
    _check_input(x, f, impl, (upx, upy), (downx, downy), pads)
    if impl == "cuda" and x.device.type == "cuda":
        plugin = _working_plugin(x.device)
        if plugin is not None:
            return _upfirdn2d_compiled(plugin, x, f, (upx, upy), (downx, downy), pads, flip_filter, gain)
    return _upfirdn2d_ref(x, f, (upx, upy), (downx, downy), pads, flip_filter, gain)


def filter2d(x: torch.Tensor, f: Optional[torch.Tensor], padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Filter each channel with `f`, keeping the size (plus `padding`, which is relative to the output)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x: torch.Tensor, f: Optional[torch.Tensor], up: IntOrPair = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Upsample by `up` with the interpolation filter `f`; the output is exactly `up` times larger."""
    upx, upy = _parse_scaling(up, "up")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x: torch.Tensor, f: Optional[torch.Tensor], down: IntOrPair = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Downsample by `down` after anti-alias filtering with `f` (padding is relative to the input)."""
    downx, downy = _parse_scaling(down, "down")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def _check_input(x, f, impl, up, down, pads) -> None:
    if impl not in ("cuda", "ref"):
        raise ValueError(f"upfirdn2d: impl must be 'cuda' or 'ref', got {impl!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be a 4-D tensor [N, C, H, W], got {tuple(getattr(x, 'shape', ()))}")
    fw, fh = _get_filter_size(f)
    out_w, out_h = _output_size(x.shape[3], x.shape[2], fw, fh, up, down, pads)
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: input {tuple(x.shape)} with filter {fh}x{fw}, up={up}, down={down}, "
                         f"padding={list(pads)} leaves no output pixels; use a larger input or more padding")


def _output_size(in_w, in_h, fw, fh, up, down, pads) -> Tuple[int, int]:
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pads
    out_w = (in_w * upx + px0 + px1 - fw + downx) // downx
    out_h = (in_h * upy + py0 + py1 - fh + downy) // downy
    return out_w, out_h


# ------------------------------------------------------------------------------------------------
# Reference path: zero insertion and padding in one strided copy, then a grouped conv2d whose
# stride does the decimation. All differentiable torch ops, so gradients of any order (w.r.t. x and
# f) come from autograd.

def _upfirdn2d_ref(x, f, up, down, pads, flip_filter, gain):
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pads
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape

    # Zero-insert and zero-pad in one go: x lands on every up-th sample, offset by the padding.
    if upx > 1 or upy > 1 or max(pads) > 0:
        z = x.new_zeros([n, c, h * upy + max(py0, 0) + max(py1, 0), w * upx + max(px0, 0) + max(px1, 0)])
        z[:, :, max(py0, 0): max(py0, 0) + h * upy: upy, max(px0, 0): max(px0, 0) + w * upx: upx] = x
        x = z
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:  # conv2d correlates; flipping the taps turns that into a true convolution
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].expand([c, 1, -1, -1]), groups=c, stride=(downy, downx))
    x = F.conv2d(x, f[None, None, None, :].expand([c, 1, 1, -1]), groups=c, stride=(1, downx))
    return F.conv2d(x, f[None, None, :, None].expand([c, 1, -1, 1]), groups=c, stride=(downy, 1))


# ------------------------------------------------------------------------------------------------
# Compiled path. The kernel handles one 2-D filter (already scaled by the gain); a separable
# filter runs as an x pass then a y pass. The gradient of upfirdn2d w.r.t. x is again an upfirdn2d
# (up and down swapped, filter flipped, padding mirrored), so the backward applies the same
# Function and gradients of every order w.r.t. x come for free. No gradient w.r.t. f.

class _Upfirdn2dCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, plugin, up, down, pads, flip_filter):
        ctx.params = (plugin, up, down, pads, flip_filter)
        ctx.in_size = (x.shape[3], x.shape[2])
        ctx.save_for_backward(f)
        (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pads
        return plugin.upfirdn2d(x.contiguous(), f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter)

    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        plugin, up, down, pads, flip_filter = ctx.params
        dx = None
        if ctx.needs_input_grad[0]:
            grad_pads = _transposed_padding(ctx.in_size, (dy.shape[3], dy.shape[2]), f, up, down, pads)
            dx = _Upfirdn2dCompiled.apply(dy, f, plugin, down, up, grad_pads, not flip_filter)
        return dx, None, None, None, None, None, None


def _transposed_padding(in_size, out_size, f, up, down, pads) -> Tuple[int, int, int, int]:
    """Padding that makes upfirdn2d(dy, f, up=down, down=up, flip) the exact adjoint of the forward op."""
    fw, fh = int(f.shape[1]), int(f.shape[0])
    (in_w, in_h), (out_w, out_h) = in_size, out_size
    (upx, upy), (downx, downy), (px0, _, py0, _) = up, down, pads
    return (fw - 1 - px0, in_w * upx - out_w * downx + px0,
            fh - 1 - py0, in_h * upy - out_h * downy + py0)


def _upfirdn2d_compiled(plugin, x, f, up, down, pads, flip_filter, gain):
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return _upfirdn2d_ref(x, f, up, down, pads, flip_filter, gain)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    f = (f.detach().to(device=x.device, dtype=torch.float32) * (gain ** (f.ndim / 2))).contiguous()
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pads
    if f.ndim == 2:
        return _Upfirdn2dCompiled.apply(x, f, plugin, up, down, pads, flip_filter)
    x = _Upfirdn2dCompiled.apply(x, f[None, :], plugin, (upx, 1), (downx, 1), (px0, px1, 0, 0), flip_filter)
    return _Upfirdn2dCompiled.apply(x, f[:, None], plugin, (1, upy), (1, downy), (0, 0, py0, py1), flip_filter)


# ------------------------------------------------------------------------------------------------
# Lazy loader: build the plugin on first use; remember a failure for the rest of the process.

def _load_plugin():
    return custom_ops.try_get_plugin("upfirdn2d_plugin", sources=["upfirdn2d.cpp", "upfirdn2d.cu"],
                                     headers=["upfirdn2d.h"], source_dir=os.path.dirname(os.path.abspath(__file__)))


def _self_test(plugin, device: torch.device) -> None:
    x = torch.arange(4, dtype=torch.float32, device=device).reshape(1, 1, 2, 2)
    f = torch.tensor([[1.0, 2.0]], device=device)
    y = plugin.upfirdn2d(x, f, 1, 1, 1, 1, 0, 0, 0, 0, False)  # [[0, 1], [2, 3]] (*) [[1, 2]] valid
    if y.flatten().tolist() != [1.0, 7.0]:
        raise RuntimeError(f"self-test returned {y.flatten().tolist()} instead of [1.0, 7.0]")


def _working_plugin(device: torch.device):
    """The plugin, once it has been seen to run correctly on `device`; None if unavailable."""
    return custom_ops.checked_plugin("upfirdn2d_plugin", _load_plugin, _self_test, device)


def _init() -> bool:
    """Build the plugin if needed; True when the compiled path is available (reference-compatible name)."""
    return _load_plugin() is not None
