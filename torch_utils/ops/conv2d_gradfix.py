"""`conv2d` / `conv_transpose2d` with the reference module's switches.

The reference replaced PyTorch's convolutions with custom ops (on old PyTorch versions only) to get
double backward and to skip weight gradients while computing R1 / path-length input gradients.
Current PyTorch gives both natively: convolutions have arbitrary-order gradients, and
`torch.autograd.grad(..., inputs=[x])` already skips the weight gradient. So these functions are
the `torch.nn.functional` ones, and the switches are kept for code (and pickles) that set them.
"""
import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F

enabled = False                     # the training loop sets this to True; numerics are the same either way
weight_gradients_disabled = False   # True inside `no_weight_gradients()`


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias=None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> torch.Tensor:
    """Same as `torch.nn.functional.conv2d`, with gradients of every order."""
    return F.conv2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding, dilation=dilation,
                    groups=groups)


def conv_transpose2d(input: torch.Tensor, weight: torch.Tensor, bias=None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1) -> torch.Tensor:
    """Same as `torch.nn.functional.conv_transpose2d`, with gradients of every order."""
    return F.conv_transpose2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding,
                              output_padding=output_padding, groups=groups, dilation=dilation)


@contextlib.contextmanager
def no_weight_gradients(disable: bool = True) -> Iterator[None]:
    """Mark a region that needs no weight gradients (accepts both the ADA and SG3 call forms)."""
    global weight_gradients_disabled
    previous = weight_gradients_disabled
    if disable:
        weight_gradients_disabled = True
    try:
        yield
    finally:
        weight_gradients_disabled = previous
