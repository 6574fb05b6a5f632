"""The unlearning options added to a reference `train.py`, and how they turn into loss plugin kwargs.

This module is imported at run time by a patched reference `train.py` (see `patches.patcher`), so it
depends only on click and the standard library. The option table below is the single definition
used both to write the patch blocks and to read the options back.
"""
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import click

MODES = ("train", "adapt", "unlearn")


class UnlearnOption(NamedTuple):
    """One command-line option: flag, python name, click keyword arguments as source text, loss kwarg."""

    flag: str
    dest: str
    click_kwargs: str
    loss_kwarg: Optional[str]


OPTIONS: Tuple[UnlearnOption, ...] = (
    UnlearnOption("--mode", "mode",
                  "help='Unlearning stage: train (unchanged), adapt (EWC, Stage 1) or unlearn (repulsion, Stage 2)', "
                  "type=click.Choice(['train', 'adapt', 'unlearn']), default='train', show_default=True", None),
    UnlearnOption("--adapted", "adapted",
                  "help='Adapted (negative) network pkl for --mode=unlearn; repeat for an ensemble', "
                  "multiple=True, metavar='PKL'", "adapted"),
    UnlearnOption("--repulsion", "repulsion",
                  "help='Repulsion form for --mode=unlearn', type=click.Choice(['il2', 'nl2', 'el2'])", "repulsion"),
    UnlearnOption("--repulsion-weight", "repulsion_weight",
                  "help='Weight of the repulsion term', type=float", "repulsion_weight"),
    UnlearnOption("--alpha", "alpha", "help='EL2 sharpness alpha in exp(-alpha*d)', type=float", "alpha"),
    UnlearnOption("--distance", "distance",
                  "help='Parameter distance', type=click.Choice(['l2', 'tensor-mean', 'official'])", "distance"),
    UnlearnOption("--ewc-lambda", "ewc_lambda", "help='EWC weight lambda for --mode=adapt', type=float",
                  "ewc_lambda"),
    UnlearnOption("--fisher-samples", "fisher_samples",
                  "help='Generated samples for the EWC Fisher estimate', type=click.IntRange(min=1)",
                  "fisher_samples"),
    UnlearnOption("--params", "params",
                  "help='Generator parameters that take part', type=click.Choice(['synthesis', 'all'])", "params"),
)

OPTION_NAMES: Tuple[str, ...] = tuple(o.dest for o in OPTIONS)

# Loss classes per (flavour, mode); flavour 'ada' = stylegan2-ada-pytorch, 'sg3' = stylegan3.
LOSS_CLASSES: Dict[Tuple[str, str], str] = {
    ("ada", "adapt"): "training_hooks.EWCLoss",
    ("ada", "unlearn"): "training_hooks.RepulsionLoss",
    ("sg3", "adapt"): "training_hooks.sg3.EWCLoss",
    ("sg3", "unlearn"): "training_hooks.sg3.RepulsionLoss",
}

_ADAPT_ONLY = {"ewc_lambda", "fisher_samples"}
_UNLEARN_ONLY = {"adapted", "repulsion", "repulsion_weight", "alpha", "distance"}


def click_decorator_lines() -> List[str]:
    """The `@click.option(...)` source lines a patch inserts above the reference `main`."""
    return [f"@click.option('{o.flag}', '{o.dest}', {o.click_kwargs})" for o in OPTIONS]


def pop_unlearning_options(config_kwargs: dict) -> Dict[str, Any]:
    """Remove our options from the reference kwargs (its setup function takes a fixed signature)."""
    return {name: config_kwargs.pop(name) for name in OPTION_NAMES if name in config_kwargs}


def loss_overrides(opts: Mapping[str, Any], flavour: str) -> Dict[str, Any]:
    """The loss class name and JSON-serialisable kwargs for the chosen mode ({} for plain training).

    Only options the user gave are passed on; everything else keeps the plugin's documented default.
    """
    mode = opts.get("mode") or "train"
    if mode not in MODES:
        raise click.BadParameter(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}", param_hint="--mode")
    given = {k: opts[k] for k in OPTION_NAMES if k != "mode" and opts.get(k) is not None and opts.get(k) != ()}
    if mode == "train":
        if given:
            raise click.UsageError(f"--{sorted(given)[0].replace('_', '-')} needs --mode=adapt or --mode=unlearn")
        return {}
    wrong = (_UNLEARN_ONLY if mode == "adapt" else _ADAPT_ONLY) & set(given)
    if wrong:
        raise click.UsageError(f"--{sorted(wrong)[0].replace('_', '-')} does not apply to --mode={mode}")
    if mode == "unlearn" and not given.get("adapted"):
        raise click.UsageError("--mode=unlearn needs at least one --adapted PKL (a network from --mode=adapt)")
    kwargs: Dict[str, Any] = {"class_name": LOSS_CLASSES[(flavour, mode)]}
    for option in OPTIONS:
        if option.loss_kwarg and option.dest in given:
            value = given[option.dest]
            kwargs[option.loss_kwarg] = [str(v) for v in value] if option.dest == "adapted" else value
    return kwargs


def apply_unlearning_options(args: Any, desc: str, opts: Mapping[str, Any], flavour: str) -> str:
    """Edit the reference run options in place (`args.loss_kwargs`) and return the run description.

    `args` is the reference `EasyDict` of training-loop kwargs (ADA `args`, StyleGAN3 `c`); adapt and
    unlearn start from the `--resume` network, which is therefore required.
    """
    overrides = loss_overrides(opts, flavour)
    if not overrides:
        return desc
    mode = opts["mode"]
    if not args.get("resume_pkl"):
        raise click.UsageError(f"--mode={mode} starts from a pretrained network: pass it with --resume PKL")
    args.loss_kwargs.update(overrides)
    return f"{desc}-{mode}"
