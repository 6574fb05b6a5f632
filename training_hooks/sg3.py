"""The loss plugins with StyleGAN3's constructor and `accumulate_gradients` signature.

``training_hooks.sg3.StyleGAN2Loss / EWCLoss / RepulsionLoss`` take ``(device, G, D,
augment_pipe=None, ...)`` and ``accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, gain,
cur_nimg)``. The phase logic and the penalties are the very ones of the ADA-signature classes;
only the way G and D are called differs: `update_emas` flags (the EMAs update during the fake
discriminator pass only), the optional blur of discriminator inputs fading over
`blur_fade_kimg`, `pl_no_weight_grad`, and no DDP wrappers.
"""
import numpy as np
import torch

from torch_utils.ops import upfirdn2d

from stylegan_unlearn.method import repulsion as repulsion_forms
from stylegan_unlearn.method.anchors import start_at_g_ema
from stylegan_unlearn.method.negative_fakes import negative_fakes_or_none
from stylegan_unlearn.method.params import unwrap
from stylegan_unlearn.method.penalties import (DEFAULT_DISTANCE, DEFAULT_EWC_LAMBDA, DEFAULT_EWC_PARAMS,
                                               DEFAULT_FISHER_SAMPLES, DEFAULT_REPULSION_PARAMS, EWCPenalty,
                                               RepulsionPenalty)
from training_hooks.loss import _StyleGAN2LossPhases, accepts_keyword

__all__ = ["StyleGAN2Loss", "EWCLoss", "RepulsionLoss"]


def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-like blur with kernel exp2(−(x/σ)²) over ±3σ, as the reference SG3 loss applies it."""
    radius = int(np.floor(sigma * 3))
    if radius <= 0:
        return img
    f = torch.arange(-radius, radius + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return upfirdn2d.filter2d(img, f / f.sum())


class StyleGAN2Loss(_StyleGAN2LossPhases):
    """Reference StyleGAN2 loss with the StyleGAN3 signature (defaults as in SG3's loss)."""

    def __init__(self, device, G, D, augment_pipe=None, r1_gamma=10, style_mixing_prob=0, pl_weight=0,
                 pl_batch_shrink=2, pl_decay=0.01, pl_no_weight_grad=False, blur_init_sigma=0, blur_fade_kimg=0):
        super().__init__()
        self.G = G
        self.D = D
        self.blur_init_sigma = float(blur_init_sigma)
        self.blur_fade_kimg = float(blur_fade_kimg)
        self._init_phases(device, augment_pipe, r1_gamma, style_mixing_prob, pl_weight, pl_batch_shrink,
                          pl_decay, pl_no_weight_grad)
        generator = unwrap(G)
        self._emas_keyword = accepts_keyword(generator.mapping, "update_emas")
        self._d_emas_keyword = accepts_keyword(D, "update_emas")

    def _emas(self, flag: bool, allowed: bool) -> dict:
        return {"update_emas": flag} if allowed else {}

    def run_G(self, z, c, sync=True, update_emas=False):
        G = unwrap(self.G)
        ws = G.mapping(z, c, **self._emas(update_emas, self._emas_keyword))
        if self.style_mixing_prob > 0:
            with torch.autograd.profiler.record_function("style_mixing"):
                ws = self._mix_styles(ws, z, c, lambda z2, c2: G.mapping(z2, c2, **self._emas(False, self._emas_keyword)))
        img = G.synthesis(ws, **self._emas(update_emas, self._emas_keyword))
        return img, ws

    def run_D(self, img, c, sync=True, blur_sigma=0, update_emas=False):
        if blur_sigma > 0:
            with torch.autograd.profiler.record_function("blur"):
                img = blur(img, blur_sigma)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c, **self._emas(update_emas, self._d_emas_keyword))

    def blur_sigma(self, cur_nimg: int) -> float:
        if self.blur_fade_kimg <= 0:
            return 0.0
        return max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0) * self.blur_init_sigma

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        """Compute the loss of `phase` for one batch_gpu chunk and backpropagate it (× `gain`)."""
        self._accumulate(phase, real_img, real_c, gen_z, gen_c, sync=True, gain=gain,
                         blur_sigma=self.blur_sigma(cur_nimg), ddp_zero_terms=False)


class EWCLoss(StyleGAN2Loss):
    """`training_hooks.EWCLoss` with the StyleGAN3 signature (same penalty, same extra kwargs)."""

    def __init__(self, device, G, D, augment_pipe=None, ewc_lambda=DEFAULT_EWC_LAMBDA,
                 fisher_samples=DEFAULT_FISHER_SAMPLES, params=DEFAULT_EWC_PARAMS, fisher_cache=None, fisher_seed=0,
                 start_from=None, **loss_kwargs):
        super().__init__(device, G, D, augment_pipe=augment_pipe, **loss_kwargs)
        if start_from is not None:
            start_at_g_ema(G, start_from)
        self.generator_penalty = EWCPenalty(
            G, D, device, ewc_lambda=ewc_lambda, fisher_samples=fisher_samples, params=params,
            fisher_cache=fisher_cache, fisher_seed=fisher_seed)


class RepulsionLoss(StyleGAN2Loss):
    """`training_hooks.RepulsionLoss` with the StyleGAN3 signature (same term, same extra kwargs)."""

    def __init__(self, device, G, D, augment_pipe=None, adapted=(), repulsion=repulsion_forms.DEFAULT_FORM,
                 repulsion_weight=None, alpha=None, distance=DEFAULT_DISTANCE, params=DEFAULT_REPULSION_PARAMS,
                 start_from=None, negatives=None, negative_weight=None, **loss_kwargs):
        super().__init__(device, G, D, augment_pipe=augment_pipe, **loss_kwargs)
        self.negative_fakes = negative_fakes_or_none(negatives, device, unwrap(G), negative_weight)
        if start_from is not None:
            start_at_g_ema(G, start_from)
        self.generator_penalty = RepulsionPenalty(
            G, device, adapted=adapted, repulsion=repulsion, repulsion_weight=repulsion_weight, alpha=alpha,
            distance=distance, params=params)
