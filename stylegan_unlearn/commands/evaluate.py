"""`stylegan-unlearn evaluate`: PUL, FID, KID, Ret-FID and attribute drift of networks on fixed seeds.

A click wrapper around `stylegan_unlearn.evaluate.evaluate_networks`; see that module for what is measured.
"""
import os

import click

from stylegan_unlearn.commands.cliutil import FINITE_FLOAT, IntRanges, one_line_errors, sampling_options
from stylegan_unlearn.evaluate import evaluate_networks, format_table
from stylegan_unlearn.metrics import drift_markdown

__all__ = ["evaluate_command"]


@click.command("evaluate")
@click.option("--network", "networks", multiple=True, required=True,
              help="Network pkl, optionally NAME=PATH; repeat. The first is the original.")
@click.option("--seeds", type=IntRanges(), default="0-999", show_default=True, help="Fixed seeds for every network.")
@click.option("--classifier", default=None, help="TorchScript file or 'module:function' that spots the feature (PUL).")
@click.option("--target-class", type=int, default=None, help="Which classifier output is the feature.")
@click.option("--threshold", type=FINITE_FLOAT, default=None, help="Score threshold (default: logit 0, or arg-max).")
@click.option("--resize", default=None, help="Resize images for the classifiers: '224' or 'WxH'.")
@click.option("--reference", default=None, type=click.Path(), help="Reference images (zip/folder) for FID and KID.")
@click.option("--detector", "detector_spec", default=None,
              help="Feature detector file or URL [default: the reference inception-2015-12-05.pt URL].")
@click.option("--ret-reference-network", default=None, help="Network pkl whose samples Ret-FID compares against.")
@click.option("--ret-seeds", type=IntRanges(), default=None,
              help="Seeds for the Ret-FID reference network [default: --seeds, i.e. paired latents; give a "
                   "disjoint range for independent samples].")
@click.option("--attributes", default=None, help="Multi-output classifier for the attribute drift table.")
@click.option("--attribute-names", default=None, help="Comma-separated names, or a file with one name per line.")
@click.option("--attribute-threshold", type=FINITE_FLOAT, default=None,
              help="Attribute present when its score ≥ this (multi-label); default: arg-max class only.")
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True,
              help="KID: number of random subsets averaged.")
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True,
              help="KID: samples per subset (capped by the smaller set).")
@click.option("--class", "class_idx", type=int, default=None, help="Class for conditional networks (default seed % c_dim).")
@sampling_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@one_line_errors
def evaluate_command(networks, seeds, classifier, target_class, threshold, resize, reference, detector_spec,
                     ret_reference_network, ret_seeds, attributes, attribute_names, attribute_threshold, kid_subsets,
                     kid_subset_size, class_idx, truncation_psi, noise_mode, batch_size, device, out):
    """Measure PUL, FID, KID, Ret-FID and attribute drift of networks on fixed seeds.

    \b
    stylegan-unlearn evaluate --network original=ffhq.pkl --network unlearned=run/network-final.pkl \\
        --seeds 0-999 --classifier glasses.pt --reference no-glasses.zip --out eval/
    """
    summary = evaluate_networks(networks, seeds, out, classifier=classifier, target_class=target_class,
                                threshold=threshold, resize=resize, reference=reference, detector=detector_spec,
                                ret_reference_network=ret_reference_network, ret_seeds=ret_seeds,
                                attributes=attributes, attribute_names=attribute_names,
                                attribute_threshold=attribute_threshold, kid_subsets=kid_subsets,
                                kid_subset_size=kid_subset_size, class_idx=class_idx, truncation_psi=truncation_psi,
                                noise_mode=noise_mode, batch_size=batch_size, device=device, log=click.echo)
    click.echo(format_table(summary))
    if summary["drift"]:
        click.echo("\nAttribute shares (change from the original):\n" + drift_markdown(summary["drift"]["rows"]))
    click.echo(f"Wrote {os.path.join(out, 'summary.json')}")
