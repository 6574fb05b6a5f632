"""First and second order gradients of every op (float64 gradcheck / gradgradcheck), and
equivalence of the fast evaluation orders with the literal definitions.

The compiled-path autograd Functions are exercised here too, on CPU, with a Python stand-in for
the CUDA kernels that follows the kernels' documented contract; this checks the backward wiring
(derivative orders, transposed padding) without a GPU.
"""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from torch_utils.ops import (bias_act, conv2d_gradfix, conv2d_resample, filtered_lrelu, fma, grid_sample_gradfix,
                             upfirdn2d)

D = torch.float64


def _rand(*shape):
    return torch.randn(*shape, dtype=D, requires_grad=True)


def _check_both_orders(fn, inputs):
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5)
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# bias_act

@pytest.mark.parametrize("act", sorted(bias_act.activation_funcs))
def test_bias_act_grads(act):
    x, b = _rand(2, 3, 2, 2), _rand(3)
    _check_both_orders(lambda x, b: bias_act.bias_act(x, b, act=act, impl="ref"), (x, b))


def test_bias_act_grads_with_gain_clamp_and_dim():
    x, b = _rand(2, 3, 4), _rand(4)
    _check_both_orders(lambda x, b: bias_act.bias_act(x, b, dim=2, act="swish", gain=1.5, clamp=0.7), (x, b))


def test_bias_act_rejects_bad_arguments():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act.bias_act(x, act="gelu")
    with pytest.raises(ValueError, match="entries"):
        bias_act.bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match="clamp"):
        bias_act.bias_act(x, clamp=-1)
    with pytest.raises(ValueError, match="impl"):
        bias_act.bias_act(x, impl="triton")


# ------------------------------------------------------------------------------------------------
# upfirdn2d family

UPFIRDN_CONFIGS = [
    dict(up=1, down=1, padding=1),
    dict(up=2, down=1, padding=[2, 1, 2, 1], gain=4),
    dict(up=1, down=2, padding=[1, 1, 1, 1]),
    dict(up=[2, 1], down=[1, 2], padding=[0, 1, -1, 2], flip_filter=True),
    dict(up=3, down=2, padding=[2, 1, 1, 2]),
]


@pytest.mark.parametrize("cfg", UPFIRDN_CONFIGS, ids=[str(i) for i in range(len(UPFIRDN_CONFIGS))])
def test_upfirdn2d_grads_wrt_x_and_filter(cfg):
    x, f = _rand(1, 2, 5, 4), _rand(3, 2)
    _check_both_orders(lambda x, f: upfirdn2d.upfirdn2d(x, f, impl="ref", **cfg), (x, f))


def test_upfirdn2d_separable_filter_grads():
    x, f = _rand(1, 2, 5, 5), _rand(3)
    _check_both_orders(lambda x, f: upfirdn2d.upfirdn2d(x, f, up=2, padding=1, impl="ref"), (x, f))


def test_resampling_wrappers_grads_and_sizes():
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).to(D)
    x = _rand(1, 2, 4, 4)
    assert upfirdn2d.upsample2d(x, f).shape[2:] == (8, 8)
    assert upfirdn2d.downsample2d(x, f).shape[2:] == (2, 2)
    assert upfirdn2d.filter2d(x, f).shape[2:] == (4, 4)
    for fn in (upfirdn2d.upsample2d, upfirdn2d.downsample2d, upfirdn2d.filter2d):
        _check_both_orders(lambda x: fn(x, f), (x,))


