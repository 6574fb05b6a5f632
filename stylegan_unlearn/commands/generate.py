"""`stylegan-unlearn generate`: one PNG per seed plus a labelled contact sheet for picking seeds by eye.

Seeds become images by the one convention of `stylegan_unlearn.seeds` (the reference generate.py's
latents; class `seed % c_dim` for conditional networks unless `--class` is given), so a seed names the
same image here as in `collect`, `evaluate` and `report`.
"""
import os
from typing import List, Optional

import click

from stylegan_unlearn.commands.cliutil import IntRanges, one_line_errors, sampling_options
from stylegan_unlearn.device import resolve_device
from stylegan_unlearn.fileio import check_writable_dir
from stylegan_unlearn.images import quantize, save_contact_sheet, save_png
from stylegan_unlearn.pkl import NetworkPklError, describe_network, load_generator
from stylegan_unlearn.seeds import generate_all

__all__ = ["generate_command"]

CONTACT_SHEET = "contact_sheet.png"


@click.command("generate")
@click.option("--network", "network_pkl", required=True, metavar="PKL", help="Network pickle (path or URL).")
@click.option("--seeds", type=IntRanges(), required=True, help="Seeds, e.g. '0-63' or '3,17,40-45'.")
@click.option("--class", "class_idx", type=int, default=None,
              help="Class for conditional networks (default: seed % c_dim).")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Where to write the PNGs.")
@click.option("--safe/--unsafe", default=True, show_default=True,
              help="--unsafe runs the network code stored in the pickle; only for files you trust.")
@sampling_options
@one_line_errors
def generate_command(network_pkl: str, seeds: List[int], class_idx: Optional[int], outdir: str, safe: bool,
                     truncation_psi: float, noise_mode: str, batch_size: int, device: str) -> None:
    """Write seedNNNN.png for each seed and a contact sheet labelled with the seeds."""
    check_writable_dir(outdir, "--outdir")
    device = resolve_device(device)
    try:
        G = load_generator(network_pkl, device=device, safe=safe)
    except NetworkPklError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Loaded {describe_network(G)}")
    images = quantize(generate_all(G, seeds, batch_size=batch_size, truncation_psi=truncation_psi,
                                   noise_mode=noise_mode, class_idx=class_idx, device=device))
    images = images.permute(0, 2, 3, 1).numpy()
    os.makedirs(outdir, exist_ok=True)
    for seed, image in zip(seeds, images):
        save_png(image, os.path.join(outdir, f"seed{seed:04d}.png"))
    save_contact_sheet(images, [str(s) for s in seeds], os.path.join(outdir, CONTACT_SHEET))
    click.echo(f"Wrote {len(seeds)} images and {CONTACT_SHEET} to {outdir}")
