"""Start the trained generator at a pkl's G_ema, inside any training loop.

The method adapts from, unlearns from and anchors EWC at the pretrained **G_ema**. The reference
loops resume G from the pkl's `G` and only then build the loss, and a patch can add code only at
the documented train.py anchors; so the loss plugins take `start_from=<the --resume pkl>` and, when
they are built (in every process, before anything is anchored), copy that pkl's G_ema into the
generator they were handed. Every name and shape must match: a generator that train.py built
differently from the pkl (another `--cfg`) fails here with one sentence instead of silently
training a partly fresh network.
"""
import torch

from stylegan_unlearn.method.architecture import generator_tensors, layout_difference, load_pkl_network, stored_tensors
from stylegan_unlearn.method.params import GeneratorLike

__all__ = ["start_at_g_ema"]


def start_at_g_ema(G_or_parts: GeneratorLike, pkl: str) -> None:
    """Copy the parameters and buffers of `pkl`'s G_ema into the generator (or ADA pair), by name."""
    source = stored_tensors(load_pkl_network(str(pkl), "G_ema", "start_from"))
    target = generator_tensors(G_or_parts)
    difference = layout_difference(target, source, "the generator train.py built", f"the G_ema of '{pkl}'")
    if difference:
        raise ValueError(f"cannot start from the G_ema of '{pkl}' ({difference}); build the generator with the "
                         "options that made the pkl (e.g. its --cfg)")
    with torch.no_grad():
        for name, tensor in target.items():
            tensor.copy_(source[name])
