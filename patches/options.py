"""The unlearning options added to a reference `train.py`, and how they turn into loss plugin kwargs.

This module is imported at run time by a patched reference `train.py` (see `patches.patcher`), so it
depends only on click and the standard library at import time (torch and the pkl loader are imported
only to check the networks of an adapt/unlearn run). The options come from the method's one option
table, `stylegan_unlearn.method.options` (which our own train.py reads too); `OPTIONS` below renders
them as the click decorators of the patch blocks and reads them back. The stage defaults come from
the one recipe table, `stylegan_unlearn.method.recipe`, through `patches.recipe_args`.
"""
import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

import click

from patches.recipe_args import apply_recipe, use_float_betas
from stylegan_unlearn.commands.given import options_given
from stylegan_unlearn.method import options as method_options

MODES = ("train", "adapt", "unlearn")


class UnlearnOption(NamedTuple):
    """One command-line option: flag, python name, click keyword arguments as source text, loss kwarg."""

    flag: str
    dest: str
    click_kwargs: str
    loss_kwarg: Optional[str]


PATCHED_STAGES = ("adapt", "unlearn")  # the reference loops train; extrapolation is our own train.py's


def _click_source(entry: method_options.MethodOption) -> str:
    """The click keyword arguments of one method option as source text (no default: None means not given)."""
    stages = [s for s in entry.stages if s in PATCHED_STAGES]
    shown = entry.shown_default()
    text = f"{entry.help} (--mode={'/'.join(stages)})" + (f" [default: {shown}]" if shown else "")
    kwargs = [f"help={text!r}"]
    if entry.kind == "pkl":
        kwargs.append("metavar='PKL'")
    elif entry.kind == "dataset":
        kwargs.append("metavar='PATH'")
    elif entry.kind == "choice":
        kwargs.append(f"type=click.Choice({list(entry.choices)!r})")
    elif entry.kind == "int":
        kwargs.append(f"type=click.IntRange(min={entry.minimum})" if entry.minimum is not None else "type=int")
    else:
        kwargs.append("type=float")
    if entry.multiple:
        kwargs.append("multiple=True")
    return ", ".join(kwargs)


# --mode, then every method option of the stages a reference loop trains, in table order.
OPTIONS: Tuple[UnlearnOption, ...] = (
    UnlearnOption("--mode", "mode",
                  "help='Unlearning stage: train (unchanged), adapt (EWC, Stage 1) or unlearn (repulsion, Stage 2)', "
                  "type=click.Choice(['train', 'adapt', 'unlearn']), default='train', show_default=True", None),
) + tuple(UnlearnOption(entry.flag, entry.name, _click_source(entry), entry.loss_kwarg)
          for entry in method_options.OPTIONS if set(entry.stages) & set(PATCHED_STAGES))

OPTION_NAMES: Tuple[str, ...] = tuple(o.dest for o in OPTIONS)

# Loss classes per (flavour, mode); flavour 'ada' = stylegan2-ada-pytorch, 'sg3' = stylegan3.
LOSS_CLASSES: Dict[Tuple[str, str], str] = {
    ("ada", "adapt"): "training_hooks.EWCLoss",
    ("ada", "unlearn"): "training_hooks.RepulsionLoss",
    ("sg3", "adapt"): "training_hooks.sg3.EWCLoss",
    ("sg3", "unlearn"): "training_hooks.sg3.RepulsionLoss",
}

_ONLY = {stage: {e.name for e in method_options.OPTIONS if set(e.stages) & set(PATCHED_STAGES) == {stage}}
         for stage in PATCHED_STAGES}
_ADAPT_ONLY = _ONLY["adapt"]
_UNLEARN_ONLY = _ONLY["unlearn"]


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
            if option.dest == "adapted":
                value = [str(v) for v in value]
            elif option.dest == "negatives":
                value = [os.path.abspath(str(v)) for v in value]
            kwargs[option.loss_kwarg] = value
    return kwargs


def _check_networks(resume: str, adapted: Sequence[str]) -> None:
    """The --resume network exists and every --adapted one has its architecture (before anything is written)."""
    from stylegan_unlearn.method.architecture import check_adapted_networks  # imported late: needs torch
    try:
        check_adapted_networks(resume, adapted)
    except (ValueError, OSError) as err:
        raise click.UsageError(str(err)) from None


def _check_negatives(paths: Sequence[str], resume: str) -> None:
    """The --negatives images open and match the --resume generator (before anything is written)."""
    if not paths:
        return
    from stylegan_unlearn.method.negative_fakes import load_negative_sets  # imported late: needs torch
    from stylegan_unlearn.pkl import load_network_pkl  # imported late: needs torch
    try:
        load_negative_sets(paths, load_network_pkl(resume)["G_ema"])
    except (ValueError, OSError) as err:
        raise click.UsageError(f"--negatives: {err}") from None


def _local_path(path: str) -> str:
    return os.path.abspath(path) if os.path.isfile(path) else path


def _option_names(ctx: Optional[click.Context], opts: Mapping[str, Any]) -> Set[str]:
    return {p.name for p in ctx.command.params} if ctx is not None else set(opts)


def apply_unlearning_options(args: Any, desc: str, opts: Mapping[str, Any], flavour: str) -> str:
    """Edit the reference run options in place and return the run description.

    `args` is the reference `EasyDict` of training-loop kwargs (ADA `args`, StyleGAN3 `c`) and `opts`
    every command-line value. In every mode the Adam betas become floats. For adapt and unlearn, which
    start from the `--resume` network (so it is required): the loss plugin and its kwargs, G started at
    the pkl's G_ema (`start_from`), and the official recipe wherever the user gave no value, each
    choice printed with its reason.
    """
    use_float_betas(args)
    overrides = loss_overrides(opts, flavour)
    if not overrides:
        return desc
    mode = opts["mode"]
    resume = args.get("resume_pkl")
    if not resume:
        raise click.UsageError(f"--mode={mode} starts from a pretrained network: pass it with --resume PKL")
    _check_networks(str(resume), overrides.get("adapted", []))
    _check_negatives(overrides.get("negatives", []), str(resume))
    args.loss_kwargs.update(overrides)
    args.loss_kwargs["start_from"] = _local_path(str(resume))
    ctx = click.get_current_context(silent=True)
    given = options_given(opts, ctx)
    for line in apply_recipe(args, mode, opts, _option_names(ctx, opts), given, _local_path(str(resume))):
        click.echo(line)
    return f"{desc}-{mode}"
