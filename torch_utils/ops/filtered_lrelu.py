"""StyleGAN3's filtered leaky ReLU: bias, upsample + filter, leaky ReLU, filter + downsample.

Reference semantics: `x + b` per channel, `upfirdn2d(., fu, up=up, padding=padding, gain=up**2)`,
leaky ReLU with `slope` times `gain` clamped to `[-clamp, clamp]`, then
`upfirdn2d(., fd, down=down)`. This is implemented from the `bias_act` and `upfirdn2d` ops, so on a
GPU with `impl='cuda'` the steps use their compiled kernels (no fused kernel of its own).
"""
from typing import Optional, Sequence, Union

import numpy as np
import torch

from . import bias_act as _bias_act
from . import upfirdn2d as _upfirdn2d


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                   b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1,
                   padding: Union[int, Sequence[int]] = 0, gain: float = np.sqrt(2), slope: float = 0.2,
                   clamp: Optional[float] = None, flip_filter: bool = False, impl: str = "cuda") -> torch.Tensor:
    """Bias, upsample by `up` with `fu`, leaky ReLU (slope, gain, clamp), downsample by `down` with `fd`.

    `x: [N, C, H, W]`; `fu`/`fd` are filters from `setup_filter` (None = identity); output width
    `(W * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down`, likewise for height.
    """
    if impl not in ("cuda", "ref"):
        raise ValueError(f"filtered_lrelu: impl must be 'cuda' or 'ref', got {impl!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"filtered_lrelu: x must be a 4-D tensor [N, C, H, W], got {tuple(getattr(x, 'shape', ()))}")
    for name, value in (("up", up), ("down", down)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"filtered_lrelu: {name} must be an int >= 1, got {value!r}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"filtered_lrelu: clamp must be None or >= 0, got {clamp}")
    up, down = int(up), int(down)
    if b is not None:
        x = _bias_act.bias_act(x, b, impl=impl)
    x = _upfirdn2d.upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2, flip_filter=flip_filter, impl=impl)
    x = _bias_act.bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, impl=impl)
    return _upfirdn2d.upfirdn2d(x, fd, down=down, flip_filter=flip_filter, impl=impl)
