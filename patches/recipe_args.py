"""The official recipe (`stylegan_unlearn.method.recipe`) written into a reference train.py's training-loop kwargs.

The reference scripts hand their loop one `EasyDict` (stylegan2-ada-pytorch `args`, stylegan3 `c`)
whose keys are the documented `training_loop` arguments. For every recipe setting the user did not
give, one small function below writes the recipe's value there; what the user gave, the reference
script has already applied, and it is left alone. Also here: float Adam betas, which current torch
needs. Imports only click, the standard library and the recipe table.
"""
from typing import Any, Callable, Container, Dict, List, Mapping, Optional

import click

from stylegan_unlearn.method import recipe

__all__ = ["apply_recipe", "per_gpu_batch", "use_float_betas", "RECIPE_TARGETS"]


def per_gpu_batch(batch: int, num_gpus: int, limit: int) -> int:
    """Images per GPU and accumulation round: the largest divisor of batch/num_gpus that is at most `limit`.

    `limit` is the per-GPU batch the reference configuration chose (its memory budget).
    """
    if batch < 1 or batch % num_gpus:
        raise click.UsageError(f"the recipe's batch of {batch} cannot be split over --gpus={num_gpus}; "
                               f"pass --batch with a multiple of {num_gpus}")
    per_gpu = batch // num_gpus
    return max(d for d in range(1, per_gpu + 1) if per_gpu % d == 0 and d <= max(1, limit))


def _total_kimg(args: Any, value: Any) -> None:
    args.total_kimg = value


def _batch(args: Any, value: Any) -> None:
    num_gpus = int(args.get("num_gpus") or 1)
    limit = int(args.get("batch_gpu") or value // max(num_gpus, 1) or 1)
    args.batch_gpu = per_gpu_batch(int(value), num_gpus, limit)
    args.batch_size = int(value)


def _augmentation(args: Any, value: Any) -> None:
    if value != "noaug":
        raise NotImplementedError(f"the patch blocks can only switch augmentation off, not to {value!r}")
    args.augment_kwargs = None
    args.augment_p = 0
    args.ada_target = None


def _r1_gamma(args: Any, value: Any) -> None:
    args.loss_kwargs.r1_gamma = float(value)


def _generator_lr(args: Any, value: Any) -> None:
    args.G_opt_kwargs.lr = float(value)


def _discriminator_lr(args: Any, value: Any) -> None:
    args.D_opt_kwargs.lr = float(value)


def _tick(args: Any, value: Any) -> None:
    args.kimg_per_tick = value


def _snapshot_ticks(args: Any, value: Any) -> None:
    args.image_snapshot_ticks = args.network_snapshot_ticks = int(value)


def _metrics(args: Any, value: Any) -> None:
    args.metrics = [] if value in (None, "", "none") else [m.strip() for m in str(value).split(",")]


def _ema(args: Any, value: Any) -> None:
    args.ema_kimg = float(value)
    args.ema_rampup = None


def _style_mixing(args: Any, value: Any) -> None:
    args.loss_kwargs.style_mixing_prob = float(value)


def _pl_weight(args: Any, value: Any) -> None:
    args.loss_kwargs.pl_weight = float(value)


def _G_reg_interval(args: Any, value: Any) -> None:
    args.G_reg_interval = int(value)


def _D_reg_interval(args: Any, value: Any) -> None:
    args.D_reg_interval = int(value)


# Where each recipe setting lands in the reference training-loop kwargs.
RECIPE_TARGETS: Dict[str, Callable[[Any, Any], None]] = {
    "kimg": _total_kimg, "batch": _batch, "aug": _augmentation, "gamma": _r1_gamma, "glr": _generator_lr,
    "dlr": _discriminator_lr, "tick": _tick, "snap": _snapshot_ticks, "metrics": _metrics, "ema_kimg": _ema,
    "style_mixing": _style_mixing, "pl_weight": _pl_weight, "G_reg_interval": _G_reg_interval,
    "D_reg_interval": _D_reg_interval,
}


def apply_recipe(args: Any, stage: str, user_values: Mapping[str, Any], option_names: Container[str],
                 given: Container[str], resume: Optional[str] = None) -> List[str]:
    """Write the recipe into `args` wherever the user gave no value; return the lines saying what was chosen.

    With `resume` (and --loss-settings not 'recipe') the pretraining's loss settings recorded beside
    that pkl come before the recipe's, as in our own train.py.
    """
    loss_settings = user_values.get("loss_settings") or "pretraining"
    pretraining, source = {}, None
    if resume and loss_settings != "recipe":
        try:
            pretraining, source = recipe.pretraining_values(resume)
        except ValueError as err:
            raise click.UsageError(str(err)) from None
    decisions = recipe.decide(stage, user_values, given, pretraining)
    for decision in decisions:
        if not decision.given:
            RECIPE_TARGETS[decision.setting.name](args, decision.value)
    return recipe.report_lines(stage, decisions, option_names, source, loss_settings)


def use_float_betas(args: Any) -> None:
    """Make the optimizers' Adam betas floats: the reference writes [0, 0.99], which torch 2.13 rejects."""
    for key in ("G_opt_kwargs", "D_opt_kwargs"):
        opt_kwargs = args.get(key)
        if opt_kwargs is not None and opt_kwargs.get("betas") is not None:
            opt_kwargs["betas"] = [float(beta) for beta in opt_kwargs["betas"]]
