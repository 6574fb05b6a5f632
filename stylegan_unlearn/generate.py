"""`stylegan-unlearn generate`: one PNG per seed plus a labelled contact sheet for picking seeds by eye.

Seeds map to latents exactly as the reference generate.py does
(`np.random.RandomState(seed).randn(1, z_dim)`), so seed numbers mean the same images in both tools.
"""
import os
from typing import List, Optional, Sequence

import click
import numpy as np
import torch

from stylegan_unlearn.cliutil import FINITE_FLOAT, IntRanges, one_line_errors
from stylegan_unlearn.fileio import check_writable_dir
from stylegan_unlearn.images import save_contact_sheet, save_png, to_uint8
from stylegan_unlearn.pkl import NetworkPklError, describe_network, load_generator

__all__ = ["generate_command", "generate_images", "seed_to_z", "class_label"]

CONTACT_SHEET = "contact_sheet.png"


def seed_to_z(seed: int, z_dim: int) -> torch.Tensor:
    """The reference latent for `seed`: float64 [1, z_dim] from a seeded RandomState (the mapping casts)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim))


def class_label(G: torch.nn.Module, class_idx: Optional[int]) -> torch.Tensor:
    """One-hot [1, c_dim] label for conditional networks; a clear error when it is missing or out of range."""
    if G.c_dim == 0:
        if class_idx is not None:
            click.echo("warning: --class is ignored for an unconditional network", err=True)
        return torch.zeros([1, 0])
    if class_idx is None:
        raise click.ClickException(f"this network is conditional ({G.c_dim} classes): pass --class IDX "
                                   f"with 0 <= IDX < {G.c_dim}")
    if not 0 <= class_idx < G.c_dim:
        raise click.ClickException(f"--class {class_idx} is out of range: this network has classes 0..{G.c_dim - 1}")
    c = torch.zeros([1, G.c_dim])
    c[0, class_idx] = 1
    return c


@torch.no_grad()
def generate_images(G: torch.nn.Module, seeds: Sequence[int], truncation_psi: float = 1.0,
                    class_idx: Optional[int] = None, noise_mode: str = "const",
                    device: str = "cpu") -> np.ndarray:
    """Render `seeds` with G; returns NHWC uint8 images, one per seed, in seed order.

    Raises ValueError for a non-finite `truncation_psi` or when G produces NaN/Inf pixels.
    """
    if not np.isfinite(truncation_psi):
        raise ValueError(f"--trunc must be a finite number, got {truncation_psi}")
    c = class_label(G, class_idx).to(device)
    images: List[np.ndarray] = []
    for seed in seeds:
        z = seed_to_z(seed, G.z_dim).to(device)
        img = G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode)
        images.append(to_uint8(img)[0])
    return np.stack(images)


@click.command("generate")
@click.option("--network", "network_pkl", required=True, metavar="PKL", help="Network pickle (path or URL).")
@click.option("--seeds", type=IntRanges(), required=True, help="Seeds, e.g. '0-63' or '3,17,40-45'.")
@click.option("--trunc", "truncation_psi", type=FINITE_FLOAT, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Where to write the PNGs.")
@click.option("--safe/--unsafe", default=True, show_default=True,
              help="--unsafe runs the network code stored in the pickle; only for files you trust.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cpu or cuda.")
@one_line_errors
def generate_command(network_pkl: str, seeds: List[int], truncation_psi: float, class_idx: Optional[int],
                     noise_mode: str, outdir: str, safe: bool, device: str) -> None:
    """Write seedNNNN.png for each seed and a contact sheet labelled with the seeds."""
    check_writable_dir(outdir, "--outdir")
    try:
        G = load_generator(network_pkl, device=device, safe=safe)
    except NetworkPklError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Loaded {describe_network(G)}")
    images = generate_images(G, seeds, truncation_psi, class_idx, noise_mode, device)
    os.makedirs(outdir, exist_ok=True)
    for seed, image in zip(seeds, images):
        save_png(image, os.path.join(outdir, f"seed{seed:04d}.png"))
    save_contact_sheet(images, [str(s) for s in seeds], os.path.join(outdir, CONTACT_SHEET))
    click.echo(f"Wrote {len(seeds)} images and {CONTACT_SHEET} to {outdir}")
