"""A class-balance term for pretraining the demo MNIST generator (its plugin: `training_hooks.balance`).

Small unconditional GANs trained on a CPU budget mode-collapse onto a few digits for tens of kimg.
`ClassBalancePenalty` is the term that `training_hooks.balance.ClassBalanceLoss` adds to the reference
StyleGAN2 loss in the generator's main phase,

    λ · KL( mean over the batch of softmax(guide(G(z))) ‖ uniform over the classes )

where the *guide* is a separate digit classifier (TorchScript, same input contract as the judge:
NCHW in [-1, 1]). It only shapes the pretrained demo model; it is not part of Adapt-then-Unlearn, and
the bundled judge that evaluates everything is a different network.
"""
import os
import warnings
from typing import Optional

import torch

from torch_utils import training_stats

__all__ = ["ClassBalancePenalty", "class_balance_kl"]


def class_balance_kl(logits: torch.Tensor) -> torch.Tensor:
    """KL(batch-mean class distribution ‖ uniform) of class logits [N, classes]; 0 when perfectly balanced."""
    mean_probs = logits.softmax(1).mean(0)
    num_classes = mean_probs.numel()
    return (mean_probs * (mean_probs * num_classes).clamp_min(1e-8).log()).sum()


class ClassBalancePenalty:
    """λ·KL(batch class distribution ‖ uniform) under a frozen guide classifier."""

    def __init__(self, guide: str, weight: float, device):
        if not os.path.isfile(guide):
            raise FileNotFoundError(f"class-balance guide classifier {guide} does not exist")
        if not weight >= 0:
            raise ValueError(f"balance_weight must be a non-negative number, got {weight}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # TorchScript is the exchange format
            self.guide = torch.jit.load(guide, map_location=torch.device(device)).eval()
        for p in self.guide.parameters():
            p.requires_grad_(False)
        self.weight = float(weight)

    def __call__(self, gen_img: torch.Tensor, gen_c: Optional[torch.Tensor] = None) -> torch.Tensor:
        kl = class_balance_kl(self.guide(gen_img.float()))
        training_stats.report("Loss/G/balance", kl.detach())
        return kl * self.weight