def _upfirdn2d_by_loops(x, f, up, down, pads, flip_filter, gain):
    """The four steps of the definition, one output pixel at a time (numpy, float64)."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pads
    n, c, h, w = x.shape
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    fh, fw = f.shape
    kernel = f if flip_filter else f[::-1, ::-1]
    z = np.zeros([n, c, h * upy, w * upx])
    z[:, :, ::upy, ::upx] = x
    padded = np.zeros([n, c, h * upy + py0 + py1, w * upx + px0 + px1])
    for yy in range(padded.shape[2]):
        for xx in range(padded.shape[3]):
            sy, sx = yy - py0, xx - px0
            if 0 <= sy < z.shape[2] and 0 <= sx < z.shape[3]:
                padded[:, :, yy, xx] = z[:, :, sy, sx]
    out_h, out_w = padded.shape[2] - fh + 1, padded.shape[3] - fw + 1
    out = np.zeros([n, c, out_h, out_w])
    for yy in range(out_h):
        for xx in range(out_w):
            out[:, :, yy, xx] = (padded[:, :, yy:yy + fh, xx:xx + fw] * kernel).sum((2, 3))
    return out[:, :, ::downy, ::downx]


@pytest.mark.parametrize("cfg", [((1, 1), (1, 1), (0, 0, 0, 0), False), ((2, 2), (1, 1), (2, 1, 1, 2), True),
                                 ((1, 3), (2, 1), (-1, 2, 3, -2), False), ((3, 1), (2, 2), (1, 1, 0, 2), True)])
def test_upfirdn2d_matches_literal_definition(cfg):
    up, down, pads, flip = cfg
    x = torch.randn(1, 2, 5, 6, dtype=D)
    # A 1-D filter runs separably (sqrt(gain) per axis); that must equal its outer product with the full gain.
    for f in (torch.randn(3, 2, dtype=D), torch.randn(4, dtype=D)):
        expected = _upfirdn2d_by_loops(x.numpy(), f.numpy(), up, down, pads, flip, gain=1.5)
        actual = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=list(pads), flip_filter=flip, gain=1.5,
                                     impl="ref")
        np.testing.assert_allclose(actual.numpy(), expected, atol=1e-12)


def test_setup_filter_rules():
    assert upfirdn2d.setup_filter(None).shape == (1, 1)
    assert upfirdn2d.setup_filter([1] * 8).shape == (8,)  # long 1-D filters stay separable
    assert upfirdn2d.setup_filter([1, 2, 1], separable=True).shape == (3,)
    f = upfirdn2d.setup_filter([1, 2, 1], gain=4)
    assert f.shape == (3, 3) and abs(f.sum().item() - 4) < 1e-6
    g = upfirdn2d.setup_filter([1] * 8, gain=4)
    assert abs(g.sum().item() ** 2 - 4) < 1e-5  # sqrt(gain) per axis
    with pytest.raises(ValueError):
        upfirdn2d.setup_filter([[1, 2], [3, 4]], separable=True)


def test_upfirdn2d_rejects_empty_output():
    with pytest.raises(ValueError, match="no output pixels"):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 2, 2), torch.ones(4, 4), impl="ref")


# ------------------------------------------------------------------------------------------------
# conv2d_resample

def _conv2d_resample_by_definition(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """Steps 1-4 of the reference definition, written directly on upfirdn2d and F.conv2d."""
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    px0, px1, py0, py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    t = upfirdn2d.upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2,
                            flip_filter=flip_filter, impl="ref")
    t = F.conv2d(t, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        t = upfirdn2d.upfirdn2d(t, f, down=down, flip_filter=flip_filter, impl="ref")
    return t


RESAMPLE_CONFIGS = list(itertools.product(
    [1, 3], [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1)], [(1, 1, 1, 1), (0, 0, 0, 0), (2, 0, -1, 1)], [1, 2],
    [True, False], ["f4", "f3sep", None]))


@pytest.mark.parametrize("k,updown,padding,groups,flip_weight,filt", RESAMPLE_CONFIGS)
def test_conv2d_resample_fast_paths_match_definition(k, updown, padding, groups, flip_weight, filt):
    up, down = updown
    f = {"f4": upfirdn2d.setup_filter([1, 3, 3, 1]), "f3sep": upfirdn2d.setup_filter([1, 2, 1], separable=True),
         None: None}[filt]
    x = torch.randn(2, 4, 6, 6, dtype=D)
    w = torch.randn(6, 4 // groups, k, k, dtype=D)
    args = (f, up, down, list(padding), groups, flip_weight, True)
    expected = _conv2d_resample_by_definition(x, w, *args)
    actual = conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=list(padding), groups=groups,
                                             flip_weight=flip_weight, flip_filter=True)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("up,down,k", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
def test_conv2d_resample_grads(up, down, k):
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x, w = _rand(1, 1, 3, 3), _rand(2, 1, k, k)
    _check_both_orders(lambda x, w: conv2d_resample.conv2d_resample(
        x, w, f=f, up=up, down=down, padding=k // 2, flip_weight=(up == 1)), (x, w))


def test_conv2d_resample_rejects_mismatched_dtype():
    with pytest.raises(ValueError, match="dtype"):
        conv2d_resample.conv2d_resample(torch.zeros(1, 2, 4, 4), torch.zeros(3, 2, 3, 3, dtype=D))


# ------------------------------------------------------------------------------------------------
# fma, conv2d_gradfix, grid_sample_gradfix, filtered_lrelu

def test_fma_value_and_grads():
    a, b, c = _rand(3, 1, 4), _rand(1, 5, 4), _rand(3, 5, 1)
    torch.testing.assert_close(fma.fma(a, b, c), a * b + c)
    _check_both_orders(fma.fma, (a, b, c))


def test_conv2d_gradfix_matches_functional_and_has_double_backward():
    x, w = _rand(1, 2, 4, 4), _rand(2, 1, 3, 3)
    torch.testing.assert_close(conv2d_gradfix.conv2d(x, w, padding=1, groups=2), F.conv2d(x, w, padding=1, groups=2))
    _check_both_orders(lambda x, w: conv2d_gradfix.conv2d(x, w, stride=2, padding=1, groups=2), (x, w))
    x, wt = _rand(1, 2, 3, 3), _rand(2, 1, 2, 2)
    _check_both_orders(lambda x, w: conv2d_gradfix.conv_transpose2d(x, w, stride=2, padding=1, groups=2), (x, wt))


def test_no_weight_gradients_context_restores_flag():
    assert not conv2d_gradfix.weight_gradients_disabled
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.weight_gradients_disabled
        with conv2d_gradfix.no_weight_gradients(disable=False):
            assert conv2d_gradfix.weight_gradients_disabled
    assert not conv2d_gradfix.weight_gradients_disabled


def _sample_grid(n, h, w):
    # Keep sample points off the integer lattice: bilinear sampling has kinks there.
    g = torch.rand(n, h, w, 2, dtype=D) * 2.4 - 1.2
    return g.requires_grad_(True)


def test_grid_sample_gather_matches_functional():
    x = torch.randn(2, 3, 5, 4, dtype=D)
    g = _sample_grid(2, 3, 6).detach()
    expected = F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(grid_sample_gradfix._grid_sample_gather(x, g), expected)


@pytest.mark.parametrize("enabled", [False, True])
def test_grid_sample_double_backward(monkeypatch, enabled):
    monkeypatch.setattr(grid_sample_gradfix, "enabled", enabled)
    x, g = _rand(1, 2, 4, 4), _sample_grid(1, 3, 3)
    _check_both_orders(lambda x: grid_sample_gradfix.grid_sample(x, g.detach()), (x,))


def test_grid_sample_gather_grads_wrt_input_and_grid():
    x, g = _rand(1, 2, 4, 4), _sample_grid(1, 3, 3)
    _check_both_orders(grid_sample_gradfix._grid_sample_gather, (x, g))


def test_filtered_lrelu_grads_and_size():
    fu = upfirdn2d.setup_filter([1, 3, 3, 1]).to(D)
    fd = upfirdn2d.setup_filter([1, 2, 1]).to(D)
    x, b = _rand(1, 2, 4, 4), _rand(2)
    y = filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=3, clamp=0.9)
    assert y.shape[2:] == ((4 * 2 + 6 - 3 - 2 + 1) // 2,) * 2
    _check_both_orders(lambda x, b: filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=3), (x, b))


# ------------------------------------------------------------------------------------------------
# Compiled-path autograd wiring, with a Python stand-in for the CUDA kernels.

_SELU_SCALE, _SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def _act_and_derivatives(act, v, alpha):
    """(act(v), act'(v), act''(v)) as the kernel defines them (matching autograd at the kinks)."""
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    s = torch.sigmoid(v)
    if act == "linear":
        return v, one, zero
    if act == "relu":
        return v.clamp(min=0), (v > 0).to(v.dtype), zero
    if act == "lrelu":
        return torch.where(v > 0, v, v * alpha), torch.where(v > 0, one, one * alpha), zero
    if act == "tanh":
        t = torch.tanh(v)
        return t, 1 - t * t, -2 * t * (1 - t * t)
    if act == "sigmoid":
        return s, s * (1 - s), s * (1 - s) * (1 - 2 * s)
    if act == "elu":
        e = torch.exp(v)
        return torch.where(v > 0, v, e - 1), torch.where(v > 0, one, e), torch.where(v > 0, zero, e)
    if act == "selu":
        e = _SELU_SCALE * _SELU_ALPHA * torch.exp(v)
        return (torch.where(v > 0, _SELU_SCALE * v, e - _SELU_SCALE * _SELU_ALPHA),
                torch.where(v > 0, one * _SELU_SCALE, e), torch.where(v > 0, zero, e))
    if act == "softplus":
        big = v > 20
        return torch.where(big, v, F.softplus(v)), torch.where(big, one, s), torch.where(big, zero, s * (1 - s))
    if act == "swish":
        return s * v, s * (1 + v * (1 - s)), s * (1 - s) * (2 + v * (1 - 2 * s))
    raise AssertionError(act)


class _FakePlugin:
    """Implements the plugin functions' contracts with torch ops (see bias_act.cpp / upfirdn2d.cpp)."""
    names = {spec.cuda_idx: name for name, spec in bias_act.activation_funcs.items()}

    @classmethod
    def bias_act(cls, x, b, dy, act_idx, order, dim, alpha, gain, clamp):
        v = x if b is None else x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        values = _act_and_derivatives(cls.names[act_idx], v, alpha)
        pre = values[0] * gain
        if order == 0:
            return pre.clamp(-clamp, clamp) if clamp >= 0 else pre
        inside = (pre >= -clamp) & (pre <= clamp) if clamp >= 0 else torch.ones_like(pre, dtype=torch.bool)
        return torch.where(inside, dy * values[order] * gain, torch.zeros_like(pre))

    @staticmethod
    def upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter):
        assert f.ndim == 2 and f.dtype == torch.float32
        return upfirdn2d._upfirdn2d_ref(x, f.to(x.dtype), (upx, upy), (downx, downy), (px0, px1, py0, py1),
                                        flip_filter, 1)


