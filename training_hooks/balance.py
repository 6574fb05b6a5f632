"""`ClassBalanceLoss`: the reference StyleGAN2 loss plus the class-balance term of the MNIST pretraining.

The term, λ·KL(batch-mean class distribution of a guide classifier ‖ uniform), is
`stylegan_unlearn.mnist.balance.ClassBalancePenalty`; it only shapes the bundled demo generator and is not
part of Adapt-then-Unlearn. `stylegan_unlearn.mnist.pretrain` names this class in its `loss_kwargs`.
"""
from stylegan_unlearn.mnist.balance import ClassBalancePenalty
from training_hooks.loss import StyleGAN2Loss

__all__ = ["ClassBalanceLoss"]


class ClassBalanceLoss(StyleGAN2Loss):
    """StyleGAN2Loss (ADA signature) + the class-balance term; extra kwargs `guide` (path of a TorchScript
    classifier) and `balance_weight` (λ, default 1)."""

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, guide=None, balance_weight=1.0,
                 **loss_kwargs):
        super().__init__(device, G_mapping, G_synthesis, D, augment_pipe=augment_pipe, **loss_kwargs)
        if guide is None:
            raise ValueError("ClassBalanceLoss needs guide=PATH, a TorchScript digit classifier")
        self.generator_penalty = ClassBalancePenalty(str(guide), balance_weight, device)
