"""Tiny network pkls for the patch tests: a pretrained θ_G whose G and G_ema differ, an adapted θ_N, and
a network of another architecture."""
from pathlib import Path
from typing import Tuple

import torch

from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator
from stylegan_unlearn.pkl import save_network_pkl

RESOLUTION = 16


def tiny_networks(seed: int, channel_max: int = 8, mapping_layers: int = 2) -> Tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=RESOLUTION, img_channels=1,
                  mapping_kwargs=dict(num_layers=mapping_layers),
                  synthesis_kwargs=dict(channel_base=64, channel_max=channel_max))
    D = Discriminator(c_dim=0, img_resolution=RESOLUTION, img_channels=1, channel_base=64, channel_max=8)
    return G, D


def moved_copy(G: Generator, scale: float, seed: int) -> Generator:
    """A copy of G with every parameter moved by N(0, scale²) noise."""
    copy = Generator(**G.init_kwargs)
    copy.load_state_dict(G.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return copy


def write_pretrained(path: Path, seed: int = 0) -> Path:
    """θ_G: G_ema differs from G, as in any trained pkl, so that starting from the wrong one shows."""
    G, D = tiny_networks(seed)
    save_network_pkl(str(path), dict(G=G, D=D, G_ema=moved_copy(G, 0.05, seed + 1), augment_pipe=None,
                                     training_set_kwargs=None))
    return path


def write_adapted(path: Path, pretrained: Path, seed: int = 7) -> Path:
    """θ_N: the pretrained G_ema moved a little, saved the way --mode=adapt writes it."""
    from stylegan_unlearn.pkl import load_network_pkl
    data = load_network_pkl(str(pretrained))
    G_N = moved_copy(data["G_ema"], 0.01, seed)
    save_network_pkl(str(path), dict(G=G_N, D=data["D"], G_ema=G_N, augment_pipe=None, training_set_kwargs=None))
    return path


def write_other_architecture(path: Path) -> Path:
    """A network with wider synthesis layers than `tiny_networks(...)` makes by default."""
    G, D = tiny_networks(3, channel_max=16)
    save_network_pkl(str(path), dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    return path
