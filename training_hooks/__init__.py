"""Loss-class plugins for the reference StyleGAN training loops (and ours).

Name them in `loss_kwargs.class_name`:
  * ``training_hooks.StyleGAN2Loss`` / ``EWCLoss`` / ``RepulsionLoss`` — StyleGAN2-ADA signature
    ``(device, G_mapping, G_synthesis, D, augment_pipe=None, ...)``;
  * ``training_hooks.sg3.StyleGAN2Loss`` / ``EWCLoss`` / ``RepulsionLoss`` — StyleGAN3 signature
    ``(device, G, D, augment_pipe=None, ...)``.
"""
from training_hooks.loss import StyleGAN2Loss
from training_hooks.ewc import EWCLoss
from training_hooks.repulsion import RepulsionLoss

__all__ = ["StyleGAN2Loss", "EWCLoss", "RepulsionLoss"]
