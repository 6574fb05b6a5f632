"""The diagonal Fisher information used by the EWC penalty of the adaptation stage.

F_i = (1/N) Σ_n (∂ D(G(z_n)) / ∂θ_i)² — the mean over N generated samples of the squared
per-sample gradient of the discriminator's *raw logit* with respect to the selected generator
parameters (the official code: N = 32, no log-sigmoid, the Li et al. 2020 proxy).

Sampling, as in the official code: z ~ N(0, I) with style mixing at probability 0.9 (one random
cutoff per sample). Unlike the official code everything is seeded and noise is taken in
``noise_mode='const'``, so the estimate is deterministic. Conditional generators get uniformly drawn
one-hot labels. Both networks are put in eval mode for the estimate (no w_avg update) and restored
afterwards; G and D run in float32 (``force_fp32``) even where the networks use fp16 blocks, because
λ = 5e8 magnifies any rounding in F.

Minibatch statistics: D's minibatch-stddev layer sees each sample together with the others of its
group, as in training (the official code runs D on its batch of 32 and takes each sample's logit
gradient). The N samples are split into groups of D's own minibatch-std group size (``mbstd_group``
overrides it; 1 gives the batch-of-one estimate), each group goes through D as one batch, and each
sample's logit is differentiated through the whole group — its gradient includes the path through
the group's standard deviation:
    F_i = (1/N) Σ_groups Σ_{n ∈ group} (∂ D(G(z_group))_n / ∂θ_i)².

Per-sample gradients are vectorised with `torch.func`: per group the Jacobian of its logits
(``jacrev``), vmapped over groups, in chunks that bound memory. The synthesis network is called with
non-fused modulated convolutions (one shared weight, a plain batched convolution under vmap: about
twice as fast as the fused, grouped form); where that path cannot be vmapped (e.g. a custom autograd
Function without vmap support) the fused form is tried, and if vmap cannot run at all a plain loop
over groups and their samples computes the very same quantity (one warning says so).
"""
import contextlib
import math
import os
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.func import functional_call, jacrev, vmap

from stylegan_unlearn import fileio
from stylegan_unlearn.method.params import GeneratorLike, select_params, unwrap

__all__ = ["compute_fisher", "save_fisher", "load_fisher", "load_or_compute_fisher", "minibatch_group_size",
           "FISHER_FORMAT"]

FISHER_FORMAT = "stylegan-unlearn-fisher/1"
STYLE_MIXING_PROB = 0.9


def _generator_parts(G_or_parts: GeneratorLike) -> Tuple[torch.nn.Module, torch.nn.Module]:
    if isinstance(G_or_parts, torch.nn.Module):
        G = unwrap(G_or_parts)
        return unwrap(G.mapping), unwrap(G.synthesis)
    mapping, synthesis = G_or_parts
    return unwrap(mapping), unwrap(synthesis)