@pytest.mark.parametrize("act", sorted(bias_act.activation_funcs))
def test_compiled_bias_act_wiring_matches_reference(act):
    x, b = _rand(2, 3, 2, 2), _rand(3)
    args = (1, act, 0.3, 1.7, 0.9)

    def compiled(x, b):
        return bias_act._bias_act_compiled(_FakePlugin, x, b, *args)

    def reference(x, b):
        return bias_act._bias_act_ref(x, b, *args)

    _assert_same_two_orders(compiled, reference, (x, b))
    _check_both_orders(compiled, (x, b))


@pytest.mark.parametrize("cfg", UPFIRDN_CONFIGS, ids=[str(i) for i in range(len(UPFIRDN_CONFIGS))])
def test_compiled_upfirdn2d_wiring_matches_reference(cfg):
    up = upfirdn2d._parse_scaling(cfg.get("up", 1), "up")
    down = upfirdn2d._parse_scaling(cfg.get("down", 1), "down")
    pads = upfirdn2d._parse_padding(cfg.get("padding", 0))
    flip, gain = cfg.get("flip_filter", False), cfg.get("gain", 1)
    x = _rand(1, 2, 5, 4)
    for f in (torch.randn(3, 2), torch.randn(4)):
        def compiled(x):
            return upfirdn2d._upfirdn2d_compiled(_FakePlugin, x, f, up, down, pads, flip, gain)

        def reference(x):
            return upfirdn2d._upfirdn2d_ref(x, f.to(D), up, down, pads, flip, gain)

        _assert_same_two_orders(compiled, reference, (x,))


