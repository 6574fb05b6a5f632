"""Patcher that adds `--mode=adapt|unlearn` to a user's own stylegan2-ada-pytorch or stylegan3 checkout."""
