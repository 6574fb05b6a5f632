"""Seeds: the one convention from a seed to a latent, a label and an image.

Every command maps a seed the same way (`generate`, `collect`, `evaluate`, `report`, the MNIST tools):
  * latent: z = `np.random.RandomState(seed).randn(1, z_dim)`, as the reference `generate.py` draws it,
    so seed numbers mean the same images in both tools, and the same seed on two networks gives a
    same-latent before/after pair;
  * label (conditional networks): the one-hot class `class_idx` when one is given, otherwise class
    `seed % c_dim`; unconditional networks take no class;
  * image: G(z, c, truncation_psi, noise_mode='const' by default) in batches, then `images.quantize`
    (x·127.5 + 128, clamped, truncated to uint8), as the reference metrics and generate.py do.
Seed lists ('0-63,70') are parsed and written by `stylegan_unlearn.ranges`.
"""
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from stylegan_unlearn.images import check_finite_images

__all__ = ["seed_latents", "seed_classes", "seed_labels",
           "generate_images", "generate_all"]

def seed_latents(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """float32 [N, z_dim] latents, one per seed, as the reference generate.py draws them."""
    if not len(seeds):
        return torch.zeros([0, z_dim])
    return torch.from_numpy(np.concatenate([np.random.RandomState(int(s)).randn(1, z_dim) for s in seeds])).float()


def seed_classes(seeds: Sequence[int], c_dim: int, class_idx: Optional[int] = None) -> List[Optional[int]]:
    """The class index of each seed's sample (None for unconditional networks)."""
    if not c_dim:
        if class_idx is not None:
            raise ValueError(f"--class {class_idx} given but the network is unconditional (c_dim=0)")
        return [None] * len(seeds)
    if class_idx is not None:
        if not 0 <= int(class_idx) < c_dim:
            raise ValueError(f"--class must be between 0 and {c_dim - 1} for this network, got {class_idx}")
        return [int(class_idx)] * len(seeds)
    return [int(s) % c_dim for s in seeds]


def seed_labels(seeds: Sequence[int], c_dim: int, class_idx: Optional[int] = None) -> torch.Tensor:
    """float32 [N, c_dim] one-hot labels (shape [N, 0] for unconditional networks)."""
    labels = torch.zeros([len(seeds), c_dim])
    for i, cls in enumerate(seed_classes(seeds, c_dim, class_idx)):
        if cls is not None:
            labels[i, cls] = 1
    return labels


@torch.no_grad()
def generate_images(G: torch.nn.Module, seeds: Sequence[int], batch_size: int = 16, truncation_psi: float = 1.0,
                    noise_mode: str = "const", class_idx: Optional[int] = None,
                    device: Union[str, torch.device] = "cpu") -> Iterator[Tuple[List[int], torch.Tensor]]:
    """Yield (seeds, images) batches; images are float32 NCHW in the generator's range (≈[−1, 1]) on the CPU."""
    if noise_mode not in ("const", "random", "none"):
        raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got '{noise_mode}'")
    device = torch.device(device)
    seeds = [int(s) for s in seeds]
    labels_all = seed_labels(seeds, int(G.c_dim), class_idx)
    extra = {"force_fp32": True} if device.type != "cuda" else {}
    for start in range(0, len(seeds), max(1, int(batch_size))):
        batch = seeds[start:start + batch_size]
        z = seed_latents(batch, int(G.z_dim)).to(device)
        c = labels_all[start:start + batch_size].to(device)
        images = G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode, **extra).float().cpu()
        check_finite_images(images)
        yield batch, images


def generate_all(G: torch.nn.Module, seeds: Sequence[int], **kwargs) -> torch.Tensor:
    """All images for `seeds` as one float32 NCHW tensor (see `generate_images`)."""
    batches = [images for _seeds, images in generate_images(G, seeds, **kwargs)]
    if not batches:
        return torch.zeros([0, int(G.img_channels), int(G.img_resolution), int(G.img_resolution)])
    return torch.cat(batches)
