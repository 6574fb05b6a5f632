"""The diagonal Fisher information used by the EWC penalty of the adaptation stage.

F_i = (1/N) Σ_n (∂ D(G(z_n)) / ∂θ_i)² — the mean over N generated samples of the squared
per-sample gradient of the discriminator's *raw logit* with respect to the selected generator
parameters (the official code: N = 32, no log-sigmoid, the Li et al. 2020 proxy).

Sampling, as in the official code: z ~ N(0, I) with style mixing at probability 0.9 (one random
cutoff per sample). Unlike the official code everything is seeded and noise is taken in
``noise_mode='const'``, so the estimate is deterministic. Each sample passes through G and D on its
own (batch of one): D's minibatch-stddev layer would otherwise couple the samples and there
would be no per-sample gradient. G and D run in float32 (``force_fp32``) even where the networks
use fp16 blocks, because λ = 5e8 magnifies any rounding in F. Conditional generators get uniformly drawn one-hot labels.
Both networks are put in eval mode for the estimate (no w_avg update) and restored afterwards.

Per-sample gradients are vectorised with `torch.func` (`functional_call` + `vmap` + `grad`) in
chunks that bound memory. The synthesis network is called with non-fused modulated convolutions
(one shared weight, a plain batched convolution under vmap: about twice as fast as the fused,
grouped form); where that path cannot be vmapped (e.g. a custom autograd Function without vmap
support) the fused form is tried, and if vmap cannot run at all a plain per-sample loop computes
the very same quantity (one warning says so).
"""
import contextlib
import math
import os
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.func import functional_call, grad, vmap

from stylegan_unlearn import fileio
from stylegan_unlearn.params import GeneratorLike, select_params, unwrap

__all__ = ["compute_fisher", "save_fisher", "load_fisher", "load_or_compute_fisher", "FISHER_FORMAT"]

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


class _SampleLogit:
    """D(G(z)) for a single sample as a function of the selected generator parameters."""

    def __init__(self, mapping: torch.nn.Module, synthesis: torch.nn.Module, D: torch.nn.Module,
                 synthesis_kwargs: Dict[str, object]):
        self.mapping, self.synthesis, self.D = mapping, synthesis, D
        self.synthesis_kwargs = synthesis_kwargs

    def __call__(self, selected: Dict[str, torch.Tensor], z, z_mix, mask, c) -> torch.Tensor:
        z, z_mix, mask, c = (t.unsqueeze(0) for t in (z, z_mix, mask, c))
        mapping_params = {n[len("mapping."):]: t for n, t in selected.items() if n.startswith("mapping.")}
        synthesis_params = {n[len("synthesis."):]: t for n, t in selected.items() if n.startswith("synthesis.")}
        ws = functional_call(self.mapping, mapping_params, (z, c))
        ws_mix = functional_call(self.mapping, mapping_params, (z_mix, c))
        ws = torch.where(mask, ws_mix, ws)
        img = functional_call(self.synthesis, synthesis_params, (ws,), dict(self.synthesis_kwargs))
        return self.D(img, c, force_fp32=True).reshape([])


# Synthesis call variants, fastest first. Non-fused modulated convolutions share one weight across
# the vmapped samples (a plain batched convolution); the fused form needs per-sample grouped
# convolutions but avoids ops that some versions cannot vmap (and networks without the keyword).
_SYNTHESIS_VARIANTS = ({"noise_mode": "const", "force_fp32": True, "fused_modconv": False},
                       {"noise_mode": "const", "force_fp32": True})
_WORKING_VARIANT: Dict[type, int] = {}  # synthesis class -> first variant that vmapped, to skip failing ones


def _fisher_vmap(fn: _SampleLogit, selected: Dict[str, torch.Tensor], inputs: Sequence[torch.Tensor],
                 chunk: int) -> Dict[str, torch.Tensor]:
    per_sample_grad = vmap(grad(fn), in_dims=(None, 0, 0, 0, 0))
    total = {n: torch.zeros_like(t, dtype=torch.float32) for n, t in selected.items()}
    num = inputs[0].shape[0]
    for start in range(0, num, chunk):
        grads = per_sample_grad(selected, *(t[start:start + chunk] for t in inputs))
        for n, g in grads.items():
            total[n] += g.float().square().sum(0)
    return total


