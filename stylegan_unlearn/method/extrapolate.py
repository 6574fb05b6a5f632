"""The parameter-space extrapolation baseline: move the generator away from the adapted networks.

    θ = θ_G + γ · (θ_G − mean_k θ_N^k)

applied to both `G` and `G_ema` of a network pickle (each against the same-named network of the
adapted pickles, falling back to their `G_ema` when an adapted pickle lacks it). γ > 0 moves away
from the negatives. Sign conventions elsewhere: the official code writes θ_G + γ_code·(θ_N − θ_G)
with negative γ_code, so γ = −γ_code; the paper's Figure 1 writes θ_N + γ_paper·(θ_G − θ_N), so
γ = γ_paper − 1 for a single adapted network.

Which parameters move (``params``): ``'all'`` (default, as the official code) = every generator
parameter; ``'synthesis'`` = the synthesis convolutions from 8×8 up (see `stylegan_unlearn.method.params`).
Buffers (`w_avg`, `noise_const`, filters) and the discriminator are kept from the base pickle.
"""
import copy
import math
import os
from typing import Any, Dict, List, Mapping, Sequence, Union

import torch

from stylegan_unlearn.fileio import check_writable_dir
from stylegan_unlearn.method import options
from stylegan_unlearn.method.params import gather_aligned, select_params
from stylegan_unlearn.pkl import check_network_file, load_networks, save_network_pkl

__all__ = ["extrapolate", "extrapolate_files"]

AdaptedItem = Union[Mapping[str, Any], torch.nn.Module]


def _adapted_network(item: AdaptedItem, key: str, index: int) -> torch.nn.Module:
    if isinstance(item, torch.nn.Module):
        return item
    for candidate in (key, "G_ema"):
        net = item.get(candidate) if isinstance(item, Mapping) else None
        if isinstance(net, torch.nn.Module):
            return net
    raise ValueError(f"adapted network #{index} has no usable {key} or G_ema generator; "
                     "was it loaded from a StyleGAN2 network pickle?")


def _extrapolated(base: torch.nn.Module, anchors: List[torch.nn.Module], gamma: float, params: str,
                  key: str) -> torch.nn.Module:
    net = copy.deepcopy(base)
    named = select_params(net, params)
    names, shapes = [n for n, _ in named], [p.shape for _, p in named]
    aligned = [gather_aligned(a, names, shapes, f"adapted {key} #{i}") for i, a in enumerate(anchors)]
    with torch.no_grad():
        for index, (_, p) in enumerate(named):
            theta = p.detach().to(torch.float64)
            mean = torch.stack([a[index].detach().to(device=p.device, dtype=torch.float64) for a in aligned]).mean(0)
            p.copy_((theta + gamma * (theta - mean)).to(p.dtype))
    return net


def extrapolate(G_pkl_data: Mapping[str, Any], adapted_list: Sequence[AdaptedItem], gamma: float,
                params: str = options.default("params", "extrapolate")) -> Dict[str, Any]:
    """A new pickle dict whose `G` and `G_ema` are θ_G + γ(θ_G − mean_k θ_N^k); inputs are untouched."""
    adapted_list = list(adapted_list)
    if not adapted_list:
        raise ValueError("extrapolation needs at least one adapted network")
    if not math.isfinite(float(gamma)):
        raise ValueError(f"the extrapolation step gamma must be a finite number, got {gamma}")
    out = dict(G_pkl_data)
    moved = 0
    for key in ("G", "G_ema"):
        base = G_pkl_data.get(key)
        if base is None:
            continue
        if not isinstance(base, torch.nn.Module):
            raise ValueError(f"the base pickle's {key} is not a network this package can rebuild "
                             f"({type(base).__name__}); extrapolation needs StyleGAN2 generators")
        anchors = [_adapted_network(item, key, i) for i, item in enumerate(adapted_list)]
        out[key] = _extrapolated(base, anchors, float(gamma), params, key)
        moved += 1
    if moved == 0:
        raise ValueError("the base pickle has neither G nor G_ema")
    return out


def _check_paths(network: str, adapted: Sequence[str], out: str, overwrite: bool) -> None:
    check_network_file(network, "--network")
    for path in adapted:
        check_network_file(path, "--adapted")
        if os.path.samefile(path, network):
            raise ValueError(f"--adapted {path} is the --network pickle itself; pass a network made by "
                             "--mode=adapt (the step away from it would be 0)")
    out_real = os.path.realpath(out)
    if any(out_real == os.path.realpath(p) for p in (network, *adapted)):
        raise ValueError(f"--out {out} is one of the input pickles; choose another path")
    if os.path.isdir(out):
        raise IsADirectoryError(f"--out {out} is a directory; give the path of the .pkl file to write")
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite or choose another --out")
    out_dir = os.path.dirname(out_real)
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"directory {out_dir} does not exist; create it first")
    check_writable_dir(out_dir, "the directory of --out")


def extrapolate_files(network: str, adapted: Sequence[str], gamma: float, out: str,
                      params: str = options.default("params", "extrapolate"), overwrite: bool = False) -> str:
    """Load the pickles (safe mode), extrapolate, and write `out` atomically; returns `out`.

    Every path is checked first (inputs exist, `out` is none of them, not a directory, not there unless
    `overwrite`, in a writable directory): ValueError / OSError before anything is written.
    """
    _check_paths(network, adapted, out, overwrite)
    base = load_networks(network, option="--network")
    adapted_data = [load_networks(path, option="--adapted") for path in adapted]
    save_network_pkl(out, extrapolate(base, adapted_data, gamma, params))
    return out
