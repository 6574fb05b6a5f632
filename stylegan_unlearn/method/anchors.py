"""Where the method starts and what it pushes away from: θ_G (the pretrained G_ema) and the adapted θ_N.

The method adapts from, unlearns from and anchors EWC at the pretrained **G_ema**. The reference
loops resume G from the pkl's `G` and only then build the loss, and a patch can add code only at
the documented train.py anchors; so the loss plugins take `start_from=<the --resume pkl>` and, when
they are built (in every process, before anything is anchored), call `start_at_g_ema` to copy that
pkl's G_ema into the generator they were handed. Every name and shape must match: a generator that
train.py built differently from the pkl (another `--cfg`) fails with one sentence instead of silently
training a partly fresh network.

`load_adapted_generator` gives the adapted generator θ_N (its G_ema, as the official code reads
`g_ema`) from a pkl path, a loaded pkl dict, a module or a state dict.
"""
import os
from typing import Any, Mapping, Union

import torch

from stylegan_unlearn.method.architecture import generator_tensors, layout_difference, stored_tensors
from stylegan_unlearn.method.params import GeneratorLike
from stylegan_unlearn.pkl import load_networks

__all__ = ["start_at_g_ema", "load_adapted_generator", "AdaptedSource"]

AdaptedSource = Union[str, "os.PathLike[str]", torch.nn.Module, Mapping[str, Any]]


def start_at_g_ema(G_or_parts: GeneratorLike, pkl: str) -> None:
    """Copy the parameters and buffers of `pkl`'s G_ema into the generator (or ADA pair), by name."""
    source = stored_tensors(load_networks(str(pkl), ("G_ema",), option="start_from", rebuilt=False)["G_ema"])
    target = generator_tensors(G_or_parts)
    difference = layout_difference(target, source, "the generator train.py built", f"the G_ema of '{pkl}'")
    if difference:
        raise ValueError(f"cannot start from the G_ema of '{pkl}' ({difference}); build the generator with the "
                         "options that made the pkl (e.g. its --cfg)")
    with torch.no_grad():
        for name, tensor in target.items():
            tensor.copy_(source[name])


def load_adapted_generator(source: AdaptedSource) -> Union[torch.nn.Module, Mapping[str, torch.Tensor]]:
    """The adapted generator (G_ema) from a pkl path, a loaded pkl dict, a module or a state dict."""
    if isinstance(source, (str, os.PathLike)):
        return load_networks(os.fspath(source), ("G_ema",), option="adapted")["G_ema"]
    if isinstance(source, torch.nn.Module):
        return source
    if isinstance(source, Mapping):
        for key in ("G_ema", "G"):
            if isinstance(source.get(key), torch.nn.Module):
                return source[key]
        if all(isinstance(v, torch.Tensor) for v in source.values()):
            return source
    raise ValueError(f"cannot use {type(source).__name__} as an adapted network; pass a pkl path")
