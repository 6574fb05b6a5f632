"""`stylegan-unlearn convert`: a stylegan2-pytorch checkpoint -> a reference network pickle.

A click wrapper around `stylegan_unlearn.convert.convert_checkpoint_file`.
"""
import click

from stylegan_unlearn.commands.cliutil import one_line_errors
from stylegan_unlearn.convert import DEFAULT_W_AVG_SAMPLES, convert_checkpoint_file

__all__ = ["convert_command"]


@click.command("convert")
@click.option("--src", "src", required=True, type=click.Path(dir_okay=False),
              help="stylegan2-pytorch checkpoint (.pt with 'g', 'd', 'g_ema').")
@click.option("--dst", "dst", required=True, type=click.Path(dir_okay=False),
              help="Network pickle to write (StyleGAN2-ADA layout).")
@click.option("--w-avg-samples", default=DEFAULT_W_AVG_SAMPLES, show_default=True, type=click.IntRange(min=1),
              help="Latents averaged for w_avg when the checkpoint has no 'latent_avg'.")
@click.option("--allow-pickle", is_flag=True,
              help="Load checkpoints that hold arbitrary Python objects (runs their pickle code: trusted files only).")
@click.option("--overwrite", is_flag=True, help="Replace --dst if it exists.")
@one_line_errors
def convert_command(src: str, dst: str, w_avg_samples: int, allow_pickle: bool, overwrite: bool) -> None:
    """Convert a stylegan2-pytorch checkpoint into a network pickle."""
    click.echo(convert_checkpoint_file(src, dst, w_avg_samples=w_avg_samples, allow_pickle=allow_pickle,
                                       overwrite=overwrite))
