"""Fused multiply-add `a * b + c` with gradients reduced back to each operand's broadcast shape."""
import torch


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Return `a * b + c` (broadcasting like `torch.addcmul`), differentiable to any order."""
    return _FusedMultiplyAdd.apply(a, b, c)


def _unbroadcast(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum `grad` over the dimensions along which an operand of `shape` was broadcast."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(list(range(extra)))
    dims = [i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1]
    if dims:
        grad = grad.sum(dims, keepdim=True)
    return grad


class _FusedMultiplyAdd(torch.autograd.Function):
    generate_vmap_rule = True  # per-sample gradients (torch.func.vmap, e.g. the EWC Fisher) go through it

    @staticmethod
    def forward(a, b, c):
        return torch.addcmul(c, a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, c = inputs
        ctx.save_for_backward(a, b)
        ctx.shapes = (a.shape, b.shape, c.shape)

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        a_shape, b_shape, c_shape = ctx.shapes
        da = _unbroadcast(dout * b, a_shape) if ctx.needs_input_grad[0] else None
        db = _unbroadcast(dout * a, b_shape) if ctx.needs_input_grad[1] else None
        dc = _unbroadcast(dout, c_shape) if ctx.needs_input_grad[2] else None
        return da, db, dc