@contextlib.contextmanager
def _eval_mode(*modules: torch.nn.Module) -> Iterator[None]:
    states = [[(m, m.training) for m in module.modules()] for module in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for state in states:
            for m, training in state:
                m.training = training


def _sample_inputs(mapping: torch.nn.Module, num_samples: int, seed: int, style_mixing_prob: float,
                   device: torch.device) -> Tuple[torch.Tensor, ...]:
    """Latents, mixing latents, per-sample mixing masks [N, num_ws, 1] and labels, all seeded."""
    gen = torch.Generator().manual_seed(int(seed))
    z_dim, c_dim, num_ws = int(mapping.z_dim), int(mapping.c_dim), int(mapping.num_ws)
    z = torch.randn([num_samples, z_dim], generator=gen)
    z_mix = torch.randn([num_samples, z_dim], generator=gen)
    cutoff = torch.randint(1, max(num_ws, 2), [num_samples], generator=gen)
    mixing = torch.rand([num_samples], generator=gen) < style_mixing_prob
    cutoff = torch.where(mixing, cutoff, torch.full_like(cutoff, num_ws))
    mask = (torch.arange(num_ws).unsqueeze(0) >= cutoff.unsqueeze(1)).unsqueeze(2)
    c = torch.zeros([num_samples, c_dim])
    if c_dim > 0:
        c[torch.arange(num_samples), torch.randint(0, c_dim, [num_samples], generator=gen)] = 1
    return tuple(t.to(device) for t in (z, z_mix, mask, c))


class _GroupLogits:
    """D(G(z)) for one group of samples (D sees the group as its batch) as a function of the selected
    generator parameters; inputs carry the group as their leading dimension, the result is [group]."""

    def __init__(self, mapping: torch.nn.Module, synthesis: torch.nn.Module, D: torch.nn.Module,
                 synthesis_kwargs: Dict[str, object]):
        self.mapping, self.synthesis, self.D = mapping, synthesis, D
        self.synthesis_kwargs = synthesis_kwargs

    def __call__(self, selected: Dict[str, torch.Tensor], z, z_mix, mask, c) -> torch.Tensor:
        mapping_params = {n[len("mapping."):]: t for n, t in selected.items() if n.startswith("mapping.")}
        synthesis_params = {n[len("synthesis."):]: t for n, t in selected.items() if n.startswith("synthesis.")}
        ws = functional_call(self.mapping, mapping_params, (z, c))
        ws_mix = functional_call(self.mapping, mapping_params, (z_mix, c))
        ws = torch.where(mask, ws_mix, ws)
        img = functional_call(self.synthesis, synthesis_params, (ws,), dict(self.synthesis_kwargs))
        return self.D(img, c, force_fp32=True).reshape([-1])


def minibatch_group_size(D: torch.nn.Module, num_samples: int) -> int:
    """How many samples D's minibatch-stddev layer couples (1 without one, all of them for group size None)."""
    layers = [m for m in unwrap(D).modules() if hasattr(m, "group_size") and hasattr(m, "num_channels")]
    if not layers:
        return 1
    group = layers[0].group_size
    return num_samples if group is None else max(1, min(int(group), num_samples))


def _groups(inputs: Sequence[torch.Tensor], group: int) -> List[Tuple[torch.Tensor, ...]]:
    """Split the sample inputs into full groups [num_groups, group, ...] plus a remainder group, if any."""
    num = inputs[0].shape[0]
    full = num // group * group
    parts = []
    if full:
        parts.append(tuple(t[:full].reshape(full // group, group, *t.shape[1:]) for t in inputs))
    if full < num:
        parts.append(tuple(t[full:].unsqueeze(0) for t in inputs))
    return parts


# Synthesis call variants, fastest first. Non-fused modulated convolutions share one weight across
# the vmapped samples (a plain batched convolution); the fused form needs per-sample grouped
# convolutions but avoids ops that some versions cannot vmap (and networks without the keyword).
_SYNTHESIS_VARIANTS = ({"noise_mode": "const", "force_fp32": True, "fused_modconv": False},
                       {"noise_mode": "const", "force_fp32": True})
_WORKING_VARIANT: Dict[type, int] = {}  # synthesis class -> first variant that vmapped, to skip failing ones


def _fisher_vmap(fn: _GroupLogits, selected: Dict[str, torch.Tensor], inputs: Sequence[torch.Tensor],
                 chunk: int, group: int) -> Dict[str, torch.Tensor]:
    per_group_jacobian = vmap(jacrev(fn), in_dims=(None, 0, 0, 0, 0))
    total = {n: torch.zeros_like(t, dtype=torch.float32) for n, t in selected.items()}
    groups_per_chunk = max(1, chunk // group)
    for grouped in _groups(inputs, group):
        for start in range(0, grouped[0].shape[0], groups_per_chunk):
            jacobians = per_group_jacobian(selected, *(t[start:start + groups_per_chunk] for t in grouped))
            for n, g in jacobians.items():  # [groups, group, *shape]
                total[n] += g.float().square().sum((0, 1))
    return total


def _fisher_loop(fn: _GroupLogits, selected: Dict[str, torch.Tensor], inputs: Sequence[torch.Tensor],
                 group: int) -> Dict[str, torch.Tensor]:
    names = list(selected)
    leaves = [selected[n].detach().requires_grad_(True) for n in names]
    total = {n: torch.zeros_like(t, dtype=torch.float32) for n, t in selected.items()}
    for grouped in _groups(inputs, group):
        for index in range(grouped[0].shape[0]):
            logits = fn(dict(zip(names, leaves)), *(t[index] for t in grouped))
            for j in range(logits.shape[0]):
                grads = torch.autograd.grad(logits[j], leaves, allow_unused=True, retain_graph=j + 1 < len(logits))
                for n, g in zip(names, grads):
                    if g is not None:
                        total[n] += g.float().square()
    return total


def _vectorised(parts, selected, inputs, chunk, group) -> Tuple[Optional[Dict[str, torch.Tensor]], str]:
    """vmap over each synthesis variant in turn; (None, last error) when none can be vectorised."""
    error = ""
    synthesis_type = type(parts[1])
    start = _WORKING_VARIANT.get(synthesis_type, 0)
    for index in range(start, len(_SYNTHESIS_VARIANTS)):
        try:
            with torch.no_grad():  # `jacrev` ignores an outer no_grad; this keeps results graph-free
                total = _fisher_vmap(_GroupLogits(*parts, _SYNTHESIS_VARIANTS[index]), selected, inputs, chunk, group)
        except Exception as err:  # no vmap rule for some op (or no such keyword): try the next variant
            error = f"{type(err).__name__}: {err}"
            continue
        _WORKING_VARIANT[synthesis_type] = index
        return total, ""
    return None, error


def _looped(parts, selected, inputs, group) -> Dict[str, torch.Tensor]:
    for index, kwargs in enumerate(_SYNTHESIS_VARIANTS):
        try:
            return _fisher_loop(_GroupLogits(*parts, kwargs), selected, inputs, group)
        except TypeError:  # a synthesis network without the `fused_modconv` keyword
            if index == len(_SYNTHESIS_VARIANTS) - 1:
                raise
    raise AssertionError("unreachable")


def compute_fisher(G: GeneratorLike, D: torch.nn.Module, *, params: str = "synthesis", num_samples: int = 32,
                   chunk: int = 8, seed: int = 0, device: Union[torch.device, str, None] = None,
                   style_mixing_prob: float = STYLE_MIXING_PROB, method: str = "auto",
                   mbstd_group: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """Diagonal Fisher of the selected G parameters: name → float32 tensor on `device`.

    `G` is a Generator or a ``(G_mapping, G_synthesis)`` pair (DDP wrappers are unwrapped).
    `method` is ``'auto'`` (vmap, falling back to the loop with one warning), ``'vmap'`` or ``'loop'``.
    `mbstd_group` is how many samples go through D together (default: D's minibatch-std group size).
    """
    if num_samples < 1:
        raise ValueError(f"fisher num_samples must be at least 1, got {num_samples}")
    if chunk < 1:
        raise ValueError(f"fisher chunk must be at least 1, got {chunk}")
    if method not in ("auto", "vmap", "loop"):
        raise ValueError(f"fisher method must be 'auto', 'vmap' or 'loop', got {method!r}")
    if mbstd_group is not None and mbstd_group < 1:
        raise ValueError(f"fisher mbstd_group must be at least 1, got {mbstd_group}")
    mapping, synthesis = _generator_parts(G)
    D = unwrap(D)
    group = minibatch_group_size(D, num_samples) if mbstd_group is None else min(int(mbstd_group), num_samples)
    named = select_params((mapping, synthesis), params)
    device = torch.device(device) if device is not None else named[0][1].device
    selected = {n: p.detach() for n, p in named}
    if any(t.device != device for t in selected.values()):
        raise ValueError(f"the generator's parameters are not on {device}; move G and D there first")
    inputs = _sample_inputs(mapping, num_samples, seed, style_mixing_prob, device)
    parts = (mapping, synthesis, D)
    with _eval_mode(*parts):
        total = None
        if method != "loop":
            total, error = _vectorised(parts, selected, inputs, chunk, group)
            if total is None and method == "vmap":
                raise RuntimeError(f"vectorised Fisher failed: {error}")
            if total is None:
                warnings.warn(f"vectorised Fisher failed ({error}); using the slower per-sample loop",
                              RuntimeWarning, stacklevel=2)
        if total is None:
            total = _looped(parts, selected, inputs, group)
    return {n: (t / num_samples).detach() for n, t in total.items()}


def _fingerprint(tensors: Sequence[torch.Tensor]) -> List[float]:
    """Two float64 sums identifying the anchor weights, so a cache built for other weights is not reused."""
    with torch.no_grad():
        s1 = sum(float(t.detach().double().sum()) for t in tensors)
        s2 = sum(float(t.detach().double().square().sum()) for t in tensors)
    return [s1, s2]


def save_fisher(path: Union[str, os.PathLike], fisher: Dict[str, torch.Tensor], meta: Optional[dict] = None) -> None:
    """Write the Fisher (and JSON-like `meta`) to a ``.pt`` file atomically."""
    payload = {"format": FISHER_FORMAT, "fisher": {n: t.detach().cpu() for n, t in fisher.items()},
               "meta": dict(meta or {})}
    with fileio.atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def load_fisher(path: Union[str, os.PathLike]) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read a file written by `save_fisher`; returns ``(fisher, meta)``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Fisher file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read Fisher file {path} ({err}); delete it to recompute") from err
    if not isinstance(payload, dict) or payload.get("format") != FISHER_FORMAT:
        raise ValueError(f"{path} is not a stylegan-unlearn Fisher file; delete it or choose another path")
    return dict(payload["fisher"]), dict(payload.get("meta", {}))


def _cache_matches(fisher: Dict[str, torch.Tensor], meta: dict, named: Sequence[Tuple[str, torch.Tensor]],
                   num_samples: int, seed: int, group: int, fingerprint: List[float]) -> bool:
    if list(fisher) != [n for n, _ in named]:
        return False
    if any(tuple(fisher[n].shape) != tuple(p.shape) for n, p in named):
        return False
    if meta.get("num_samples") != num_samples or meta.get("seed") != seed or meta.get("mbstd_group") != group:
        return False
    cached = meta.get("theta_fingerprint")
    return (isinstance(cached, list) and len(cached) == 2
            and all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(cached, fingerprint)))


def load_or_compute_fisher(G: GeneratorLike, D: torch.nn.Module, cache: Union[str, os.PathLike, None] = None, *,
                           params: str = "synthesis", num_samples: int = 32, chunk: int = 8, seed: int = 0,
                           device: Union[torch.device, str, None] = None,
                           mbstd_group: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """The Fisher from `cache` when it was made for these parameters (names, shapes, weights, N, seed, group),
    otherwise computed and, if `cache` is given, saved there atomically."""
    named = select_params(_generator_parts(G), params)
    group = minibatch_group_size(D, num_samples) if mbstd_group is None else min(int(mbstd_group), num_samples)
    fingerprint = _fingerprint([p for _, p in named])
    target = torch.device(device) if device is not None else named[0][1].device
    if cache is not None and os.path.isfile(cache):
        try:
            fisher, meta = load_fisher(cache)
        except ValueError as err:
            warnings.warn(f"{err}; recomputing the Fisher", RuntimeWarning, stacklevel=2)
        else:
            if _cache_matches(fisher, meta, named, num_samples, seed, group, fingerprint):
                return {n: t.to(device=target, dtype=torch.float32) for n, t in fisher.items()}
            warnings.warn(f"Fisher cache {cache} was made for other parameters; recomputing it",
                          RuntimeWarning, stacklevel=2)
    fisher = compute_fisher(G, D, params=params, num_samples=num_samples, chunk=chunk, seed=seed, device=target,
                            mbstd_group=group)
    if cache is not None:
        meta = {"params": params, "num_samples": num_samples, "seed": seed, "mbstd_group": group,
                "theta_fingerprint": fingerprint}
        save_fisher(cache, fisher, meta)
    return fisher