def _assert_same_two_orders(fn_a, fn_b, inputs):
    """Same values, gradients and second-order gradients (through a squared-gradient penalty)."""
    outputs = []
    for fn in (fn_a, fn_b):
        y = fn(*inputs)
        dy = torch.linspace(-1, 1, y.numel(), dtype=D).reshape(y.shape)
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
        penalty = sum((g * g).sum() for g in grads)
        if penalty.requires_grad:
            grads2 = torch.autograd.grad(penalty, inputs, allow_unused=True)
        else:  # the gradient does not depend on the inputs (piecewise-linear activations)
            grads2 = [None] * len(inputs)
        grads2 = [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads2)]
        outputs.append([y.detach()] + [g.detach() for g in grads] + grads2)
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


def test_fma_per_sample_gradients_under_vmap():
    from torch.func import grad, vmap

    from torch_utils.ops import fma

    a, b, c = torch.randn(5, 3, 4), torch.randn(3, 1), torch.randn(5, 3, 4)
    per_sample = vmap(grad(lambda b_, a_, c_: fma.fma(a_, b_, c_).square().sum()), in_dims=(None, 0, 0))(b, a, c)
    expected = torch.stack([torch.autograd.grad(torch.addcmul(c[i], a[i], b.requires_grad_()).square().sum(), b)[0]
                            for i in range(5)])
    torch.testing.assert_close(per_sample, expected)
