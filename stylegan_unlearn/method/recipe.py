"""The official Adapt-then-Unlearn recipe: what `--mode=adapt` and `--mode=unlearn` use by default.

One table serves both front doors, our `train.py` (`stylegan_unlearn.training`) and the blocks that
`stylegan-unlearn patch` adds to a reference `train.py` (`patches.recipe_args`), so the two cannot
drift apart. Each `Setting` is one thing the official code fixes where the reference StyleGAN
defaults differ (shared/docs/paper-and-official-code.md §2.5, §3.4 and §8.4), with its value per
stage and the reason a run prints when it uses it.

Rules: a setting applies only where the user gave no value, an explicit option always wins, and an
explicit value that goes against the stage (augmentation, which the official recipe never uses) is
kept and gets a note. The loss settings the pretraining chose (R1 γ, path-length weight, style mixing)
come before the recipe's where the run that wrote the `--resume` pkl left its `training_options.json`
beside it (`pretraining_values`): fine-tuning with a path-length term or style mixing that the
pretraining never had blurs the samples, and on both MNIST pkls measured the pretraining's own values
removed more of the feature at a better FID (README, "your own pkl"). This module imports nothing
heavy: a patched reference train.py reads it at start-up, before torch is needed.
"""
import json
import math
import os
from typing import Any, Container, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

__all__ = ["STAGES", "Setting", "RECIPE", "Decision", "setting", "ema_kimg_for_batch", "decide", "report_lines",
           "LOSS_SETTINGS", "PRETRAINING_FILE", "pretraining_values"]

STAGES = ("adapt", "unlearn")
_STAGE_TITLES = {"adapt": "Stage-1 (adapt)", "unlearn": "Stage-2 (unlearn)"}


class Setting(NamedTuple):
    """One setting of the official recipe.

    `name` is the option's Python name in both train.py's (`kimg` for `--kimg`); settings that no
    train.py exposes (the lazy-regularisation intervals) still use the training-loop name.
    `against`, when set, says why any value other than the recipe's goes against the stage.
    `pretraining_key`, when set, is the `loss_kwargs` key under which a run's training_options.json
    records this setting, so that the pretraining's value can be taken over.
    """

    name: str
    adapt: Any
    unlearn: Any
    why: str
    against: Optional[str] = None
    pretraining_key: Optional[str] = None

    def value(self, stage: str) -> Any:
        """The recipe's value for `stage` ('adapt' or 'unlearn')."""
        if stage not in STAGES:
            raise ValueError(f"the official recipe has no stage {stage!r}; use one of {', '.join(STAGES)}")
        return self.adapt if stage == "adapt" else self.unlearn

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


RECIPE = (
    Setting("kimg", 32, 16, "the official length, 2000 (adapt) or 1000 (unlearn) iterations at batch 16"),
    Setting("batch", 16, 16, "the official batch size"),
    Setting("aug", "noaug", "noaug", "the official code trains without augmentation",
            against="the official recipe trains without augmentation, on the generator's own samples"),
    Setting("gamma", 10, 10, "the official R1 weight", pretraining_key="r1_gamma"),
    Setting("glr", 0.002, 0.002, "the official learning rate, 0.0016 after the lazy-regularisation scaling"),
    Setting("dlr", 0.002, 0.002, "the official learning rate, 0.00188 after the lazy-regularisation scaling"),
    Setting("tick", 1.6, 1.6, "a progress line every 100 iterations at batch 16"),
    Setting("snap", 10, 5, "a snapshot every 1000 (adapt) or 500 (unlearn) iterations, as the official code saves"),
    Setting("metrics", "none", "none", "the official code measures nothing while it trains"),
    Setting("ema_kimg", 5, 5, "the official G_ema decay 0.5^(32/10000) per step, no ramp-up (5 kimg at batch 16)"),
    Setting("style_mixing", 0.9, 0.9, "the official style-mixing probability", pretraining_key="style_mixing_prob"),
    Setting("pl_weight", 2, 2, "the official path-length weight", pretraining_key="pl_weight"),
    Setting("G_reg_interval", 4, 4, "path length every 4 steps, as the official code"),
    Setting("D_reg_interval", 16, 16, "R1 every 16 steps, as the official code"),
)


def setting(name: str) -> Setting:
    """The recipe entry called `name`."""
    for entry in RECIPE:
        if entry.name == name:
            return entry
    raise KeyError(f"the official recipe has no setting {name!r}")


def ema_kimg_for_batch(batch: int) -> float:
    """G_ema half-life (kimg) that gives the official per-step decay 0.5^(32/10000) at this batch size.

    The loops use β = 0.5^(batch / (1000·ema_kimg)) per step, so ema_kimg = batch·10/32.
    """
    return batch * 10 / 32


# Where --loss-settings takes R1 γ, path-length weight and style mixing from when they are not given.
LOSS_SETTINGS = ("pretraining", "recipe")
PRETRAINING_FILE = "training_options.json"


