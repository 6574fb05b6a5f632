"""StyleGAN's custom ops: same public names, signatures and numerics as the reference `torch_utils.ops`.

Each module holds one op: the public function, a pure-PyTorch reference path (used everywhere,
with gradients of every order needed by R1 and path-length regularisation), and where it pays off
a compiled CUDA path built on first use by `torch_utils.custom_ops`.
"""
