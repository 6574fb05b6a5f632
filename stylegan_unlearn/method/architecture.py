"""Do two generators have the same architecture? Compared by tensor names and shapes, as weights move.

Used before a run starts (an `--adapted` network must be the `--resume` network's architecture,
checked before any run directory exists) and when a loss plugin starts the trained generator at a
pkl's G_ema. Names are the reference state-dict names, so our networks, reference networks, DDP
wrappers, ADA's `(G_mapping, G_synthesis)` pair and unrebuilt pkl records all compare alike.
"""
import os
from typing import Dict, Optional, Sequence, Tuple

import torch

from stylegan_unlearn.method.params import GeneratorLike, unwrap
from stylegan_unlearn.pkl import load_networks

__all__ = ["generator_tensors", "stored_tensors", "layout_difference", "check_adapted_networks"]

Layout = Dict[str, Tuple[int, ...]]


def _module_tensors(module: torch.nn.Module, prefix: str = "") -> Dict[str, torch.Tensor]:
    module = unwrap(module)
    tensors = {prefix + n: t for n, t in module.named_parameters()}
    tensors.update({prefix + n: t for n, t in module.named_buffers()})
    return tensors


def generator_tensors(G_or_parts: GeneratorLike) -> Dict[str, torch.Tensor]:
    """Every parameter and buffer of a generator, or of ADA's `(G_mapping, G_synthesis)` pair, by name."""
    if isinstance(G_or_parts, torch.nn.Module):
        return _module_tensors(G_or_parts)
    mapping, synthesis = G_or_parts
    return {**_module_tensors(mapping, "mapping."), **_module_tensors(synthesis, "synthesis.")}


def stored_tensors(network) -> Dict[str, torch.Tensor]:
    """Every parameter and buffer of a network loaded from a pkl (a module, or a record kept unrebuilt)."""
    if isinstance(network, torch.nn.Module):
        return _module_tensors(network)
    named = getattr(network, "named_tensors", None)
    if callable(named):
        return dict(named())
    raise ValueError(f"a {type(network).__name__} is not a network")


def _layout(tensors: Dict[str, torch.Tensor]) -> Layout:
    return {name: tuple(t.shape) for name, t in tensors.items()}


def layout_difference(expected: Dict[str, torch.Tensor], found: Dict[str, torch.Tensor],
                      expected_label: str, found_label: str) -> Optional[str]:
    """The first difference between two tensor layouts, as a clause ('X has a.b of shape [..], Y [..]'); None if equal."""
    want, have = _layout(expected), _layout(found)
    missing = [n for n in want if n not in have]
    if missing:
        more = f" and {len(missing) - 1} more tensors" if len(missing) > 1 else ""
        return f"{found_label} lacks {missing[0]}{more} of {expected_label}"
    extra = [n for n in have if n not in want]
    if extra:
        more = f" and {len(extra) - 1} more tensors" if len(extra) > 1 else ""
        return f"{found_label} has {extra[0]}{more}, which {expected_label} lacks"
    for name, shape in want.items():
        if have[name] != shape:
            return f"{name} is {list(have[name])} in {found_label} but {list(shape)} in {expected_label}"
    return None


def _is_url(path: str) -> bool:
    return "://" in path


def check_adapted_networks(resume: str, adapted: Sequence[str], resume_G=None) -> None:
    """Raise ValueError unless `resume` exists and every adapted G_ema has the --resume G's architecture.

    `resume_G` is the already loaded --resume G, if the caller has it. A URL resume is only fetched
    when there are adapted networks to compare with it.
    """
    if not adapted:
        if not _is_url(resume) and not os.path.isfile(resume):
            raise ValueError(f"--resume network '{resume}' does not exist; pass the path of a network pkl")
        return
    if resume_G is None:
        resume_G = load_networks(resume, ("G",), option="--resume", rebuilt=False)["G"]
    expected = stored_tensors(resume_G)
    for path in adapted:
        found = stored_tensors(load_networks(path, ("G_ema",), option="--adapted", rebuilt=False)["G_ema"])
        difference = layout_difference(expected, found, "the --resume network", "it")
        if difference:
            raise ValueError(f"--adapted network '{path}' is not of the --resume network's architecture "
                             f"({difference}); adapt it from '{resume}' with --mode=adapt")

