"""2-D convolution with optional up/down-sampling: the convolution inside every StyleGAN layer.

Definition (the reference semantics; padding is relative to the upsampled image):
  1. add the resampling padding: for up > 1, `p0 += (fw + up - 1) // 2`, `p1 += (fw - up) // 2`;
     for down > 1, `p0 += (fw - down + 1) // 2`, `p1 += (fw - down) // 2` (per axis);
  2. `t = upfirdn2d(x, f if up > 1 else None, up=up, padding=p, gain=up**2)`;
  3. `t = conv2d(t, w)` with no padding: a correlation if `flip_weight`, else a true convolution;
  4. for down > 1, `t = upfirdn2d(t, f, down=down)`.
The code below evaluates cheaper but mathematically identical orderings: strided convolution for
downsampling, transposed strided convolution for upsampling (no multiply-adds with inserted zeros),
and 1x1 convolutions on the smaller side of the resampling.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from . import conv2d_gradfix
from . import upfirdn2d

Padding = Union[int, Sequence[int]]


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1, down: int = 1,
                    padding: Padding = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> torch.Tensor:
    """Pad, upsample by `up`, convolve with `w`, downsample by `down` (see module doc).

    `x: [N, C_in, H, W]`, `w: [C_out, C_in / groups, kh, kw]` (same dtype as x), `f` a filter from
    `upfirdn2d.setup_filter` or None.
    """
    _check_args(x, w, f, up, down, groups)
    kw, kh = int(w.shape[3]), int(w.shape[2])
    pads = _resampling_padding(f, up, down, upfirdn2d._parse_padding(padding))
    if not flip_weight:  # conv2d correlates; a true convolution uses the spatially flipped kernel
        w = w.flip([2, 3])

    if up == 1 and down == 1:
        return _conv_padded(x, w, pads, groups)
    if up == 1:
        if kw == 1 and kh == 1:  # 1x1: downsample first, then convolve the smaller image
            x = upfirdn2d.upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter)
            return conv2d_gradfix.conv2d(x, w, groups=groups)
        x = upfirdn2d.upfirdn2d(x, f, padding=pads, flip_filter=flip_filter)
        return conv2d_gradfix.conv2d(x, w, stride=down, groups=groups)
    if down == 1:
        if kw == 1 and kh == 1:  # 1x1: convolve the smaller image, then upsample
            x = conv2d_gradfix.conv2d(x, w, groups=groups)
            return upfirdn2d.upfirdn2d(x, f, up=up, padding=pads, gain=up ** 2, flip_filter=flip_filter)
        x = _upsampling_conv(x, w, up, pads, groups)
        return upfirdn2d.upfirdn2d(x, f, gain=up ** 2, flip_filter=flip_filter)
    return _definition(x, w, f, up, down, pads, groups, flip_filter)


def _check_args(x, w, f, up, down, groups) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"conv2d_resample: x must be a 4-D tensor [N, C, H, W], got {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError("conv2d_resample: w must be a 4-D tensor [C_out, C_in/groups, kh, kw] with x's dtype")
    if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32):
        raise ValueError("conv2d_resample: f must be None or a float32 1-D/2-D filter from setup_filter()")
    for name, value in (("up", up), ("down", down), ("groups", groups)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"conv2d_resample: {name} must be an int >= 1, got {value!r}")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f"conv2d_resample: x has {x.shape[1]} channels but w expects {w.shape[1]} x {groups} groups")


def _resampling_padding(f, up, down, pads) -> Tuple[int, int, int, int]:
    fw, fh = upfirdn2d._get_filter_size(f)
    px0, px1, py0, py1 = pads
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    return px0, px1, py0, py1


def _conv_padded(x, w, pads, groups):
    """Correlate with `w` after padding by `pads` (negative values crop)."""
    px0, px1, py0, py1 = pads
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return conv2d_gradfix.conv2d(x, w, padding=[py0, px0], groups=groups)
    return conv2d_gradfix.conv2d(F.pad(x, [px0, px1, py0, py1]), w, groups=groups)


def _upsampling_conv(x, w, up, pads, groups):
    """Correlate `pad(zero_insert(x, up), pads)` with `w`, without touching the inserted zeros.

    conv_transpose2d with stride `up` and the flipped kernel computes the full correlation of the
    zero-inserted image; the wanted "valid" result is a window of it, shifted by `k - 1 - pad0`
    (zero-filled where the window reaches past it).
    """
    c_out, c_in_per_group, kh, kw = w.shape
    c_in = c_in_per_group * groups
    h, wid = x.shape[2], x.shape[3]
    px0, px1, py0, py1 = pads
    # [C_out, C_in/g, kh, kw] -> [C_in, C_out/g, kh, kw], the layout conv_transpose2d expects.
    wt = w.reshape(groups, c_out // groups, c_in_per_group, kh, kw).transpose(1, 2)
    wt = wt.reshape(c_in, c_out // groups, kh, kw).flip([2, 3])
    full = conv2d_gradfix.conv_transpose2d(x, wt, stride=up, groups=groups)
    out_h = h * up + py0 + py1 - kh + 1
    out_w = wid * up + px0 + px1 - kw + 1
    start_y, start_x = kh - 1 - py0, kw - 1 - px0
    return F.pad(full, [-start_x, start_x + out_w - full.shape[3], -start_y, start_y + out_h - full.shape[2]])


def _definition(x, w, f, up, down, pads, groups, flip_filter):
    """Steps 1-4 of the module doc, literally (used when both up and down are > 1)."""
    x = upfirdn2d.upfirdn2d(x, f if up > 1 else None, up=up, padding=pads, gain=up ** 2, flip_filter=flip_filter)
    x = conv2d_gradfix.conv2d(x, w, groups=groups)
    if down > 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x
