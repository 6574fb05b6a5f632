"""The StyleGAN2 loss with the reference loss-plugin interface (StyleGAN2-ADA signature).

Semantics follow the reference `StyleGAN2Loss`: non-saturating logistic loss, R1 on reals with a
lazy interval, path-length regularisation with a running mean, style mixing with one random
cutoff per batch, and the reference statistic names. A *generator penalty* hook lets the
Adapt-then-Unlearn plugins (`EWCLoss`, `RepulsionLoss`) add their term to the generator's main
phase; the phase logic lives once in `_StyleGAN2LossPhases` and serves both the ADA signature here
and the StyleGAN3 signature in `training_hooks.sg3`.

Only names shared by the reference `torch_utils` and ours are used, so the classes run inside a
user's own stylegan2-ada-pytorch / stylegan3 checkout as well as in our loop.
"""
import contextlib
import functools
import inspect
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from torch_utils import misc, training_stats
from torch_utils.ops import conv2d_gradfix

from stylegan_unlearn.method.params import unwrap

__all__ = ["StyleGAN2Loss", "PHASES"]

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")

# A generator penalty is called with the main phase's generated images and labels and returns a scalar
# tensor that is added to the generator's main-phase loss (before the `gain` scaling, like the main
# loss); it reports its own statistics. Parameter-space penalties (EWC, repulsion) ignore the images.
GeneratorPenalty = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@functools.lru_cache(maxsize=None)
def _forward_accepts(cls: type, keyword: str) -> bool:
    try:
        params = inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def accepts_keyword(module: torch.nn.Module, keyword: str) -> bool:
    """Whether the (unwrapped) module's forward takes `keyword`, e.g. ADA's `skip_w_avg_update`."""
    return _forward_accepts(type(unwrap(module)), keyword)


