"""Negatives shown to the discriminator as fakes during unlearning (an option beyond the paper).

Stage 2 trains D on positives (real) against G's samples (fake). With `--negatives` D also sees the
user's negative images, the same ones Stage 1 adapted to, labelled fake: D learns that the feature
itself is what fakes look like, and G's adversarial gradient then leads its samples away from the
feature in image space while the repulsion leads θ away from θ_N in parameter space. It is the
"redacted samples as extra fakes" idea of Kong & Chaudhuri's data redaction (SaTML 2023), here
without any training data: only the few negatives the method already takes.

The term added to D's main loss is `weight · mean softplus(D(x_neg))`, on a batch of negatives as
large as the fake batch, drawn with replacement from the whole set, which is held in memory as
uint8 (the sets are few-shot).
"""
import os
from typing import Optional, Sequence, Union

import numpy as np
import torch

from stylegan_unlearn.data import check_dataset_matches_network, open_image_dataset

__all__ = ["NegativeFakes", "load_negative_images", "load_negative_sets", "DEFAULT_NEGATIVE_WEIGHT"]

DEFAULT_NEGATIVE_WEIGHT = 1.0


def load_negative_images(path: str, generator=None) -> np.ndarray:
    """All images of a dataset folder or zip as uint8 NCHW; with `generator` its resolution and channels must match.

    Raises `FileNotFoundError` / `ValueError` with a sentence naming the set (labels are ignored: the
    negatives take the fake batch's labels).
    """
    dataset = open_image_dataset(path)
    try:
        if generator is not None:
            check_dataset_matches_network(dataset, dict(img_resolution=_attr(generator, "img_resolution"),
                                                         img_channels=_attr(generator, "img_channels"), c_dim=0))
        return np.stack([np.asarray(dataset[i][0], dtype=np.uint8) for i in range(len(dataset))])
    finally:
        dataset.close()


def _attr(generator, name: str):
    return generator[name] if isinstance(generator, dict) else getattr(generator, name)


class NegativeFakes:
    """Batches of the negative images in D's value range [-1, 1], drawn with replacement.

    `images` is uint8 NCHW (see `load_negative_images`); `seed` fixes the draw order so that a run
    is reproducible.
    """

    def __init__(self, images: np.ndarray, device, weight: float = DEFAULT_NEGATIVE_WEIGHT, seed: int = 0):
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError("the negatives for D must be a non-empty NCHW image array")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"the negatives' weight must be a non-negative number, got {weight}")
        self.images = torch.as_tensor(images, dtype=torch.uint8, device=device)
        self.weight = float(weight)
        self._generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, size: int) -> torch.Tensor:
        """`size` negatives as float32 in [-1, 1]."""
        index = torch.randint(len(self), (size,), generator=self._generator).to(self.images.device)
        return self.images[index].to(torch.float32) / 127.5 - 1


def load_negative_sets(paths: Union[str, Sequence[str]], generator=None) -> np.ndarray:
    """The images of one or several negative sets (e.g. negatives-1.zip … negatives-K.zip), stacked."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("no negative sets given")
    return np.concatenate([load_negative_images(os.fspath(path), generator) for path in paths])


def negative_fakes_or_none(paths: Union[None, str, Sequence[str]], device, generator,
                           weight: Optional[float]) -> Optional[NegativeFakes]:
    """The loss plugins' door: None when no negatives were given (None or an empty list)."""
    if paths is None or (not isinstance(paths, (str, os.PathLike)) and len(paths) == 0):
        return None
    return NegativeFakes(load_negative_sets(paths, generator), device,
                         weight=DEFAULT_NEGATIVE_WEIGHT if weight is None else weight)
