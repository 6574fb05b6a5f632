"""Differentiable augmentation for few-shot adaptation, shaped like the reference augment pipe.

Adapting a generator to a few hundred negatives lets the discriminator memorise them; augmenting
everything the discriminator sees (reals and fakes alike) with transforms that are differentiable
in the image keeps it honest without leaking the augmentation into the generator. Each enabled
transform fires per sample with probability `multiplier * p`, where `p` is a scalar buffer that the
training loop sets (fixed, or by the ADA heuristic), exactly as for the reference `AugmentPipe`.

This module imports only torch (and the persistence decorator) so that its source can travel inside
network pkls next to the networks.
"""
import torch

try:
    from torch_utils import persistence
    _persistent = persistence.persistent_class
except ImportError:  # pragma: no cover - the compatibility layer is part of this package
    def _persistent(cls):
        return cls


@_persistent
class DiffAugment(torch.nn.Module):
    """Per-sample random x-flip, integer translation, cutout and colour jitter (brightness, saturation,
    contrast) on NCHW images in [-1, 1]; every transform is differentiable with respect to the images."""

    def __init__(self, xflip=0, translation=1, cutout=1, color=1, translation_max=0.125, cutout_size=0.5):
        super().__init__()
        self.register_buffer("p", torch.ones([]))
        self.xflip = float(xflip)
        self.translation = float(translation)
        self.cutout = float(cutout)
        self.color = float(color)
        self.translation_max = float(translation_max)
        self.cutout_size = float(cutout_size)

    def _fires(self, images, multiplier):
        n = images.shape[0]
        prob = (self.p * multiplier).clamp(0, 1)
        return (torch.rand([n, 1, 1, 1], device=images.device) < prob).to(images.dtype)

    def forward(self, images):
        if images.ndim != 4:
            raise ValueError(f"DiffAugment expects NCHW images, got shape {list(images.shape)}")
        n, c, h, w = images.shape
        device = images.device
        if self.xflip > 0:
            mask = self._fires(images, self.xflip)
            images = mask * images.flip(3) + (1 - mask) * images
        if self.color > 0:
            fires = self._fires(images, self.color).bool()
            jittered = images + (torch.rand([n, 1, 1, 1], device=device) - 0.5)  # brightness
            if c == 3:
                saturation = torch.rand([n, 1, 1, 1], device=device) * 2
                mean = jittered.mean(dim=1, keepdim=True)
                jittered = (jittered - mean) * saturation + mean
            contrast = torch.rand([n, 1, 1, 1], device=device) + 0.5
            mean = jittered.mean(dim=[1, 2, 3], keepdim=True)
            jittered = (jittered - mean) * contrast + mean
            images = torch.where(fires, jittered, images)
        if self.translation > 0:
            mask = self._fires(images, self.translation).view(n, 1, 1)
            shift_y = int(h * self.translation_max + 0.5)
            shift_x = int(w * self.translation_max + 0.5)
            ty = torch.randint(-shift_y, shift_y + 1, [n, 1, 1], device=device) * mask.long()
            tx = torch.randint(-shift_x, shift_x + 1, [n, 1, 1], device=device) * mask.long()
            rows = torch.arange(h, device=device).view(1, h, 1) + ty  # source row for each output row
            cols = torch.arange(w, device=device).view(1, 1, w) + tx
            inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).to(images.dtype)
            index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
            shifted = images.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
            images = shifted * inside.unsqueeze(1)  # zero padding, as DiffAugment does
        if self.cutout > 0:
            mask = self._fires(images, self.cutout).view(n, 1, 1)
            size_y, size_x = max(int(h * self.cutout_size + 0.5), 1), max(int(w * self.cutout_size + 0.5), 1)
            cy = torch.randint(0, h, [n, 1, 1], device=device)
            cx = torch.randint(0, w, [n, 1, 1], device=device)
            ys = torch.arange(h, device=device).view(1, h, 1)
            xs = torch.arange(w, device=device).view(1, 1, w)
            hole = ((ys - cy).abs() < (size_y + 1) // 2) & ((xs - cx).abs() < (size_x + 1) // 2)
            keep = 1 - hole.to(images.dtype) * mask
            images = images * keep.unsqueeze(1)
        return images
