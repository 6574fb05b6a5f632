"""The repulsion losses of Adapt-then-Unlearn as pure functions of the distance d = ‖θ − θ_N‖².

Each has its global maximum at θ = θ_N (d = 0), so minimising it pushes θ away from the adapted
negative networks:
  * ``il2`` (inverse ℓ2):           w / d
  * ``nl2`` (negative ℓ2):          −w · d        (unbounded below: rely on short runs)
  * ``el2`` (exponential neg. ℓ2):  w · exp(−α · d)

Default weights and α depend on the distance they are applied to (`stylegan_unlearn.method.params`):
  * with ``official`` (and ``tensor-mean``) they are the official code's: EL2 uses its hard-coded
    weight 100 with the command-line "gamma" acting as α = 1 (MNIST run file), NL2 weight 1, IL2
    weight 10. With ``--distance official`` this reproduces the official effective strength at every K.
  * with ``relative`` (the default; d = 1 at the start of unlearning) and ``l2`` they are the values
    measured on MNIST (benchmarks/results/generator-92kimg/mnist_ablations_digit1.md): NL2 w = 0.1,
    EL2 w = 10 with α = 0.1 (the push lasts about ten starting distances), IL2 w = 1; the official
    strength wrecked the generator there (FID ×2.4–3.9, benchmarks/results/mnist.md).

The default form is NL2 (benchmarks/results/mnist.md: NL2 removes more of the digit than EL2 at every K
and digit measured, at kept FID). On ``relative`` the repulsion itself carries θ tens to hundreds of
starting distances away within 16 kimg (MNIST digit 4, K = 5: d 135 for G at NL2 w 0.1 against 1.15
for fine-tuning alone; two thirds of the final G_ema's d lies across θ_G − μ), so EL2's push fades early.
The ``task`` distance measures only the progress along θ_G − μ and keeps EL2's push there
(benchmarks/results/mnist_task_distance_digit*.md).
"""
import math
from typing import Callable, Dict, Optional

import torch

from stylegan_unlearn.method import options

__all__ = ["REPULSION_FORMS", "DEFAULT_FORM", "DEFAULT_DISTANCE", "DEFAULT_WEIGHTS", "DEFAULT_ALPHA",
           "OFFICIAL_WEIGHTS", "OFFICIAL_ALPHA", "RELATIVE_WEIGHTS", "RELATIVE_ALPHA", "default_weight",
           "default_alpha", "il2", "nl2", "el2", "repulsion_term", "check_settings"]

DEFAULT_FORM: str = options.default("repulsion")  # nl2: the one option table's
DEFAULT_DISTANCE: str = options.default("distance")  # the one option table's
OFFICIAL_WEIGHTS: Dict[str, float] = {"il2": 10.0, "nl2": 1.0, "el2": 100.0}
OFFICIAL_ALPHA = 1.0
RELATIVE_WEIGHTS: Dict[str, float] = {"il2": 1.0, "nl2": 0.1, "el2": 10.0}
RELATIVE_ALPHA = 0.1
_OFFICIAL_SCALE_DISTANCES = ("official", "tensor-mean")
DEFAULT_WEIGHTS = OFFICIAL_WEIGHTS  # kept for callers that predate per-distance defaults
DEFAULT_ALPHA = OFFICIAL_ALPHA


def default_weight(form: str, distance: str = DEFAULT_DISTANCE) -> float:
    """The default repulsion weight w of `form` on `distance` (official values on the official scales)."""
    table = OFFICIAL_WEIGHTS if distance in _OFFICIAL_SCALE_DISTANCES else RELATIVE_WEIGHTS
    if form not in table:
        raise ValueError(f"unknown repulsion {form!r}; use one of {', '.join(table)}")
    return table[form]


def default_alpha(distance: str = DEFAULT_DISTANCE) -> float:
    """The default EL2 sharpness α on `distance`."""
    return OFFICIAL_ALPHA if distance in _OFFICIAL_SCALE_DISTANCES else RELATIVE_ALPHA
# d is clamped here for IL2 so that θ exactly at θ_N gives a large finite loss rather than inf.
_IL2_MIN_DISTANCE = 1e-12


def il2(d: torch.Tensor, weight: float) -> torch.Tensor:
    """Inverse ℓ2 repulsion: w / d."""
    return weight / d.clamp_min(_IL2_MIN_DISTANCE)


def nl2(d: torch.Tensor, weight: float) -> torch.Tensor:
    """Negative ℓ2 repulsion: −w · d."""
    return -weight * d


def el2(d: torch.Tensor, weight: float, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """Exponential negative ℓ2 repulsion: w · exp(−α · d)."""
    return weight * torch.exp(-alpha * d)


REPULSION_FORMS: Dict[str, Callable[..., torch.Tensor]] = {"il2": il2, "nl2": nl2, "el2": el2}


def check_settings(weight: float, alpha: float) -> None:
    """Refuse settings that break the repulsion: NaN/Inf, a negative weight, or α ≤ 0 (EL2 would attract)."""
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"the repulsion weight must be a finite number ≥ 0, got {weight}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"the EL2 sharpness alpha must be a finite number > 0, got {alpha} (α ≤ 0 turns the "
                         "repulsion into an attraction)")


def repulsion_term(form: str, d: torch.Tensor, weight: Optional[float] = None,
                   alpha: Optional[float] = None, distance: str = "official") -> torch.Tensor:
    """Apply repulsion `form` to distance `d`; `weight`/`alpha` default to those of `distance`."""
    if form not in REPULSION_FORMS:
        raise ValueError(f"unknown repulsion {form!r}; use one of {', '.join(REPULSION_FORMS)}")
    w = default_weight(form, distance) if weight is None else float(weight)
    if form == "el2":
        return el2(d, w, default_alpha(distance) if alpha is None else float(alpha))
    return REPULSION_FORMS[form](d, w)