class _StyleGAN2LossPhases:
    """Phase logic shared by both signatures; subclasses provide `run_G` and `run_D`.

    `run_G(z, c, sync, update_emas) -> (img, ws)` and `run_D(img, c, sync, blur_sigma, update_emas)
    -> logits`. `sync` matters only under DDP (ADA); `update_emas`/`blur_sigma` only for SG3.
    """

    def _init_phases(self, device, augment_pipe, r1_gamma, style_mixing_prob, pl_weight, pl_batch_shrink,
                     pl_decay, pl_no_weight_grad) -> None:
        if pl_batch_shrink < 1:
            raise ValueError(f"pl_batch_shrink must be at least 1, got {pl_batch_shrink}")
        if not 0 <= style_mixing_prob <= 1:
            raise ValueError(f"style_mixing_prob must be in [0, 1], got {style_mixing_prob}")
        self.device = torch.device(device)
        self.augment_pipe = augment_pipe
        self.r1_gamma = float(r1_gamma)
        self.style_mixing_prob = float(style_mixing_prob)
        self.pl_weight = float(pl_weight)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.pl_decay = float(pl_decay)
        self.pl_no_weight_grad = bool(pl_no_weight_grad)
        self.pl_mean = torch.zeros([], device=self.device)
        self.generator_penalty: Optional[GeneratorPenalty] = None
        # Unlearning's optional negatives-as-fakes term (`stylegan_unlearn.method.negative_fakes`).
        self.negative_fakes = None

    def run_G(self, z, c, sync: bool = True, update_emas: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def run_D(self, img, c, sync: bool = True, blur_sigma: float = 0, update_emas: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def _mix_styles(self, ws: torch.Tensor, z: torch.Tensor, c: torch.Tensor, map_fn) -> torch.Tensor:
        """With probability `style_mixing_prob`, replace ws[:, cutoff:] by the styles of fresh latents."""
        if self.style_mixing_prob <= 0:
            return ws
        num_ws = ws.shape[1]
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, max(num_ws, 2))
        mixing = torch.rand([], device=ws.device) < self.style_mixing_prob
        cutoff = torch.where(mixing, cutoff, torch.full_like(cutoff, num_ws))
        mixed = map_fn(torch.randn_like(z), c)
        keep = torch.arange(num_ws, device=ws.device).reshape(1, -1, 1) < cutoff
        return torch.where(keep, ws, mixed)

    def _accumulate(self, phase: str, real_img, real_c, gen_z, gen_c, sync: bool, gain: float,
                    blur_sigma: float = 0, ddp_zero_terms: bool = True) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown loss phase {phase!r}; expected one of {', '.join(PHASES)}")
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_Dr1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0

        if do_Gmain:
            self._generator_main(gen_z, gen_c, sync=(sync and not do_Gpl), gain=gain, blur_sigma=blur_sigma)
        if do_Gpl:
            self._path_length(gen_z, gen_c, sync=sync, gain=gain, ddp_zero_terms=ddp_zero_terms)
        loss_Dgen = 0
        if do_Dmain:
            loss_Dgen = self._discriminator_fake(gen_z, gen_c, gain=gain, blur_sigma=blur_sigma)
            if self.negative_fakes is not None:
                self._discriminator_negatives(gen_c, gain=gain, blur_sigma=blur_sigma)
        if do_Dmain or do_Dr1:
            self._discriminator_real(real_img, real_c, sync=sync, gain=gain, blur_sigma=blur_sigma,
                                     do_Dmain=do_Dmain, do_Dr1=do_Dr1, loss_Dgen=loss_Dgen,
                                     ddp_zero_terms=ddp_zero_terms)

    def _generator_main(self, gen_z, gen_c, sync, gain, blur_sigma) -> None:
        with torch.autograd.profiler.record_function("Gmain_forward"):
            gen_img, _ws = self.run_G(gen_z, gen_c, sync=sync)
            gen_logits = self.run_D(gen_img, gen_c, sync=False, blur_sigma=blur_sigma)
            training_stats.report("Loss/scores/fake", gen_logits)
            training_stats.report("Loss/signs/fake", gen_logits.sign())
            loss_Gmain = torch.nn.functional.softplus(-gen_logits)
            training_stats.report("Loss/G/loss", loss_Gmain)
            loss = loss_Gmain.mean()
            if self.generator_penalty is not None:
                loss = loss + self.generator_penalty(gen_img, gen_c)
        with torch.autograd.profiler.record_function("Gmain_backward"):
            loss.mul(gain).backward()

    def _path_length(self, gen_z, gen_c, sync, gain, ddp_zero_terms) -> None:
        """Path-length regularisation: penalise how far each sample's path length strays from its running mean."""
        with torch.autograd.profiler.record_function("Gpl_forward"):
            shrunk = max(1, gen_z.shape[0] // self.pl_batch_shrink)
            images, ws = self.run_G(gen_z[:shrunk], gen_c[:shrunk], sync=sync)
            lengths = self._path_lengths(images, ws)
            penalty = (lengths - self._follow_pl_mean(lengths)).square()
            training_stats.report("Loss/pl_penalty", penalty)
            weighted = penalty * self.pl_weight
            training_stats.report("Loss/G/reg", weighted)
            if ddp_zero_terms:  # ties every output to the graph so DDP sees all parameters used
                weighted = weighted + images[:, 0, 0, 0] * 0
        with torch.autograd.profiler.record_function("Gpl_backward"):
            weighted.mean().mul(gain).backward()

    def _path_lengths(self, images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """|J_w^T y| per sample for a random image-space direction y, as a differentiable graph.

        y is Gaussian, scaled by 1/sqrt(pixels) so that the length does not grow with the image
        size; the squared gradient is summed over each w's features and averaged over the ws.
        """
        direction = torch.randn_like(images) / np.sqrt(images.shape[2] * images.shape[3])
        skip_weights = conv2d_gradfix.no_weight_gradients() if self.pl_no_weight_grad else contextlib.nullcontext()
        with torch.autograd.profiler.record_function("pl_grads"), skip_weights:
            (grad_ws,) = torch.autograd.grad(outputs=[(images * direction).sum()], inputs=[ws], create_graph=True)
        return grad_ws.square().sum(dim=2).mean(dim=1).sqrt()

    def _follow_pl_mean(self, lengths: torch.Tensor) -> torch.Tensor:
        """Move the running mean length `pl_decay` of the way to this batch's mean and return it (in the graph)."""
        moved = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(moved.detach())
        return moved

    def _discriminator_fake(self, gen_z, gen_c, gain, blur_sigma) -> torch.Tensor:
        with torch.autograd.profiler.record_function("Dgen_forward"):
            gen_img, _ws = self.run_G(gen_z, gen_c, sync=False, update_emas=True)
            gen_logits = self.run_D(gen_img, gen_c, sync=False, blur_sigma=blur_sigma, update_emas=True)
            training_stats.report("Loss/scores/fake", gen_logits)
            training_stats.report("Loss/signs/fake", gen_logits.sign())
            loss_Dgen = torch.nn.functional.softplus(gen_logits)
        with torch.autograd.profiler.record_function("Dgen_backward"):
            loss_Dgen.mean().mul(gain).backward()
        return loss_Dgen

    def _discriminator_negatives(self, gen_c, gain, blur_sigma) -> None:
        """D learns to call the user's negatives fake: weight · softplus(D(x_neg)), a batch as large as the fakes'."""
        with torch.autograd.profiler.record_function("Dneg_forward"):
            negatives = self.negative_fakes.batch(gen_c.shape[0]).to(self.device)
            neg_logits = self.run_D(negatives, gen_c, sync=False, blur_sigma=blur_sigma)
            training_stats.report("Loss/scores/negative", neg_logits)
            loss_Dneg = torch.nn.functional.softplus(neg_logits) * self.negative_fakes.weight
            training_stats.report("Loss/D/negatives", loss_Dneg)
        with torch.autograd.profiler.record_function("Dneg_backward"):
            loss_Dneg.mean().mul(gain).backward()

    def _discriminator_real(self, real_img, real_c, sync, gain, blur_sigma, do_Dmain, do_Dr1, loss_Dgen,
                            ddp_zero_terms) -> None:
        name = "Dreal_Dr1" if do_Dmain and do_Dr1 else "Dreal" if do_Dmain else "Dr1"
        with torch.autograd.profiler.record_function(name + "_forward"):
            real_img_tmp = real_img.detach().requires_grad_(do_Dr1)
            real_logits = self.run_D(real_img_tmp, real_c, sync=sync, blur_sigma=blur_sigma)
            training_stats.report("Loss/scores/real", real_logits)
            training_stats.report("Loss/signs/real", real_logits.sign())
            loss_Dreal = 0
            if do_Dmain:
                loss_Dreal = torch.nn.functional.softplus(-real_logits)
                training_stats.report("Loss/D/loss", loss_Dgen + loss_Dreal)
            loss_Dr1 = 0
            if do_Dr1:
                with torch.autograd.profiler.record_function("r1_grads"), conv2d_gradfix.no_weight_gradients():
                    r1_grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img_tmp],
                                                   create_graph=True, only_inputs=True)[0]
                r1_penalty = r1_grads.square().sum([1, 2, 3])
                loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
                training_stats.report("Loss/r1_penalty", r1_penalty)
                training_stats.report("Loss/D/reg", loss_Dr1)
            total = loss_Dreal + loss_Dr1
            if ddp_zero_terms:
                total = real_logits * 0 + total
        with torch.autograd.profiler.record_function(name + "_backward"):
            total.mean().mul(gain).backward()


class StyleGAN2Loss(_StyleGAN2LossPhases):
    """Reference StyleGAN2 loss, StyleGAN2-ADA constructor and `accumulate_gradients` signature.

    `G_mapping`, `G_synthesis` and `D` may be DistributedDataParallel wrappers (as the ADA loop
    hands them over with several GPUs); gradients are all-reduced only on `sync` rounds.
    """

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, style_mixing_prob=0.9, r1_gamma=10,
                 pl_batch_shrink=2, pl_decay=0.01, pl_weight=2):
        super().__init__()
        self.G_mapping = G_mapping
        self.G_synthesis = G_synthesis
        self.D = D
        self._skip_w_avg = accepts_keyword(G_mapping, "skip_w_avg_update")
        # The reference ADA loss always skips weight gradients while taking path-length gradients.
        self._init_phases(device, augment_pipe, r1_gamma, style_mixing_prob, pl_weight, pl_batch_shrink,
                          pl_decay, pl_no_weight_grad=True)

    def _map_mixing(self, z, c):
        kwargs = {"skip_w_avg_update": True} if self._skip_w_avg else {}
        return self.G_mapping(z, c, **kwargs)

    def run_G(self, z, c, sync=True, update_emas=False):
        with misc.ddp_sync(self.G_mapping, sync):
            ws = self.G_mapping(z, c)
            if self.style_mixing_prob > 0:
                with torch.autograd.profiler.record_function("style_mixing"):
                    ws = self._mix_styles(ws, z, c, self._map_mixing)
        with misc.ddp_sync(self.G_synthesis, sync):
            img = self.G_synthesis(ws)
        return img, ws

    def run_D(self, img, c, sync=True, blur_sigma=0, update_emas=False):
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        with misc.ddp_sync(self.D, sync):
            return self.D(img, c)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        """Compute the loss of `phase` for one batch_gpu chunk and backpropagate it (× `gain`)."""
        self._accumulate(phase, real_img, real_c, gen_z, gen_c, sync=bool(sync), gain=gain)
