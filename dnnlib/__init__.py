"""Compatibility layer with the reference StyleGAN `dnnlib` package.

Pickled constructor kwargs are `dnnlib.util.EasyDict` objects, and the reference tools import
`dnnlib.EasyDict` and `dnnlib.make_cache_dir_path` from here.
"""
from . import util
from .util import EasyDict, make_cache_dir_path

__all__ = ["util", "EasyDict", "make_cache_dir_path"]
