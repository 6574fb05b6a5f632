"""`train.py` / `stylegan-unlearn train`: the reference training options plus `--mode` for Adapt-then-Unlearn.

A click wrapper around `stylegan_unlearn.training` (see there for the modes and what a run writes). Each
option's default comes from the one table `stylegan_unlearn.training.DEFAULTS`, and the method's options
(`--adapted`, `--repulsion`, ..., `--extrapolate-gamma`) from `stylegan_unlearn.method.options`, the table
the patch blocks read too.
"""
from typing import Any, Dict

import click

from stylegan_unlearn.commands.given import options_given
from stylegan_unlearn.loop.launch import LaunchError
from stylegan_unlearn.loop.training_loop import NonFiniteError
from stylegan_unlearn.method import options as method_options
from stylegan_unlearn.training import CFG_SPECS, DEFAULTS, MODES, UserError, run_training, training_options

__all__ = ["train_command", "method_option"]


def method_option(name: str):
    """The click option of method option `name`, from the one table (`stylegan_unlearn.method.options`)."""
    entry = method_options.option(name)
    kwargs: Dict[str, Any] = dict(help=f"{entry.help} ({'/'.join(entry.stages)})", multiple=entry.multiple)
    if entry.kind == "pkl":
        kwargs["metavar"] = "PKL"
    elif entry.kind == "dataset":
        kwargs["metavar"] = "PATH"
    elif entry.kind == "choice":
        kwargs["type"] = click.Choice(list(entry.choices))
    elif entry.kind == "int":
        kwargs["type"] = click.IntRange(min=entry.minimum) if entry.minimum is not None else int
    else:
        kwargs["type"] = float
    if entry.default is not None:
        kwargs.update(default=DEFAULTS[name], show_default=True)
    elif entry.shown_default():
        kwargs["help"] += f" [default: {entry.shown_default()}]"
    return click.option(entry.flag, **kwargs)


@click.command("train", context_settings=dict(help_option_names=["-h", "--help"]))
@click.option("--outdir", help="Where to make the run directory", required=True, metavar="DIR")
@click.option("--mode", type=click.Choice(MODES), default=DEFAULTS["mode"], show_default=True,
              help="train, adapt (Stage 1, EWC), unlearn (Stage 2, repulsion) or extrapolate (baseline)")
@click.option("--data", help="Training data: folder or zip (negatives for adapt, positives for unlearn)",
              metavar="PATH")
@click.option("--resume", help="Network pkl to start from (required by adapt/unlearn/extrapolate)", metavar="PKL")
@method_option("adapted")
@click.option("--gpus", type=int, default=DEFAULTS["gpus"], show_default=True,
              help="Number of GPUs (on CPU: number of processes)", metavar="INT")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default=DEFAULTS["device"], show_default=True,
              help="Where to train")
@click.option("--batch", type=int, help="Total batch size", metavar="INT")
@click.option("--batch-gpu", type=int, help="Images per GPU per accumulation round", metavar="INT")
@click.option("--kimg", type=float, help="Training duration in thousands of images", metavar="KIMG")
@click.option("--tick", type=float, help="Thousands of images per progress line", metavar="KIMG")
@click.option("--snap", type=int, help="Snapshot interval in ticks", metavar="TICKS")
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True, help="Random seed", metavar="INT")
@click.option("--cond", type=bool, default=DEFAULTS["cond"], show_default=True, help="Train a conditional model (labels)")
@click.option("--subset", type=int, help="Train on only N images", metavar="INT")
@click.option("--mirror", type=bool, default=DEFAULTS["mirror"], show_default=True, help="Add x-flipped copies of the data")
@click.option("--cfg", type=click.Choice(list(CFG_SPECS)), default=DEFAULTS["cfg"], show_default=True,
              help="Base configuration (train mode)")
@click.option("--gamma", type=float, help="R1 regularisation weight", metavar="FLOAT")
@click.option("--glr", type=float, help="Generator learning rate", metavar="FLOAT")
@click.option("--dlr", type=float, help="Discriminator learning rate", metavar="FLOAT")
@click.option("--aug", type=click.Choice(["noaug", "fixed", "ada"]), default=DEFAULTS["aug"], show_default=True,
              help="Differentiable augmentation of D's inputs (translation, cutout, colour)")
