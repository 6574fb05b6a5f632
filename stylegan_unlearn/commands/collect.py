"""`stylegan-unlearn collect`: negative and positive samples as reference-format dataset zips.

A click wrapper around `stylegan_unlearn.samples.collect_to_zips`; see that module for what is written.
"""
import click

from stylegan_unlearn.commands.cliutil import FINITE_FLOAT, IntRanges, one_line_errors, sampling_options
from stylegan_unlearn.samples import collect_to_zips

__all__ = ["collect_command"]


@click.command("collect")
@click.option("--network", "network_pkl", required=True, help="Network pkl (its G_ema generates the samples).")
@click.option("--seeds", type=IntRanges(), default=None, help="Seeds to generate and sort, e.g. '0-999'.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Where to write the zips and sheets.")
@click.option("--classifier", default=None, help="TorchScript file or 'module:function' that spots the feature.")
@click.option("--target-class", type=int, default=None, help="Which classifier output is the feature.")
@click.option("--threshold", type=FINITE_FLOAT, default=None,
              help="Score at or above which an image has the feature (default: logit 0, or arg-max for class logits).")
@click.option("--resize", default=None, help="Resize images for the classifier: '224' or 'WxH'.")
@click.option("--negative-seeds", type=IntRanges(), default=None,
              help="Seeds you picked as having the feature, e.g. '3,17,40-45'; other --seeds become positives.")
@click.option("--negatives-dir", default=None, type=click.Path(), help="Folder of your own images with the feature.")
@click.option("--positives-dir", default=None, type=click.Path(), help="Folder of your own images without it.")
@click.option("--class", "class_idx", type=int, default=None,
              help="Class for conditional networks (default: seed % c_dim; labels user images).")
@click.option("--splits", type=click.IntRange(min=1), default=None,
              help="Also write K disjoint negative sets negatives-1.zip … negatives-K.zip, one per adapted model.")
@click.option("--negatives-per-split", type=click.IntRange(min=1), default=None,
              help="Negatives in each split (the first K·N found) [default: all found, split evenly].")
@sampling_options
@one_line_errors
def collect_command(network_pkl, seeds, outdir, classifier, target_class, threshold, resize, negative_seeds,
                    negatives_dir, positives_dir, class_idx, splits, negatives_per_split, truncation_psi, noise_mode,
                    batch_size, device):
    """Collect negatives (with the feature) and positives (without) as dataset zips.

    \b
    By classifier:  stylegan-unlearn collect --network net.pkl --seeds 0-999 --classifier glasses.pt --outdir out
    By picked seeds: stylegan-unlearn collect --network net.pkl --seeds 0-63 --negative-seeds 3,17,40-45 --outdir out
    From your images: stylegan-unlearn collect --network net.pkl --negatives-dir mine/ --seeds 0-999 --classifier c.pt --outdir out
    """
    collect_to_zips(network_pkl, outdir, seeds=seeds, classifier=classifier, target_class=target_class,
                    threshold=threshold, resize=resize, negative_seeds=negative_seeds, negatives_dir=negatives_dir,
                    positives_dir=positives_dir, class_idx=class_idx, splits=splits,
                    negatives_per_split=negatives_per_split, truncation_psi=truncation_psi, noise_mode=noise_mode,
                    batch_size=batch_size, device=device, log=click.echo, warn=lambda line: click.echo(line, err=True))
