"""`stylegan-unlearn extrapolate`: the task-vector baseline θ_G + γ(θ_G − mean θ_N) as a new pkl.

A click wrapper around `stylegan_unlearn.method.extrapolate.extrapolate_files`; defaults from the method's
option table.
"""
from typing import Sequence

import click

from stylegan_unlearn.commands.cliutil import FINITE_FLOAT, one_line_errors
from stylegan_unlearn.method import options
from stylegan_unlearn.method.extrapolate import extrapolate_files

__all__ = ["extrapolate_command"]


@click.command("extrapolate")
@click.option("--network", required=True, metavar="PKL", help="Pretrained network pickle (θ_G).")
@click.option("--adapted", required=True, multiple=True, metavar="PKL",
              help="Adapted (negative) network pickle θ_N; repeat for K networks.")
@click.option("--gamma", type=FINITE_FLOAT, default=options.default("extrapolate_gamma"), show_default=True,
              help="Step away from the adapted networks: θ_G + γ(θ_G − mean θ_N).")
@click.option("--params", type=click.Choice(["all", "synthesis"]), default=options.default("params", "extrapolate"),
              show_default=True, help="Which generator parameters move.")
@click.option("--out", required=True, metavar="PKL", help="Where to write the extrapolated pickle.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it already exists.")
@one_line_errors
def extrapolate_command(network: str, adapted: Sequence[str], gamma: float, params: str, out: str,
                        overwrite: bool) -> None:
    """Extrapolate a pretrained generator away from adapted (negative) generators."""
    extrapolate_files(network, adapted, gamma, out, params, overwrite=overwrite)
    click.echo(f"wrote {out} (γ = {gamma}, {len(adapted)} adapted network(s), params = {params})")
