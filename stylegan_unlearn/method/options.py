"""The method's options, one table: what each is, its type and choices, its default, where it applies.

Read by both front doors, so they cannot drift apart: our `train.py` builds its click options from
it (`stylegan_unlearn.commands.train`), the blocks that `stylegan-unlearn patch` adds to a reference
train.py write theirs from it (`patches.options`), and the penalties take their defaults from it
(`stylegan_unlearn.method.penalties`). The official stage recipe (kimg, batch, learning rates, ...)
is the other table, `stylegan_unlearn.method.recipe`.

Defaults are the official Adapt-then-Unlearn code's; help texts are ASCII, as they land in reference
train.py files. Where one value cannot say it (the repulsion
weight depends on the form; the parameter selection on the stage) the default is None and
`default_note` says what is used. This module imports only the standard library: a patched reference
train.py reads it at start-up, before torch is needed.
"""
from typing import Any, Dict, NamedTuple, Optional, Tuple

__all__ = ["MethodOption", "OPTIONS", "option", "default", "STAGE_DEFAULTS"]


class MethodOption(NamedTuple):
    """One option of the method.

    `name` is the Python name (`ewc_lambda` for `--ewc-lambda`); `kind` is 'float', 'int', 'choice',
    'pkl' or 'dataset' (a zip or folder of images); `stages` are the `--mode`s it applies to; `loss_kwarg`
    is the loss-plugin keyword it becomes.
    """

    name: str
    kind: str
    help: str
    stages: Tuple[str, ...]
    default: Any = None
    choices: Tuple[str, ...] = ()
    minimum: Optional[int] = None
    multiple: bool = False
    loss_kwarg: Optional[str] = None
    default_note: Optional[str] = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def shown_default(self) -> Optional[str]:
        """The default as --help shows it ('5e+08', 'el2', or the note), None when there is none."""
        if self.default_note is not None:
            return self.default_note
        if self.default is None:
            return None
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


# Per-stage defaults of options whose default depends on the stage (`default` is None for them).
STAGE_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "params": {"adapt": "synthesis", "unlearn": "all", "extrapolate": "all"},
}

OPTIONS: Tuple[MethodOption, ...] = (
    MethodOption("adapted", "pkl", "Adapted (negative) network pkl theta_N; repeat for an ensemble",
                 stages=("unlearn", "extrapolate"), multiple=True, loss_kwarg="adapted"),
    MethodOption("repulsion", "choice", "Repulsion form", stages=("unlearn",), default="nl2",
                 choices=("il2", "nl2", "el2"), loss_kwarg="repulsion"),
    MethodOption("repulsion_weight", "float", "Repulsion weight w", stages=("unlearn",), loss_kwarg="repulsion_weight",
                 default_note="per form and distance: relative/l2 el2 10, nl2 0.1, il2 1; official/tensor-mean "
                              "el2 100, nl2 1, il2 10"),
    MethodOption("alpha", "float", "EL2 sharpness alpha in exp(-alpha*d)", stages=("unlearn",), loss_kwarg="alpha",
                 default_note="relative/l2 0.1; official/tensor-mean 1"),
    MethodOption("distance", "choice",
                 "Parameter distance for the repulsion: relative = |theta-mean theta_N|^2 in units of its value at "
                 "the start; task = (progress along theta_G - mean theta_N)^2, 1 at the start, blind to drift across it; l2 = the paper's sum of squares; tensor-mean = mean of per-tensor mean squares; official = "
                 "the official code's d (K^2/2 x tensor-mean), whose default weights reproduce its strength",
                 stages=("unlearn",), default="relative", choices=("relative", "task", "l2", "tensor-mean", "official"),
                 loss_kwarg="distance"),
    MethodOption("negatives", "dataset",
                 "Negative images (zip or folder, e.g. the negatives adapt used; repeat for several sets) that D "
                 "also learns to call fake, so that G's samples are led away from the feature (not in the paper)",
                 stages=("unlearn",), multiple=True, loss_kwarg="negatives",
                 default_note="none: D sees positives and G's samples"),
    MethodOption("negative_weight", "float", "Weight of D's loss on the --negatives", stages=("unlearn",),
                 loss_kwarg="negative_weight", default_note="1"),
    MethodOption("ewc_lambda", "float", "EWC weight lambda", stages=("adapt",), default=5e8, loss_kwarg="ewc_lambda"),
    MethodOption("fisher_samples", "int", "Generated samples for the EWC Fisher estimate", stages=("adapt",),
                 default=32, minimum=1, loss_kwarg="fisher_samples"),
    MethodOption("params", "choice", "Generator parameters that take part",
                 stages=("adapt", "unlearn", "extrapolate"), choices=("synthesis", "free", "all"), loss_kwarg="params",
                 default_note="synthesis for adapt, all otherwise, as in the official code"),
    MethodOption("loss_settings", "choice",
                 "Where R1 gamma, path-length weight and style mixing come from when not given: pretraining = the "
                 "training_options.json beside --resume (the official recipe where there is none); recipe = the "
                 "official Adapt-then-Unlearn values (10, 2, 0.9)",
                 stages=("adapt", "unlearn"), default="pretraining", choices=("pretraining", "recipe")),
    MethodOption("extrapolate_gamma", "float", "gamma of theta_G + gamma*(theta_G - mean theta_N)",
                 stages=("extrapolate",), default=1.0),
)


def option(name: str) -> MethodOption:
    """The table entry called `name`."""
    for entry in OPTIONS:
        if entry.name == name:
            return entry
    raise KeyError(f"the method has no option {name!r}")


def default(name: str, stage: Optional[str] = None) -> Any:
    """The default of option `name` (for `stage`, where it depends on the stage)."""
    if name in STAGE_DEFAULTS:
        if stage is None:
            raise ValueError(f"the default of --{name.replace('_', '-')} depends on the stage; pass stage=")
        return STAGE_DEFAULTS[name][stage]
    return option(name).default
