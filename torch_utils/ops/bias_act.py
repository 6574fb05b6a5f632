"""Fused bias + activation + gain + clamp, the pointwise step after every StyleGAN layer.

`bias_act(x, b, dim, act, alpha, gain, clamp)` computes, in this order: `x + b` (b broadcast
along `dim`), the activation `act` with shape parameter `alpha`, multiplication by `gain`, and
clamping to `[-clamp, clamp]`. The pure-PyTorch reference path is used everywhere; a compiled CUDA
kernel is used when `impl='cuda'`, the tensor lives on a GPU and the plugin builds.
"""
import os
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .. import custom_ops

try:  # the reference table holds dnnlib EasyDicts; fall back to an equivalent when dnnlib is absent
    from dnnlib.util import EasyDict as _AttrDict
except ImportError:  # pragma: no cover - depends on which packages are importable
    class _AttrDict(dict):
        """A dict whose items are also attributes."""

        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name)

        def __setattr__(self, name, value):
            self[name] = value

        def __delattr__(self, name):
            del self[name]


def _swish(x: torch.Tensor, **_) -> torch.Tensor:
    return torch.sigmoid(x) * x


activation_funcs = {
    "linear": _AttrDict(func=lambda x, **_: x, def_alpha=0, def_gain=1, cuda_idx=1, ref="", has_2nd_grad=False),
    "relu": _AttrDict(func=lambda x, **_: F.relu(x), def_alpha=0, def_gain=np.sqrt(2), cuda_idx=2, ref="y",
                      has_2nd_grad=False),
    "lrelu": _AttrDict(func=lambda x, alpha, **_: F.leaky_relu(x, alpha), def_alpha=0.2, def_gain=np.sqrt(2),
                       cuda_idx=3, ref="y", has_2nd_grad=False),
    "tanh": _AttrDict(func=lambda x, **_: torch.tanh(x), def_alpha=0, def_gain=1, cuda_idx=4, ref="y",
                      has_2nd_grad=True),
    "sigmoid": _AttrDict(func=lambda x, **_: torch.sigmoid(x), def_alpha=0, def_gain=1, cuda_idx=5, ref="y",
                         has_2nd_grad=True),
    "elu": _AttrDict(func=lambda x, **_: F.elu(x), def_alpha=0, def_gain=1, cuda_idx=6, ref="y", has_2nd_grad=True),
    "selu": _AttrDict(func=lambda x, **_: F.selu(x), def_alpha=0, def_gain=1, cuda_idx=7, ref="y",
                      has_2nd_grad=True),
    "softplus": _AttrDict(func=lambda x, **_: F.softplus(x), def_alpha=0, def_gain=1, cuda_idx=8, ref="y",
                          has_2nd_grad=True),
    "swish": _AttrDict(func=_swish, def_alpha=0, def_gain=np.sqrt(2), cuda_idx=9, ref="x", has_2nd_grad=True),
}


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
             alpha: Optional[float] = None, gain: Optional[float] = None, clamp: Optional[float] = None,
             impl: str = "cuda") -> torch.Tensor:
    """Return `clamp(act(x + b, alpha) * gain)`, with first and second order gradients.

    `b` is 1-D with `x.shape[dim]` entries (or None); `alpha`/`gain` default to the activation's
    entry in `activation_funcs`; `clamp=None` disables clamping. `impl` is 'cuda' (compiled kernel
    when possible, reference otherwise) or 'ref'.
    """
    act, alpha, gain, clamp = _check_args(x, b, dim, act, alpha, gain, clamp, impl)
    if impl == "cuda" and x.device.type == "cuda":
        plugin = _working_plugin(x.device)
        if plugin is not None:
            return _bias_act_compiled(plugin, x, b, dim, act, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, act, alpha, gain, clamp)


def _check_args(x, b, dim, act, alpha, gain, clamp, impl):
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"bias_act: x must be a torch.Tensor, got {type(x).__name__}")
    if impl not in ("cuda", "ref"):
        raise ValueError(f"bias_act: impl must be 'cuda' or 'ref', got {impl!r}")
    if act not in activation_funcs:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose one of {sorted(activation_funcs)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be None or >= 0, got {clamp}")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"bias_act: dim={dim} is out of range for a {x.ndim}-D tensor")
    dim = dim % x.ndim
    if b is not None:
        if not isinstance(b, torch.Tensor) or b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: b must be a 1-D tensor with x.shape[{dim}] = {x.shape[dim]} entries, "
                             f"got shape {tuple(getattr(b, 'shape', ()))}")
        if b.dtype != x.dtype or b.device != x.device:
            raise ValueError(f"bias_act: b must have x's dtype and device ({x.dtype}, {x.device}), "
                             f"got {b.dtype}, {b.device}")
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp) if clamp is not None else -1.0
    return act, alpha, gain, clamp


