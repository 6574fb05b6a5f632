"""`RepulsionLoss`: the reference StyleGAN2 loss plus the repulsion term of the unlearning stage.

The term pushes the generator away from K ≥ 1 adapted ("negative") networks θ_N^1..θ_N^K:
  * ``il2`` = w / d,  ``nl2`` = −w·d,  ``el2`` = w·exp(−α·d)   (`stylegan_unlearn.method.repulsion`)
  * d over the selected parameters, averaged over the K networks, either ``l2`` (the paper's
    Σ(θ − θ_N)²) or ``tensor-mean`` (the official code's per-tensor mean squared difference
    averaged over tensors; the official code further multiplies by K²/2 — see
    `stylegan_unlearn.method.params` for how to convert its hyper-parameters).
The adapted networks' **G_ema** weights are used (as the official code reads `g_ema`), loaded once,
reduced to their mean and spread on the device, and never read from disk again. The term is
added to the generator's main phase (Gmain/Gboth), scaled by `gain`, and reported as
`Loss/G/repulsion` with the distance as `Loss/G/distance`. With `start_from` (the patch blocks
pass the `--resume` pkl) G first takes that pkl's G_ema, where the method starts unlearning
(`training_hooks.start`).

Defaults follow the official code's settings: EL2 with weight 100 (the hard-coded official EL2
weight) and α = 1 (its MNIST run), distance ``tensor-mean`` (the normalisation those values were
tuned for), all generator parameters repelled (``params='all'``).
"""
import os
from typing import Any, List, Mapping, Optional, Sequence, Union

import torch

from torch_utils import training_stats

from stylegan_unlearn.method import repulsion as repulsion_forms
from stylegan_unlearn.method.params import AnchorSet, GeneratorLike, gather_aligned, require_device, select_params
from training_hooks.loss import StyleGAN2Loss
from training_hooks.start import start_at_g_ema

__all__ = ["RepulsionPenalty", "RepulsionLoss", "load_adapted_generator"]

DEFAULT_DISTANCE = "tensor-mean"
DEFAULT_PARAMS = "all"

AdaptedSource = Union[str, "os.PathLike[str]", torch.nn.Module, Mapping[str, Any]]


def load_adapted_generator(source: AdaptedSource) -> Union[torch.nn.Module, Mapping[str, torch.Tensor]]:
    """The adapted generator (G_ema) from a pkl path, a loaded pkl dict, a module or a state dict."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"adapted network {path} does not exist; pass the pkl written by --mode=adapt")
        from stylegan_unlearn.pkl import load_network_pkl  # imported late: not needed for in-memory sources
        source = load_network_pkl(path, safe=True)
    if isinstance(source, torch.nn.Module):
        return source
    if isinstance(source, Mapping):
        for key in ("G_ema", "G"):
            if isinstance(source.get(key), torch.nn.Module):
                return source[key]
        if all(isinstance(v, torch.Tensor) for v in source.values()):
            return source
    raise ValueError(f"cannot use {type(source).__name__} as an adapted network; pass a pkl path")


def _describe(source: AdaptedSource, index: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"adapted network {os.fspath(source)}"
    return f"adapted network #{index}"


class RepulsionPenalty:
    """Repulsion term against K adapted networks, one fused pass per call independent of K."""

    def __init__(self, generator: GeneratorLike, device, *, adapted: Union[AdaptedSource, Sequence[AdaptedSource]],
                 repulsion: str = repulsion_forms.DEFAULT_FORM, repulsion_weight: Optional[float] = None,
                 alpha: Optional[float] = None, distance: str = DEFAULT_DISTANCE, params: str = DEFAULT_PARAMS):
        if repulsion not in repulsion_forms.REPULSION_FORMS:
            raise ValueError(f"unknown repulsion {repulsion!r}; use one of "
                             f"{', '.join(repulsion_forms.REPULSION_FORMS)}")
        if isinstance(adapted, (str, os.PathLike, torch.nn.Module, Mapping)):
            adapted = [adapted]  # a single network given without a list
        adapted = list(adapted or [])
        if not adapted:
            raise ValueError("RepulsionLoss needs at least one adapted network (adapted=[...pkl])")
        self.form = repulsion
        self.weight = repulsion_forms.DEFAULT_WEIGHTS[repulsion] if repulsion_weight is None else float(repulsion_weight)
        self.alpha = repulsion_forms.DEFAULT_ALPHA if alpha is None else float(alpha)
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
        self.anchors = AnchorSet(anchors, mode=distance, device=device, dtype=self.params[0].dtype,
                                 reference=[p.detach() for p in self.params])
        for index, source in enumerate(adapted):
            if all(torch.equal(a.to(device=p.device, dtype=p.dtype), p.detach()) for a, p in zip(anchors[index], self.params)):
                raise ValueError(f"{_describe(source, index)} has the same weights as the network being trained; "
                                 "the repulsion distance to it would be 0 (pass a network made by --mode=adapt)")

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


class RepulsionLoss(StyleGAN2Loss):
    """StyleGAN2Loss (ADA signature) + repulsion from the `adapted` networks.

    Extra keyword arguments (all JSON-serialisable): `adapted` (list of pkl paths, K ≥ 1),
    `repulsion` ('il2' | 'nl2' | 'el2', default 'el2'), `repulsion_weight` (w; default per form:
    il2 10, nl2 1, el2 100), `alpha` (EL2, default 1), `distance` ('l2' | 'tensor-mean', default
    'tensor-mean'), `params` ('synthesis' | 'all', default 'all'), `start_from` (a pkl whose G_ema
    G starts at; None keeps G as handed over).
    """

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, adapted=(),
                 repulsion=repulsion_forms.DEFAULT_FORM, repulsion_weight=None, alpha=None,
                 distance=DEFAULT_DISTANCE, params=DEFAULT_PARAMS, start_from=None, **loss_kwargs):
        super().__init__(device, G_mapping, G_synthesis, D, augment_pipe=augment_pipe, **loss_kwargs)
        if start_from is not None:
            start_at_g_ema((G_mapping, G_synthesis), start_from)
        self.generator_penalty = RepulsionPenalty(
            (G_mapping, G_synthesis), device, adapted=adapted, repulsion=repulsion,
            repulsion_weight=repulsion_weight, alpha=alpha, distance=distance, params=params)
