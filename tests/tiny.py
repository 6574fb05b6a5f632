"""Tiny networks and stand-ins shared by the tests (conftest's directory is on sys.path: `from tiny import ...`).

* `tiny_generator` / `tiny_discriminator` / `tiny_networks`: StyleGAN2 G/D small enough for CPU tests
  (z = w = 8, 16×16, 2 mapping layers). The default channels (base 64, max 8) are the loss, Fisher and
  patch tests' networks; `WIDE` (base 128, max 16) the pkl, snapshot and sampling tests'.
* `sampling_generator` / `tiny_network_pkl`: the generator (eval, no gradients) and pkl of the
  collect / evaluate / report / CLI tests.
* `FakeDDP`: stands in for DistributedDataParallel (the real module sits at `.module`).
* `write_pretrained` / `write_adapted` / `write_other_architecture`: pkls for the patch tests: a
  pretrained θ_G whose G and G_ema differ, an adapted θ_N, and a network of another architecture.
"""
import copy
from pathlib import Path
from typing import Optional, Tuple

import torch

from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator
from stylegan_unlearn.pkl import load_network_pkl, save_network_pkl

RESOLUTION = 16
NARROW = dict(channel_base=64, channel_max=8)
WIDE = dict(channel_base=128, channel_max=16)


def tiny_generator(*, c_dim: int = 0, img_resolution: int = RESOLUTION, img_channels: int = 1,
                   channel_base: int = 64, channel_max: int = 8, mapping_layers: int = 2,
                   seed: Optional[int] = None, **synthesis_kwargs) -> Generator:
    """A randomly initialised generator (after `torch.manual_seed(seed)` when a seed is given)."""
    if seed is not None:
        torch.manual_seed(seed)
    return Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=img_resolution, img_channels=img_channels,
                     mapping_kwargs=dict(num_layers=mapping_layers),
                     synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, **synthesis_kwargs))


def tiny_discriminator(*, c_dim: int = 0, img_resolution: int = RESOLUTION, img_channels: int = 1,
                       channel_base: int = 64, channel_max: int = 8, **kwargs) -> Discriminator:
    """A randomly initialised discriminator matching `tiny_generator`'s images."""
    return Discriminator(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                         channel_base=channel_base, channel_max=channel_max, **kwargs)


def tiny_networks(seed: Optional[int] = 0, *, c_dim: int = 0, img_channels: int = 1, channel_base: int = 64,
                  channel_max: int = 8, d_channel_base: Optional[int] = None, d_channel_max: Optional[int] = None,
                  mapping_layers: int = 2) -> Tuple[Generator, Discriminator]:
    """(G, D), seeded once before G (D's channels default to G's)."""
    G = tiny_generator(c_dim=c_dim, img_channels=img_channels, channel_base=channel_base, channel_max=channel_max,
                       mapping_layers=mapping_layers, seed=seed)
    D = tiny_discriminator(c_dim=c_dim, img_channels=img_channels,
                           channel_base=channel_base if d_channel_base is None else d_channel_base,
                           channel_max=channel_max if d_channel_max is None else d_channel_max)
    return G, D


def sampling_generator(resolution: int = 16, channels: int = 3, c_dim: int = 0, seed: int = 0) -> Generator:
    """The sampling tests' generator: `WIDE` channels, eval mode, no gradients."""
    G = tiny_generator(c_dim=c_dim, img_resolution=resolution, img_channels=channels, seed=seed, **WIDE)
    return G.eval().requires_grad_(False)


def tiny_network_pkl(path: Path, **kwargs) -> str:
    """Write `sampling_generator(**kwargs)` with a matching D as a reference-layout network pkl."""
    G = sampling_generator(**kwargs)
    D = tiny_discriminator(c_dim=G.c_dim, img_resolution=G.img_resolution, img_channels=G.img_channels, **WIDE)
    save_network_pkl(str(path), {"G": G, "D": D, "G_ema": copy.deepcopy(G), "augment_pipe": None,
                                 "training_set_kwargs": None})
    return str(path)


class FakeDDP(torch.nn.Module):
    """Stands in for DistributedDataParallel: the real module is at `.module`."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def moved_copy(G: Generator, scale: float, seed: int) -> Generator:
    """A copy of G with every parameter moved by N(0, scale²) noise."""
    moved = Generator(**G.init_kwargs)
    moved.load_state_dict(G.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return moved


def write_pretrained(path: Path, seed: int = 0) -> Path:
    """θ_G: G_ema differs from G, as in any trained pkl, so that starting from the wrong one shows."""
    G, D = tiny_networks(seed, d_channel_max=8)
    save_network_pkl(str(path), dict(G=G, D=D, G_ema=moved_copy(G, 0.05, seed + 1), augment_pipe=None,
                                     training_set_kwargs=None))
    return path


def write_adapted(path: Path, pretrained: Path, seed: int = 7) -> Path:
    """θ_N: the pretrained G_ema moved a little, saved the way --mode=adapt writes it."""
    data = load_network_pkl(str(pretrained))
    G_N = moved_copy(data["G_ema"], 0.01, seed)
    save_network_pkl(str(path), dict(G=G_N, D=data["D"], G_ema=G_N, augment_pipe=None, training_set_kwargs=None))
    return path


def write_other_architecture(path: Path) -> Path:
    """A network with wider synthesis layers than `tiny_networks(...)` makes by default."""
    G, D = tiny_networks(3, channel_max=16, d_channel_max=8)
    save_network_pkl(str(path), dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    return path


def write_patch_pkls(root):
    """pre.pkl (a pretrained tiny network), adapted.pkl (adapted from it) and other.pkl (another architecture)."""
    pre = write_pretrained(root / "pre.pkl")
    write_adapted(root / "adapted.pkl", pre)
    write_other_architecture(root / "other.pkl")
    return root