def pretraining_values(network_pkl: str) -> Tuple[Dict[str, float], Optional[str]]:
    """The loss settings recorded by the run that wrote `network_pkl`, and the file they come from.

    Reads the `training_options.json` in the pkl's folder, as StyleGAN2-ADA, StyleGAN3 and our
    train.py write it; ({}, None) when there is none. A file that is there but unreadable, or holds a
    value that is not a non-negative number, raises ValueError: a guess would change the run silently.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(network_pkl)), PRETRAINING_FILE)
    if not os.path.isfile(path):
        return {}, None
    remedy = "fix or move it, or pass --loss-settings=recipe"
    try:
        with open(path, encoding="utf-8") as f:
            loss_kwargs = json.load(f).get("loss_kwargs")
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"cannot read the pretraining's options '{path}' ({err}); {remedy}") from None
    if not isinstance(loss_kwargs, dict):
        raise ValueError(f"'{path}' has no loss_kwargs object, so the pretraining's loss settings are unknown; {remedy}")
    values = {}
    for entry in RECIPE:
        value = loss_kwargs.get(entry.pretraining_key) if entry.pretraining_key else None
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"'{path}': loss_kwargs.{entry.pretraining_key} = {value!r} is not a non-negative "
                             f"number; {remedy}")
        values[entry.name] = float(value)
    return values, path


class Decision(NamedTuple):
    """What a run uses for one setting and where it comes from: 'given', 'pretraining' or 'recipe'."""

    setting: Setting
    source: str
    value: Any

    @property
    def given(self) -> bool:
        return self.source == "given"


def _recipe_value(entry: Setting, stage: str, chosen: Mapping[str, Any]) -> Any:
    if entry.name == "ema_kimg":
        return ema_kimg_for_batch(chosen["batch"])
    return entry.value(stage)


def decide(stage: str, user_values: Mapping[str, Any], given: Container[str],
           pretraining: Optional[Mapping[str, Any]] = None) -> List[Decision]:
    """One decision per setting, in table order.

    `given` names the options the user set on the command line; `pretraining` holds the pretraining's
    values (`pretraining_values`), used where the user gave none.
    """
    pretraining = pretraining or {}
    decisions, chosen = [], {}
    for entry in RECIPE:
        if entry.name in given:
            source, value = "given", user_values.get(entry.name)
        elif entry.name in pretraining:
            source, value = "pretraining", pretraining[entry.name]
        else:
            source, value = "recipe", _recipe_value(entry, stage, chosen)
        chosen[entry.name] = value
        decisions.append(Decision(entry, source, value))
    return decisions


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v) for v in value) or "none"
    return str(value)


def _goes_against(decision: Decision, stage: str) -> bool:
    entry = decision.setting
    return decision.given and entry.against is not None and decision.value != entry.value(stage)


def report_lines(stage: str, decisions: Sequence[Decision], option_names: Container[str],
                 pretraining_file: Optional[str] = None, loss_settings: Optional[str] = None) -> List[str]:
    """What the run chose and why: a header, one line per setting, and notes.

    `option_names` are the options this train.py has; a setting it lacks says so instead of
    "--x not given". `pretraining_file` is where the pretraining's values came from; `loss_settings`
    is the --loss-settings of a run that looked for that file (None: nothing was looked for), so that
    a run that found none says what it used instead.
    """
    lines = [f"--mode={stage} follows the official {_STAGE_TITLES[stage]} recipe where you gave no value:"]
    notes = []
    for decision in decisions:
        entry = decision.setting
        recipes = _show(_recipe_value(entry, stage, _chosen(decisions)))
        if decision.source == "given":
            lines.append(f"  {entry.name} = {_show(decision.value)}: as given with {entry.flag} (the recipe's is {recipes})")
            if _goes_against(decision, stage):
                notes.append(f"note: {entry.flag}={_show(decision.value)} goes against --mode={stage}: "
                             f"{entry.against}; it is used as you asked")
            continue
        source = f"{entry.flag} not given" if entry.name in option_names else "no option for it here"
        if decision.source == "pretraining":
            lines.append(f"  {entry.name} = {_show(decision.value)}: the pretraining's, from {pretraining_file} "
                         f"({source}; the recipe's is {recipes})")
            continue
        if entry.pretraining_key and loss_settings == "recipe":
            source += ", --loss-settings=recipe"
        elif entry.pretraining_key and loss_settings == "pretraining":
            source += f", and no {PRETRAINING_FILE} with it beside --resume: pass the pretraining's value if it differs"
        lines.append(f"  {entry.name} = {_show(decision.value)}: {entry.why} ({source})")
    return lines + notes


def _chosen(decisions: Sequence[Decision]) -> Dict[str, Any]:
    return {d.setting.name: d.value for d in decisions}
