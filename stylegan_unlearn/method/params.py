"""Which generator parameters take part in the method, and how far two parameter sets are apart.

Everything here works by state-dict *names*, so it serves our own networks, the reference
StyleGAN2-ADA / StyleGAN3 classes loaded from users' pickles, and DDP-wrapped modules alike.

Selections (`mode`):
  * ``'synthesis'`` — the official code's EWC scope: the synthesis convolution layers from 8×8 up,
    i.e. every parameter under ``synthesis.b{res}.conv0`` / ``synthesis.b{res}.conv1`` with
    ``res >= 8`` (modulated weight, affine weight/bias, noise strength, bias). The mapping network,
    the 4×4 block (const, conv1) and all toRGB layers are left out. For StyleGAN3 (alias-free)
    generators, whose layers are named ``synthesis.L{idx}_{size}_{channels}``, it selects those
    layers except the last one (the toRGB layer).
  * ``'free'`` — the complement of ``'synthesis'``: the parameters Stage 1's EWC leaves free
    (mapping, const, the 4×4 block, toRGB; for StyleGAN3 the mapping, input and last layer). With
    the default Stage 1 these are where θ_N differs from θ_G, so repelling only them keeps Stage 2
    from amplifying its own drift in the layers Stage 1 held fixed (θ_N = θ_G there, so the ℓ2
    push on them only pushes θ further along whatever way fine-tuning moved it).
  * ``'all'`` — every generator parameter (mapping, const, 4×4, toRGB, noise strengths). Buffers
    (``w_avg``, ``noise_const``, ``resample_filter``) are never parameters and never selected.

Distances (`distance`), against K ≥ 1 anchor parameter sets θ_N^1..θ_N^K, over P selected tensors:
  * ``'l2'`` — the paper's form: d = mean_k Σ_p Σ_elements (θ_p − θ_N,p^k)².
  * ``'tensor-mean'`` — the official code's per-tensor normalisation, averaged over the K anchors:
    d = mean_k (1/P) Σ_p mean_elements (θ_p − θ_N,p^k)², so that every tensor weighs the same
    whatever its size.
  * ``'relative'`` — the squared ℓ2 distance to the centre μ = mean_k θ_N^k of the adapted networks, in
    units of its value where unlearning starts: d = ‖θ − μ‖² / ‖θ_start − μ‖², so d = 1 at θ_G for any
    network size, K or parameter selection (at K = 1 it is the paper's ``'l2'`` over its starting value;
    for K > 1 it leaves out the anchors' spread, a constant that would only weaken the push). EL2's α
    then says how many starting distances the push lasts, and the per-element force follows how far
    Stage 1 moved each element on average.
  * ``'task'`` — progress along the task vector τ = θ_start − μ (the direction Stage 1 moved, reversed):
    d = s² with s = ⟨θ − μ, τ⟩ / ‖τ‖², so d = 1 at θ_start and s = 1 + γ at the extrapolation
    θ_start + γ·τ. Unlike the ℓ2 distances it does not grow with motion orthogonal to τ, so the
    repulsion pushes only along τ instead of also amplifying moves across it (not in the paper;
    measured in benchmarks/results/mnist_task_distance_digit*.md).
  * ``'official'`` — exactly the official code's d: (K/2)·(1/P)·Σ_p Σ_k mean_elements (θ_p − θ_N,p^k)²,
    which is K²/2 × ``tensor-mean`` (½ at K = 1, 12.5 at its K = 5). Its weights and α (EL2 weight 100
    with α = 1 in the official MNIST runs) mean what they meant there only with this distance.

Every distance is computed in one fused pass independent of K: with μ_p = mean_k θ_N,p^k,
    mean_k ‖θ_p − θ_N,p^k‖² = ‖θ_p − μ_p‖² + mean_k ‖θ_N,p^k − μ_p‖²,
so only μ and a constant (the anchors' spread, computed once in float64) are kept.
"""
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

__all__ = [
    "PARAM_MODES", "DISTANCE_MODES", "unwrap", "named_generator_parameters", "select_params",
    "select_names", "weighted_sq_distance", "AnchorSet", "distance", "state_tensors", "gather_aligned",
    "require_device",
]

PARAM_MODES = ("synthesis", "free", "all")
DISTANCE_MODES = ("l2", "tensor-mean", "official", "relative", "task")
_NEEDS_REFERENCE = ("relative", "task")

_SG2_SYNTHESIS_CONV = re.compile(r"^synthesis\.b(\d+)\.conv[01]\.")
_SG3_SYNTHESIS_LAYER = re.compile(r"^synthesis\.L(\d+)_")

NamedParams = List[Tuple[str, torch.nn.Parameter]]
GeneratorLike = Union[torch.nn.Module, Sequence[torch.nn.Module]]


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """Return the module inside a DistributedDataParallel (or any `.module`) wrapper."""
    while isinstance(getattr(module, "module", None), torch.nn.Module):
        module = module.module
    return module


