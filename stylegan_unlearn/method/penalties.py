"""The method's two penalties, as plain callables on a generator: usable with or without a loss class.

* `EWCPenalty` (Stage 1, adapt): (λ/2)·Σ_i F_i (θ_i − θ_G,i)², Li et al. 2020 as the official
  Adapt-then-Unlearn code uses it. θ_G are the generator's parameters when the penalty is built
  (after `anchors.start_at_g_ema` put the pretrained G_ema there); F is the diagonal Fisher of
  `stylegan_unlearn.method.fisher`, estimated once (or read from `fisher_cache`). Reported as
  `Loss/G/ewc`.
* `RepulsionPenalty` (Stage 2, unlearn): a repulsion form (`stylegan_unlearn.method.repulsion`:
  il2 = w/d, nl2 = −w·d, el2 = w·exp(−α·d); default w and α per distance) of the distance d to K ≥ 1
  adapted networks θ_N
  (their G_ema weights, loaded once by `anchors.load_adapted_generator`, reduced to their mean and
  spread on the device; distances in `stylegan_unlearn.method.params`). Reported as
  `Loss/G/repulsion`, with the distance as `Loss/G/distance`.

Both are called as `penalty(gen_img, gen_c) -> scalar tensor` (the images are ignored: these are
parameter-space terms), the interface of the loss plugins' generator-penalty hook, and both compute
their term in one fused pass. Defaults are the official code's, from the one option table
(`stylegan_unlearn.method.options`).
"""
import math
import os
from typing import List, Mapping, Optional, Sequence, Union

import torch

from stylegan_unlearn.method import options, repulsion as repulsion_forms
from stylegan_unlearn.method.anchors import AdaptedSource, load_adapted_generator
from stylegan_unlearn.method.fisher import load_or_compute_fisher
from stylegan_unlearn.method.params import (DISTANCE_MODES, AnchorSet, GeneratorLike, gather_aligned, require_device,
                                            select_params, unwrap, weighted_sq_distance)
from torch_utils import training_stats

__all__ = ["EWCPenalty", "RepulsionPenalty", "DEFAULT_EWC_LAMBDA", "DEFAULT_FISHER_SAMPLES", "DEFAULT_EWC_PARAMS",
           "DEFAULT_DISTANCE", "DEFAULT_REPULSION_PARAMS"]

DEFAULT_EWC_LAMBDA: float = options.default("ewc_lambda")
DEFAULT_FISHER_SAMPLES: int = options.default("fisher_samples")
DEFAULT_EWC_PARAMS: str = options.default("params", "adapt")
DEFAULT_DISTANCE: str = options.default("distance")
DEFAULT_REPULSION_PARAMS: str = options.default("params", "unlearn")


class EWCPenalty:
    """(λ/2)·Σ F(θ − θ_G)² over the selected generator parameters, one fused pass per call."""

    def __init__(self, generator: GeneratorLike, D: torch.nn.Module, device, *, ewc_lambda: float = DEFAULT_EWC_LAMBDA,
                 fisher_samples: int = DEFAULT_FISHER_SAMPLES, params: str = DEFAULT_EWC_PARAMS,
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


def _describe(source: AdaptedSource, index: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"adapted network {os.fspath(source)}"
    return f"adapted network #{index}"


class RepulsionPenalty:
    """Repulsion term against K adapted networks, one fused pass per call independent of K."""

    def __init__(self, generator: GeneratorLike, device, *, adapted: Union[AdaptedSource, Sequence[AdaptedSource]],
                 repulsion: str = repulsion_forms.DEFAULT_FORM, repulsion_weight: Optional[float] = None,
                 alpha: Optional[float] = None, distance: str = DEFAULT_DISTANCE,
                 params: str = DEFAULT_REPULSION_PARAMS):
        if repulsion not in repulsion_forms.REPULSION_FORMS:
            raise ValueError(f"unknown repulsion {repulsion!r}; use one of "
                             f"{', '.join(repulsion_forms.REPULSION_FORMS)}")
        if distance not in DISTANCE_MODES:
            raise ValueError(f"unknown distance {distance!r}; use one of {', '.join(DISTANCE_MODES)}")
        if isinstance(adapted, (str, os.PathLike, torch.nn.Module, Mapping)):
            adapted = [adapted]  # a single network given without a list
        adapted = list(adapted or [])
        if not adapted:
            raise ValueError("RepulsionLoss needs at least one adapted network (adapted=[...pkl])")
        self.form = repulsion
        self.weight = (repulsion_forms.default_weight(repulsion, distance) if repulsion_weight is None
                       else float(repulsion_weight))
        self.alpha = repulsion_forms.default_alpha(distance) if alpha is None else float(alpha)
        repulsion_forms.check_settings(self.weight, self.alpha)
        device = torch.device(device)
        named = select_params(generator, params)
        require_device(named, device)
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        shapes = [p.shape for p in self.params]
        anchors: List[List[torch.Tensor]] = []
        for index, source in enumerate(adapted):
            network = load_adapted_generator(source)
            anchors.append([t.detach() for t in gather_aligned(network, self.names, shapes, _describe(source, index))])
        for index, source in enumerate(adapted):  # before the distance, whose 'relative' unit would be 0 then
            if all(torch.equal(a.to(device=p.device, dtype=p.dtype), p.detach()) for a, p in zip(anchors[index], self.params)):
                raise ValueError(f"{_describe(source, index)} has the same weights as the network being trained; "
                                 "the repulsion distance to it would be 0 (pass a network made by --mode=adapt)")
        self.anchors = AnchorSet(anchors, mode=distance, device=device, dtype=self.params[0].dtype,
                                 reference=[p.detach() for p in self.params])

    @property
    def num_adapted(self) -> int:
        return self.anchors.num_anchors

    def distance(self) -> torch.Tensor:
        return self.anchors.distance(self.params)

    def __call__(self, gen_img: Optional[torch.Tensor] = None, gen_c: Optional[torch.Tensor] = None) -> torch.Tensor:
        d = self.distance()
        value = repulsion_forms.repulsion_term(self.form, d, self.weight, self.alpha)
        training_stats.report("Loss/G/distance", d.detach())
        training_stats.report("Loss/G/repulsion", value.detach())
        return value
