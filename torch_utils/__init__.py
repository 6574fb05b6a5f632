"""Compatibility layer with the reference StyleGAN `torch_utils` package.

Official network pickles name `torch_utils.persistence`, and the network source they embed
imports `torch_utils.misc` and `torch_utils.ops.*`; this package provides those names with the
same public behaviour so such pickles unpickle and run here.
"""