def named_generator_parameters(G_or_parts: GeneratorLike) -> NamedParams:
    """All generator parameters with reference state-dict names (``mapping.fc0.weight``, ...).

    Accepts a Generator (possibly wrapped) or a ``(G_mapping, G_synthesis)`` pair as handed to an
    ADA-signature loss (each possibly DDP-wrapped).
    """
    if isinstance(G_or_parts, torch.nn.Module):
        return list(unwrap(G_or_parts).named_parameters())
    parts = list(G_or_parts)
    if len(parts) != 2 or not all(isinstance(p, torch.nn.Module) for p in parts):
        raise ValueError("expected a Generator module or a (G_mapping, G_synthesis) pair of modules")
    mapping, synthesis = (unwrap(p) for p in parts)
    return ([(f"mapping.{n}", p) for n, p in mapping.named_parameters()]
            + [(f"synthesis.{n}", p) for n, p in synthesis.named_parameters()])


def select_names(names: Iterable[str], mode: str) -> List[str]:
    """Filter generator parameter names by selection `mode` (see the module docstring)."""
    if mode not in PARAM_MODES:
        raise ValueError(f"unknown parameter selection {mode!r}; use one of {', '.join(PARAM_MODES)}")
    names = list(names)
    if mode == "all":
        return names
    synthesis = _synthesis_names(names)
    if mode == "free":
        return [n for n in names if n not in synthesis] if synthesis else []
    return [n for n in names if n in synthesis]


def _synthesis_names(names: List[str]) -> set:
    """The names `'synthesis'` selects (StyleGAN2 naming first, else StyleGAN3's); empty when neither matches."""
    chosen = {n for n in names if (m := _SG2_SYNTHESIS_CONV.match(n)) and int(m.group(1)) >= 8}
    if chosen:
        return chosen
    layer_ids = {n: int(m.group(1)) for n in names if (m := _SG3_SYNTHESIS_LAYER.match(n))}
    last = max(layer_ids.values(), default=None)
    return {n for n, idx in layer_ids.items() if idx != last}


def select_params(G_or_parts: GeneratorLike, mode: str) -> NamedParams:
    """The generator's parameters selected by `mode`, as ``[(name, Parameter)]`` in module order."""
    named = named_generator_parameters(G_or_parts)
    wanted = set(select_names([n for n, _ in named], mode))
    chosen = [(n, p) for n, p in named if n in wanted]
    if not chosen:
        raise ValueError(f"no generator parameters match the selection {mode!r}; "
                         "is this a StyleGAN2/StyleGAN3 generator? Try params='all'")
    return chosen


def weighted_sq_distance(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor],
                         weights: Optional[Sequence[float]] = None,
                         scales: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """Σ_p w_p ‖s_p ⊙ (θ_p − a_p)‖² as one fused (``torch._foreach_*``) pass; differentiable in θ.

    `weights` are per-tensor scalars (default 1), `scales` per-element tensors (default 1).
    """
    if len(params) != len(anchors):
        raise ValueError(f"got {len(params)} parameters but {len(anchors)} anchors")
    if not params:
        raise ValueError("cannot measure a distance over zero parameters")
    diffs = torch._foreach_sub(list(params), list(anchors))
    if scales is not None:
        diffs = torch._foreach_mul(diffs, list(scales))
    norms = torch.stack(torch._foreach_norm(diffs)).float()
    sq = norms.square()
    if weights is not None:
        sq = sq * torch.as_tensor(list(weights), dtype=sq.dtype, device=sq.device)
    return sq.sum()


def _tensor_weights(shapes: Sequence[torch.Size], mode: str, num_anchors: int) -> List[float]:
    """Per-tensor weights w_p of d = mean_k Σ_p w_p ‖θ_p − θ_N,p^k‖² for distance `mode`."""
    if mode not in DISTANCE_MODES:
        raise ValueError(f"unknown distance {mode!r}; use one of {', '.join(DISTANCE_MODES)}")
    if mode in ("l2", "relative", "task"):
        return [1.0] * len(shapes)
    scale = num_anchors ** 2 / 2 if mode == "official" else 1.0
    count = len(shapes)
    return [scale / (max(1, torch.Size(s).numel()) * count) for s in shapes]


