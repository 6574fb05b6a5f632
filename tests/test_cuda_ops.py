"""Compiled CUDA paths against the reference paths, on a GPU (skipped without CUDA).

Values, first-order gradients and second-order gradients (through a squared-gradient penalty,
as in R1) must agree. Fails, rather than silently comparing the reference with itself, if the
plugins do not build on a machine that has CUDA.
"""
import pytest
import torch

from torch_utils.ops import bias_act, conv2d_resample, filtered_lrelu, upfirdn2d

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def plugins():
    device = torch.device("cuda", torch.cuda.current_device())
    ba, up = bias_act._working_plugin(device), upfirdn2d._working_plugin(device)
    assert ba is not None and up is not None, "CUDA is available but the plugins did not build or run (see warning)"
    return ba, up


def _two_orders(fn, inputs, dy):
    y = fn(*inputs)
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
    penalty = sum(g.square().sum() for g in grads)
    grads2 = torch.autograd.grad(penalty, inputs, allow_unused=True) if penalty.requires_grad else [None] * len(inputs)
    grads2 = [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads2)]
    return [y.detach()] + [g.detach() for g in grads] + list(grads2)


def _assert_close_all(a, b, tol):
    for u, v in zip(a, b):
        scale = max(v.abs().max().item(), 1.0)
        assert (u.float() - v.float()).abs().max().item() <= tol * scale


@pytest.mark.parametrize("act", sorted(bias_act.activation_funcs))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bias_act_compiled_matches_reference(plugins, act, dtype):
    x = torch.randn(4, 16, 8, 8, device="cuda", dtype=dtype, requires_grad=True)
    b = torch.randn(16, device="cuda", dtype=dtype, requires_grad=True)
    dy = torch.randn_like(x)
    kwargs = dict(act=act, alpha=0.3, gain=1.4, clamp=1.5)
    cuda = _two_orders(lambda x, b: bias_act.bias_act(x, b, impl="cuda", **kwargs), (x, b), dy)
    ref = _two_orders(lambda x, b: bias_act.bias_act(x, b, impl="ref", **kwargs), (x, b), dy)
    _assert_close_all(cuda, ref, 1e-5 if dtype == torch.float32 else 1e-12)


def test_bias_act_compiled_channels_last_and_half(plugins):
    x = torch.randn(2, 8, 6, 6, device="cuda").to(memory_format=torch.channels_last)
    b = torch.randn(8, device="cuda")
    y = bias_act.bias_act(x, b, act="lrelu", clamp=0.5, impl="cuda")
    torch.testing.assert_close(y, bias_act.bias_act(x, b, act="lrelu", clamp=0.5, impl="ref"))
    yh = bias_act.bias_act(x.half(), b.half(), act="lrelu", impl="cuda")
    torch.testing.assert_close(yh.float(), bias_act.bias_act(x, b, act="lrelu", impl="ref"), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("cfg", [
    dict(up=2, padding=[2, 1, 2, 1], gain=4), dict(down=2, padding=1),
    dict(up=[2, 1], down=[1, 2], padding=[0, 1, -1, 2]),
    dict(up=3, down=2, padding=2, flip_filter=True), dict(padding=-1),
])
@pytest.mark.parametrize("separable", [False, True])
def test_upfirdn2d_compiled_matches_reference(plugins, cfg, separable):
    f = upfirdn2d.setup_filter([1, 3, 3, 1] if not separable else [1, 2, 4, 5, 5, 4, 2, 1], device="cuda")
    x = torch.randn(2, 8, 16, 16, device="cuda", requires_grad=True)
    y_ref = upfirdn2d.upfirdn2d(x, f, impl="ref", **cfg)
    dy = torch.randn_like(y_ref)
    cuda = _two_orders(lambda x: upfirdn2d.upfirdn2d(x, f, impl="cuda", **cfg).square(), (x,), dy)
    ref = _two_orders(lambda x: upfirdn2d.upfirdn2d(x, f, impl="ref", **cfg).square(), (x,), dy)
    _assert_close_all(cuda, ref, 1e-5)


def test_layers_built_on_the_ops_agree(plugins):
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device="cuda")
    x = torch.randn(2, 8, 8, 8, device="cuda")
    w = torch.randn(8, 8, 3, 3, device="cuda")
    # conv2d_resample calls upfirdn2d with its default impl='cuda'; compare with an all-reference call.
    y = conv2d_resample.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False)
    y_ref = conv2d_resample.conv2d_resample(x.cpu(), w.cpu(), f=f.cpu(), up=2, padding=1, flip_weight=False)
    torch.testing.assert_close(y.cpu(), y_ref, atol=1e-4, rtol=1e-4)
    b = torch.randn(8, device="cuda")
    kwargs = dict(up=2, down=2, padding=5, clamp=1.0)
    torch.testing.assert_close(filtered_lrelu.filtered_lrelu(x, f, f, b, impl="cuda", **kwargs),
                               filtered_lrelu.filtered_lrelu(x, f, f, b, impl="ref", **kwargs), atol=1e-5, rtol=1e-5)