def _fisher_loop(fn: _SampleLogit, selected: Dict[str, torch.Tensor],
                 inputs: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
    names = list(selected)
    leaves = [selected[n].detach().requires_grad_(True) for n in names]
    total = {n: torch.zeros_like(t, dtype=torch.float32) for n, t in selected.items()}
    for i in range(inputs[0].shape[0]):
        logit = fn(dict(zip(names, leaves)), *(t[i] for t in inputs))
        grads = torch.autograd.grad(logit, leaves, allow_unused=True)
        for n, g in zip(names, grads):
            if g is not None:
                total[n] += g.float().square()
    return total


def _vectorised(parts, selected, inputs, chunk) -> Tuple[Optional[Dict[str, torch.Tensor]], str]:
    """vmap over each synthesis variant in turn; (None, last error) when none can be vectorised."""
    error = ""
    synthesis_type = type(parts[1])
    start = _WORKING_VARIANT.get(synthesis_type, 0)
    for index in range(start, len(_SYNTHESIS_VARIANTS)):
        try:
            with torch.no_grad():  # `grad` ignores an outer no_grad; this keeps results graph-free
                total = _fisher_vmap(_SampleLogit(*parts, _SYNTHESIS_VARIANTS[index]), selected, inputs, chunk)
        except Exception as err:  # no vmap rule for some op (or no such keyword): try the next variant
            error = f"{type(err).__name__}: {err}"
            continue
        _WORKING_VARIANT[synthesis_type] = index
        return total, ""
    return None, error


def _looped(parts, selected, inputs) -> Dict[str, torch.Tensor]:
    for index, kwargs in enumerate(_SYNTHESIS_VARIANTS):
        try:
            return _fisher_loop(_SampleLogit(*parts, kwargs), selected, inputs)
        except TypeError:  # a synthesis network without the `fused_modconv` keyword
            if index == len(_SYNTHESIS_VARIANTS) - 1:
                raise
    raise AssertionError("unreachable")


def compute_fisher(G: GeneratorLike, D: torch.nn.Module, *, params: str = "synthesis", num_samples: int = 32,
                   chunk: int = 8, seed: int = 0, device: Union[torch.device, str, None] = None,
                   style_mixing_prob: float = STYLE_MIXING_PROB, method: str = "auto") -> Dict[str, torch.Tensor]:
    """Diagonal Fisher of the selected G parameters: name → float32 tensor on `device`.

    `G` is a Generator or a ``(G_mapping, G_synthesis)`` pair (DDP wrappers are unwrapped).
    `method` is ``'auto'`` (vmap, falling back to the loop with one warning), ``'vmap'`` or ``'loop'``.
    """
    if num_samples < 1:
        raise ValueError(f"fisher num_samples must be at least 1, got {num_samples}")
    if chunk < 1:
        raise ValueError(f"fisher chunk must be at least 1, got {chunk}")
    if method not in ("auto", "vmap", "loop"):
        raise ValueError(f"fisher method must be 'auto', 'vmap' or 'loop', got {method!r}")
    mapping, synthesis = _generator_parts(G)
    D = unwrap(D)
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
            total, error = _vectorised(parts, selected, inputs, chunk)
            if total is None and method == "vmap":
                raise RuntimeError(f"vectorised Fisher failed: {error}")
            if total is None:
                warnings.warn(f"vectorised Fisher failed ({error}); using the slower per-sample loop",
                              RuntimeWarning, stacklevel=2)
        if total is None:
            total = _looped(parts, selected, inputs)
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
                   num_samples: int, seed: int, fingerprint: List[float]) -> bool:
    if list(fisher) != [n for n, _ in named]:
        return False
    if any(tuple(fisher[n].shape) != tuple(p.shape) for n, p in named):
        return False
    if meta.get("num_samples") != num_samples or meta.get("seed") != seed:
        return False
    cached = meta.get("theta_fingerprint")
    return (isinstance(cached, list) and len(cached) == 2
            and all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(cached, fingerprint)))


def load_or_compute_fisher(G: GeneratorLike, D: torch.nn.Module, cache: Union[str, os.PathLike, None] = None, *,
                           params: str = "synthesis", num_samples: int = 32, chunk: int = 8, seed: int = 0,
                           device: Union[torch.device, str, None] = None) -> Dict[str, torch.Tensor]:
    """The Fisher from `cache` when it was made for these parameters (names, shapes, weights, N, seed),
    otherwise computed and, if `cache` is given, saved there atomically."""
    named = select_params(_generator_parts(G), params)
    fingerprint = _fingerprint([p for _, p in named])
    target = torch.device(device) if device is not None else named[0][1].device
    if cache is not None and os.path.isfile(cache):
        try:
            fisher, meta = load_fisher(cache)
        except ValueError as err:
            warnings.warn(f"{err}; recomputing the Fisher", RuntimeWarning, stacklevel=2)
        else:
            if _cache_matches(fisher, meta, named, num_samples, seed, fingerprint):
                return {n: t.to(device=target, dtype=torch.float32) for n, t in fisher.items()}
            warnings.warn(f"Fisher cache {cache} was made for other parameters; recomputing it",
                          RuntimeWarning, stacklevel=2)
    fisher = compute_fisher(G, D, params=params, num_samples=num_samples, chunk=chunk, seed=seed, device=target)
    if cache is not None:
        meta = {"params": params, "num_samples": num_samples, "seed": seed, "theta_fingerprint": fingerprint}
        save_fisher(cache, fisher, meta)
    return fisher
