"""`stylegan-unlearn report`: an HTML and Markdown report of an evaluation.

A click wrapper around `stylegan_unlearn.report.write_report`; see that module for what is written.
"""
import click

from stylegan_unlearn.commands.cliutil import IntRanges, one_line_errors
from stylegan_unlearn.device import DEFAULT_DEVICE, DEVICE_HELP
from stylegan_unlearn.evaluate import parse_network_spec
from stylegan_unlearn.report import write_report

__all__ = ["report_command"]


@click.command("report")
@click.option("--eval", "eval_dir", required=True, type=click.Path(file_okay=False),
              help="Directory written by 'stylegan-unlearn evaluate' (holds summary.json).")
@click.option("--network", "networks", multiple=True,
              help="Extra network for the sample grid as NAME=PKL (e.g. adapted=..., extrapolated=...); repeat.")
@click.option("--seeds", type=IntRanges(), default=None, help="Seeds for the sample grid [default: first 8 evaluated].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--embed-images", is_flag=True, help="Inline the PNGs into report.html (one self-contained file).")
@click.option("--title", default="Adapt-then-Unlearn report", show_default=True, help="Heading of the report.")
@click.option("--device", default=DEFAULT_DEVICE, show_default=True, help=DEVICE_HELP)
@one_line_errors
def report_command(eval_dir, networks, seeds, out, embed_images, title, device):
    """Write an HTML and Markdown report: same-seed grids, metric charts, drift table, options.

    \b
    stylegan-unlearn report --eval eval/ --network adapted=run-adapt/final.pkl --out report/
    """
    if seeds is not None and len(seeds) > 32:
        raise click.UsageError(f"--seeds gives {len(seeds)} seeds; a readable grid has at most 32")
    extra = [parse_network_spec(n) for n in networks]
    paths = write_report(eval_dir, out, extra, grid_seeds=seeds, embed_images=embed_images,
                         device=device, title=title, echo=click.echo)
    click.echo(f"Wrote {paths['html']} and {paths['markdown']}")