class AnchorSet:
    """K anchor parameter sets reduced to their mean and spread, for a K-independent distance.

    `anchors` is a list over the K networks of lists of tensors, each aligned with the parameters
    the distance will later be measured for. Tensors are copied, detached, onto `device`.
    `reference` (the starting parameters) is required by the ``'relative'`` and ``'task'`` distances,
    whose unit (and, for ``'task'``, direction) it sets.
    """

    def __init__(self, anchors: Sequence[Sequence[torch.Tensor]], mode: str = "l2",
                 device: Union[torch.device, str, None] = None, dtype: Optional[torch.dtype] = None,
                 reference: Optional[Sequence[torch.Tensor]] = None):
        if not anchors:
            raise ValueError("need at least one anchor network (K >= 1)")
        sizes = {len(a) for a in anchors}
        if len(sizes) != 1:
            raise ValueError("every anchor network must provide the same number of tensors")
        shapes = [t.shape for t in anchors[0]]
        for k, anchor in enumerate(anchors):
            for p, t in enumerate(anchor):
                if t.shape != shapes[p]:
                    raise ValueError(f"anchor {k} tensor {p} has shape {tuple(t.shape)}, expected {tuple(shapes[p])}")
        self.mode = mode
        self.num_anchors = len(anchors)
        self.weights = _tensor_weights(shapes, mode, len(anchors))
        means, spread = [], 0.0
        with torch.no_grad():
            for p, weight in enumerate(self.weights):
                stack = torch.stack([a[p].detach().to(device="cpu", dtype=torch.float64) for a in anchors])
                mu = stack.mean(0)
                spread += weight * float((stack - mu).square().sum()) / self.num_anchors
                target_dtype = dtype or anchors[0][p].dtype
                means.append(mu.to(device=device or anchors[0][p].device, dtype=target_dtype).contiguous())
        self.means = means
        self.spread = spread
        self.unit = 1.0
        self.task: Optional[List[torch.Tensor]] = None
        if mode in _NEEDS_REFERENCE:
            if reference is None:
                raise ValueError(f"the {mode!r} distance needs the starting parameters (reference=...)")
            self.spread = 0.0
            with torch.no_grad():
                unit = float(self.distance(reference))
            if not unit > 0:
                raise ValueError(f"the starting parameters coincide with the centre of the adapted networks; the "
                                 f"{mode!r} distance has no unit (pass networks made by --mode=adapt)")
            self.weights = [w / unit for w in self.weights]
            self.unit = unit
        if mode == "task":
            with torch.no_grad():  # τ / ‖τ‖², so that s = ⟨θ − μ, τ⟩ / ‖τ‖² is one fused dot product
                self.task = [((r.detach().to(m) - m) / unit).contiguous() for r, m in zip(reference, self.means)]

    def distance(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        """d(θ) averaged over the K anchors (for ``'task'``: the squared progress along τ); a differentiable scalar."""
        if self.task is not None:
            if len(params) != len(self.means):
                raise ValueError(f"got {len(params)} parameters but {len(self.means)} anchors")
            diffs = torch._foreach_sub(list(params), self.means)
            progress = torch.stack([(d * t).sum() for d, t in zip(diffs, self.task)]).float().sum()
            return progress.square()
        return weighted_sq_distance(params, self.means, self.weights) + self.spread


def distance(params: Sequence[torch.Tensor], anchors: Sequence[Sequence[torch.Tensor]],
             mode: str = "l2", reference: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """d(θ, {θ_N^k}) for `mode` in `DISTANCE_MODES` (see the module docstring); `reference` as for `AnchorSet`."""
    return AnchorSet(anchors, mode, device=params[0].device if params else None, reference=reference).distance(params)


def require_device(named: Sequence[Tuple[str, torch.Tensor]], device: torch.device) -> None:
    """Raise one clear error if a parameter is not on `device` (a penalty never moves tensors per step)."""
    for name, p in named:
        if p.device != torch.device(device):
            raise ValueError(f"generator parameter {name} is on {p.device}, not on the loss device {device}; "
                             "move the networks to the device before building the loss")


def state_tensors(source: Union[torch.nn.Module, Mapping[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Name → tensor for a generator module (parameters only) or an already-made state dict."""
    if isinstance(source, torch.nn.Module):
        return dict(named_generator_parameters(source))
    if isinstance(source, Mapping):
        return dict(source)
    raise ValueError(f"expected a generator module or a state dict, got {type(source).__name__}")


def gather_aligned(source: Union[torch.nn.Module, Mapping[str, torch.Tensor]], names: Sequence[str],
                   shapes: Sequence[torch.Size], what: str = "network") -> List[torch.Tensor]:
    """Tensors of `source` for `names`, checked against `shapes`; one clear error on mismatch."""
    tensors = state_tensors(source)
    out = []
    for name, shape in zip(names, shapes):
        if name not in tensors:
            raise ValueError(f"{what} has no parameter {name!r}; it must have the same architecture as the generator")
        t = tensors[name]
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{what} parameter {name!r} has shape {tuple(t.shape)} but the generator's is "
                             f"{tuple(shape)}; it must have the same architecture")
        out.append(t)
    return out
