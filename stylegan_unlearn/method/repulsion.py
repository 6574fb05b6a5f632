"""The repulsion losses of Adapt-then-Unlearn as pure functions of the distance d = ‖θ − θ_N‖².

Each has its global maximum at θ = θ_N (d = 0), so minimising it pushes θ away from the adapted
negative networks:
  * ``il2`` (inverse ℓ2):           w / d
  * ``nl2`` (negative ℓ2):          −w · d        (unbounded below: rely on short runs)
  * ``el2`` (exponential neg. ℓ2):  w · exp(−α · d)

Defaults follow the official code's real settings: EL2 is the form with the best tables, and the
official EL2 uses a hard-coded weight of 100 with the command-line "gamma" acting as α (MNIST run
file: α = 1); IL2 runs used weights 10 (CelebA-HQ) and 0.1–100 (AFHQ); NL2 used 1–1.2. Those
values assume the official ``tensor-mean``-style normalisation of d (see `stylegan_unlearn.method.params`).
"""
import math
from typing import Callable, Dict, Optional

import torch

__all__ = ["REPULSION_FORMS", "DEFAULT_FORM", "DEFAULT_WEIGHTS", "DEFAULT_ALPHA", "il2", "nl2", "el2",
           "repulsion_term", "check_settings"]

DEFAULT_FORM = "el2"
DEFAULT_WEIGHTS: Dict[str, float] = {"il2": 10.0, "nl2": 1.0, "el2": 100.0}
DEFAULT_ALPHA = 1.0
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
                   alpha: Optional[float] = None) -> torch.Tensor:
    """Apply repulsion `form` to distance `d`; `weight`/`alpha` default to the official settings."""
    if form not in REPULSION_FORMS:
        raise ValueError(f"unknown repulsion {form!r}; use one of {', '.join(REPULSION_FORMS)}")
    w = DEFAULT_WEIGHTS[form] if weight is None else float(weight)
    if form == "el2":
        return el2(d, w, DEFAULT_ALPHA if alpha is None else float(alpha))
    return REPULSION_FORMS[form](d, w)
