"""`EWCLoss`: the reference StyleGAN2 loss plus the EWC penalty of the adaptation stage.

The penalty is the method core's `stylegan_unlearn.method.penalties.EWCPenalty`,
(λ/2)·Σ_i F_i (θ_i − θ_G,i)², anchored at the generator as it is when the loss is built, after
`start_from` (the `--resume` pkl) has put its G_ema there: the method anchors at G_ema, while the
reference loops resume G from the pkl's `G` (`stylegan_unlearn.method.anchors`). It is added to the
generator's main phase (Gmain/Gboth), scaled by `gain` like the main loss, and reported as
`Loss/G/ewc`. Defaults are the official code's (the option table `stylegan_unlearn.method.options`):
λ = 5e8, 32 Fisher samples, synthesis convs from 8×8 up (``params='synthesis'``).
"""
from stylegan_unlearn.method.anchors import start_at_g_ema
from stylegan_unlearn.method.penalties import (DEFAULT_EWC_LAMBDA, DEFAULT_EWC_PARAMS, DEFAULT_FISHER_SAMPLES,
                                               EWCPenalty)
from training_hooks.loss import StyleGAN2Loss

__all__ = ["EWCLoss"]


class EWCLoss(StyleGAN2Loss):
    """StyleGAN2Loss (ADA signature) + EWC penalty toward the construction-time generator.

    Extra keyword arguments (all JSON-serialisable): `ewc_lambda` (5e8), `fisher_samples` (32),
    `params` ('synthesis' | 'free' | 'all'), `fisher_cache` (path of a ``.pt`` file reused when it matches),
    `fisher_seed` (0), `start_from` (a pkl whose G_ema G starts at and the penalty anchors at;
    None keeps G as handed over).
    """

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, ewc_lambda=DEFAULT_EWC_LAMBDA,
                 fisher_samples=DEFAULT_FISHER_SAMPLES, params=DEFAULT_EWC_PARAMS, fisher_cache=None, fisher_seed=0,
                 start_from=None, **loss_kwargs):
        super().__init__(device, G_mapping, G_synthesis, D, augment_pipe=augment_pipe, **loss_kwargs)
        if start_from is not None:
            start_at_g_ema((G_mapping, G_synthesis), start_from)
        self.generator_penalty = EWCPenalty(
            (G_mapping, G_synthesis), D, device, ewc_lambda=ewc_lambda, fisher_samples=fisher_samples,
            params=params, fisher_cache=fisher_cache, fisher_seed=fisher_seed)
