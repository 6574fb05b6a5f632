"""Network definitions with the reference StyleGAN2-ADA state-dict layout.

`stylegan2` is self-contained (it travels inside pickles); this package only re-exports it.
"""
from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator

__all__ = ["Generator", "Discriminator"]