# ------------------------------------------------------------------------------------------------
# Reference path: plain differentiable torch ops, so every gradient order comes from autograd.

def _bias_act_ref(x, b, dim, act, alpha, gain, clamp):
    dim = dim % x.ndim
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = activation_funcs[act].func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# ------------------------------------------------------------------------------------------------
# Compiled path. The kernel evaluates, for v = x + b and the pre-clamp value p = gain * act(v):
#   order 0: clamp(p);   order k >= 1: dy * gain * act^(k)(v), zeroed where p lies outside the clamp
# range (the same mask autograd gives the reference path). Two autograd Functions chain these so
# that first and second order gradients of the compiled path equal those of the reference path.

_MAX_KERNEL_ORDER = 2


def _reduce_to_bias(dx: torch.Tensor, dim: int) -> torch.Tensor:
    return dx.sum([i for i in range(dx.ndim) if i != dim])


class _BiasActCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, plugin, dim, act, alpha, gain, clamp):
        ctx.params = (plugin, dim, act, alpha, gain, clamp)
        ctx.has_bias = b is not None
        ctx.save_for_backward(x, b)
        return plugin.bias_act(x, b, None, activation_funcs[act].cuda_idx, 0, dim, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dx = _BiasActDerivative.apply(dy, x, b, 1, *ctx.params)
        db = _reduce_to_bias(dx, ctx.params[1]) if ctx.has_bias and ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None, None, None


class _BiasActDerivative(torch.autograd.Function):
    """dy * d^order/dv^order of the clamped, gained activation, evaluated at v = x + b."""

    @staticmethod
    def forward(ctx, dy, x, b, order, plugin, dim, act, alpha, gain, clamp):
        if order > _MAX_KERNEL_ORDER:
            raise NotImplementedError(f"bias_act: the compiled '{act}' kernel has no derivatives above order "
                                      f"{_MAX_KERNEL_ORDER}; call bias_act(..., impl='ref') for them")
        ctx.order = order
        ctx.params = (plugin, dim, act, alpha, gain, clamp)
        ctx.has_bias = b is not None
        ctx.save_for_backward(dy, x, b)
        return plugin.bias_act(x, b, dy.contiguous(memory_format=_memory_format(x)),
                               activation_funcs[act].cuda_idx, order, dim, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, dd):
        dy, x, b = ctx.saved_tensors
        plugin, dim, act, alpha, gain, clamp = ctx.params
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = _BiasActDerivative.apply(dd, x, b, ctx.order, *ctx.params)
        if (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) and activation_funcs[act].has_2nd_grad:
            d_x = _BiasActDerivative.apply(dd * dy, x, b, ctx.order + 1, *ctx.params)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                d_b = _reduce_to_bias(d_x, dim)
        return d_dy, d_x, d_b, None, None, None, None, None, None, None


def _memory_format(x: torch.Tensor):
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _bias_act_compiled(plugin, x, b, dim, act, alpha, gain, clamp):
    dim = dim % x.ndim
    if act == "linear" and b is None and gain == 1 and clamp < 0:
        return x
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return _bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    x = x.contiguous(memory_format=_memory_format(x))
    b = b.contiguous() if b is not None else None
    return _BiasActCompiled.apply(x, b, plugin, dim, act, alpha, gain, clamp)


# ------------------------------------------------------------------------------------------------
# Lazy loader: build the plugin on first use; remember a failure for the rest of the process.

def _load_plugin():
    return custom_ops.try_get_plugin("bias_act_plugin", sources=["bias_act.cpp", "bias_act.cu"],
                                     headers=["bias_act.h"], source_dir=os.path.dirname(os.path.abspath(__file__)))


def _self_test(plugin, device: torch.device) -> None:
    y = plugin.bias_act(torch.full([2], -1.0, device=device), None, None, activation_funcs["relu"].cuda_idx,
                        0, 0, 0.0, 2.0, -1.0)
    if y.tolist() != [0.0, 0.0]:
        raise RuntimeError(f"self-test returned {y.tolist()} instead of [0.0, 0.0]")


def _working_plugin(device: torch.device):
    """The plugin, once it has been seen to run correctly on `device`; None if unavailable."""
    return custom_ops.checked_plugin("bias_act_plugin", _load_plugin, _self_test, device)


def _init() -> bool:
    """Build the plugin if needed; True when the compiled path is available (reference-compatible name)."""
    return _load_plugin() is not None