@click.option("--p", type=float, help="Augmentation probability for --aug=fixed", metavar="FLOAT")
@click.option("--target", type=float, help="ADA target for --aug=ada [default: 0.6]", metavar="FLOAT")
@click.option("--augpipe", default=DEFAULTS["augpipe"], show_default=True,
              help="Comma list of xflip, translation, cutout, color")
@click.option("--freezed", type=int, default=DEFAULTS["freezed"], show_default=True, help="Freeze the first D layers", metavar="INT")
@click.option("--fp32", type=bool, default=DEFAULTS["fp32"], help="Disable mixed precision [default: on CPU only]")
@click.option("--workers", type=click.IntRange(min=0), default=DEFAULTS["workers"], show_default=True,
              help="DataLoader worker processes [default: 3, at most the CPU count]", metavar="INT")
@click.option("--cbase", type=int, help="Capacity multiplier channel_base (train mode)", metavar="INT")
@click.option("--cmax", type=int, help="Max. feature maps channel_max (train mode)", metavar="INT")
@click.option("--map", type=int, help="Mapping network depth (train mode)", metavar="INT")
@click.option("--zdim", type=int, help="Latent z dimension (train mode) [default: 512]", metavar="INT")
@click.option("--wdim", type=int, help="Intermediate w dimension (train mode) [default: 512]", metavar="INT")
@click.option("--mbstd-group", type=int, help="Minibatch-std group size (train mode)", metavar="INT")
@click.option("--pl-weight", type=click.FloatRange(min=0), help="Path-length regularisation weight "
              "[default: 2; cifar 0]", metavar="FLOAT")
@click.option("--style-mixing", type=click.FloatRange(0, 1), help="Style-mixing probability [default: 0.9; cifar 0]",
              metavar="FLOAT")
@click.option("--ema-kimg", type=click.FloatRange(min=0, min_open=True),
              help="G_ema half-life in thousands of images [default: preset; adapt/unlearn: batch·10/32]",
              metavar="KIMG")
@method_option("ewc_lambda")
@method_option("fisher_samples")
@method_option("params")
@method_option("repulsion")
@method_option("repulsion_weight")
@method_option("alpha")
@method_option("distance")
@method_option("negatives")
@method_option("negative_weight")
@method_option("loss_settings")
@method_option("extrapolate_gamma")
@click.option("--metrics", default=DEFAULTS["metrics"], show_default=True, metavar="LIST",
              help="Accepted for compatibility; metrics run afterwards with `stylegan-unlearn evaluate`")
@click.option("--desc", help="String to append to the run directory name", metavar="STR")
@click.option("-n", "--dry-run", is_flag=True, help="Print the options and exit")
def train_command(**kwargs) -> None:
    """Train a StyleGAN2 network, adapt it to negatives, unlearn them, or extrapolate (see --mode).

    \b
    Typical Adapt-then-Unlearn run (pretrained.pkl = θ_G):
      python train.py --mode=adapt --outdir=runs --data=negatives.zip --resume=pretrained.pkl
      python train.py --mode=unlearn --outdir=runs --data=positives.zip --resume=pretrained.pkl \\
          --adapted=runs/00000-adapt-.../network-snapshot-000032.pkl --negatives=negatives.zip
    \b
    Defaults of adapt/unlearn (the official recipe, printed by each run): batch 16, lr 0.002,
    gamma 10, path-length weight 2, style mixing 0.9 (but the pretraining's own three where its
    training_options.json lies beside --resume), EMA 5 kimg at batch 16, no augmentation,
    both start from the pkl's G_ema; adapt: 32 kimg (2000 steps), EWC on synthesis layers,
    λ 5e8, 32 Fisher samples; unlearn: 16 kimg (1000 steps), NL2 repulsion on all G parameters
    (relative distance, w 0.1; EL2 w 10, α 0.1; --distance official for the official strength);
    --negatives also shows D the negatives as fakes (not in the paper; it removes far more of the
    feature, see the README). Both take the architecture from
    --resume; --resume on a snapshot of the same kind of run (same loss and data) with its
    .resume.pt sidecar continues that run (kimg, optimizers, EMA, augmentation).
    """
    opts = training_options(**kwargs)
    try:
        run_training(opts, given=options_given(kwargs))
    except (UserError, ValueError, FileNotFoundError, LaunchError, NonFiniteError) as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        raise click.ClickException(f"{err.strerror or err}: {err.filename or ''}".strip(": ")) from None


if __name__ == "__main__":
    train_command()
