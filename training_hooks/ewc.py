"""`EWCLoss`: the reference StyleGAN2 loss plus the EWC penalty of the adaptation stage.

Penalty (Li et al. 2020, as the official Adapt-then-Unlearn code uses it):
    L_EWC = (λ/2) · Σ_i F_i (θ_i − θ_G,i)²
with θ_G the generator's parameters when the loss is constructed, after `start_from` (the
`--resume` pkl) has put its G_ema there: the method anchors at G_ema, while the reference loops
resume G from the pkl's `G` (`training_hooks.start`). F is the diagonal Fisher of
`stylegan_unlearn.method.fisher`, estimated once here (or read from `fisher_cache`). It is added to the
generator's main phase (Gmain/Gboth), scaled by `gain` like the main loss, and reported as
`Loss/G/ewc`. Defaults are the official code's: λ = 5e8, 32 Fisher samples, synthesis convs from
8×8 up (``params='synthesis'``).
"""
import math
from typing import Optional

import torch

from torch_utils import training_stats

from stylegan_unlearn.method.fisher import load_or_compute_fisher
from stylegan_unlearn.method.params import GeneratorLike, require_device, select_params, unwrap, weighted_sq_distance
from training_hooks.loss import StyleGAN2Loss
from training_hooks.start import start_at_g_ema

__all__ = ["EWCPenalty", "EWCLoss", "DEFAULT_EWC_LAMBDA", "DEFAULT_FISHER_SAMPLES"]

DEFAULT_EWC_LAMBDA = 5e8
DEFAULT_FISHER_SAMPLES = 32


class EWCPenalty:
    """(λ/2)·Σ F(θ − θ_G)² over the selected generator parameters, one fused pass per call."""

    def __init__(self, generator: GeneratorLike, D: torch.nn.Module, device, *, ewc_lambda: float = DEFAULT_EWC_LAMBDA,
                 fisher_samples: int = DEFAULT_FISHER_SAMPLES, params: str = "synthesis",
                 fisher_cache: Optional[str] = None, fisher_seed: int = 0):
        if not (math.isfinite(ewc_lambda) and ewc_lambda >= 0):
            raise ValueError(f"ewc_lambda must be a finite non-negative number, got {ewc_lambda}")
        device = torch.device(device)
        named = select_params(generator, params)
        require_device(named, device)
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.coefficient = float(ewc_lambda) / 2
        fisher = load_or_compute_fisher(generator, unwrap(D), fisher_cache, params=params,
                                        num_samples=int(fisher_samples), seed=int(fisher_seed), device=device)
        with torch.no_grad():
            self.anchor = [p.detach().clone() for p in self.params]
            self.sqrt_fisher = [fisher[n].to(device=device, dtype=p.dtype).clamp_min(0).sqrt()
                                for n, p in named]

    def __call__(self, gen_img: Optional[torch.Tensor] = None, gen_c: Optional[torch.Tensor] = None) -> torch.Tensor:
        value = weighted_sq_distance(self.params, self.anchor, scales=self.sqrt_fisher) * self.coefficient
        training_stats.report("Loss/G/ewc", value.detach())
        return value


class EWCLoss(StyleGAN2Loss):
    """StyleGAN2Loss (ADA signature) + EWC penalty toward the construction-time generator.

    Extra keyword arguments (all JSON-serialisable): `ewc_lambda` (5e8), `fisher_samples` (32),
    `params` ('synthesis' | 'all'), `fisher_cache` (path of a ``.pt`` file reused when it matches),
    `fisher_seed` (0), `start_from` (a pkl whose G_ema G starts at and the penalty anchors at;
    None keeps G as handed over).
    """

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, ewc_lambda=DEFAULT_EWC_LAMBDA,
                 fisher_samples=DEFAULT_FISHER_SAMPLES, params="synthesis", fisher_cache=None, fisher_seed=0,
                 start_from=None, **loss_kwargs):
        super().__init__(device, G_mapping, G_synthesis, D, augment_pipe=augment_pipe, **loss_kwargs)
        if start_from is not None:
            start_at_g_ema((G_mapping, G_synthesis), start_from)
        self.generator_penalty = EWCPenalty(
            (G_mapping, G_synthesis), D, device, ewc_lambda=ewc_lambda, fisher_samples=fisher_samples,
            params=params, fisher_cache=fisher_cache, fisher_seed=fisher_seed)
