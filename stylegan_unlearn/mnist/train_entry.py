"""`stylegan-unlearn train` as the MNIST demo and benchmark run it: path-length regularisation and style
mixing off in every mode, and an optional `--ema-kimg` for the G_ema half-life.

* The bundled generator was pretrained without path length or style mixing, so the official
  Stage-1/2 defaults (path length 2, style mixing 0.9) would switch on a regulariser whose running
  mean starts at zero; for the first hundred steps it shrinks every image-to-latent Jacobian and
  pulls samples toward one blurry blob, which the judge reads as an "8".
* The official G_ema decay (half-life 312 steps) is longer than the CPU-sized runs here (60-200
  steps), so their G_ema would barely move; `--ema-kimg` sets the half-life in thousands of images.
Everything else is the project's own `train` command, unchanged.

    python3 -m stylegan_unlearn.mnist.train_entry --ema-kimg 0.1 --mode unlearn ...   (options of `train`)
"""
import sys
from typing import List, Optional, Tuple

from stylegan_unlearn import train_cli

REGULARISERS = dict(pl_weight=0, style_mixing_prob=0)


def pop_ema_kimg(argv: List[str]) -> Tuple[Optional[float], List[str]]:
    """Take `--ema-kimg X` (or `--ema-kimg=X`) out of the arguments; the rest go to `train`."""
    rest, value = [], None
    args = iter(argv)
    for arg in args:
        if arg == "--ema-kimg" or arg.startswith("--ema-kimg="):
            text = arg.split("=", 1)[1] if "=" in arg else next(args, None)
            try:
                value = float(text)
            except (TypeError, ValueError):
                raise SystemExit(f"--ema-kimg needs a positive number, got {text!r}") from None
            if value <= 0:
                raise SystemExit(f"--ema-kimg needs a positive number, got {text!r}")
        else:
            rest.append(arg)
    return value, rest


def main(argv: Optional[List[str]] = None) -> None:
    ema_kimg, rest = pop_ema_kimg(list(sys.argv[1:] if argv is None else argv))
    train_cli.OFFICIAL.update(REGULARISERS)
    if ema_kimg is not None:
        build = train_cli.build_training_options

        def build_with_ema(opts):
            desc, args = build(opts)
            if "ema_kimg" in args:
                args.ema_kimg = ema_kimg
            return desc, args
        train_cli.build_training_options = build_with_ema
    train_cli.train_command.main(args=rest, prog_name="stylegan-unlearn train")


if __name__ == "__main__":
    main()
