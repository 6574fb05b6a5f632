"""PUL (Percentage of UnLearning): how much rarer the unwanted feature became.

PUL = 100 · (N_neg(original) − N_neg(unlearned)) / N_neg(original), where N_neg counts the
samples a classifier flags as having the feature, on the same fixed seeds for both networks.
100 means the feature is gone; 0 means no change; negative means it became more common.
"""
from typing import Sequence, Union

import numpy as np

__all__ = ["count_negatives", "negative_share", "pul"]

Flags = Union[Sequence[bool], np.ndarray]


def count_negatives(flags: Flags) -> int:
    """Number of samples flagged as having the feature."""
    return int(np.count_nonzero(np.asarray(flags, dtype=bool)))


def negative_share(flags: Flags) -> float:
    """Fraction (0–1) of samples flagged as having the feature."""
    array = np.asarray(flags, dtype=bool)
    if array.size == 0:
        raise ValueError("cannot compute a share of negatives over zero samples")
    return float(np.count_nonzero(array) / array.size)


def pul(n_neg_original: int, n_neg_unlearned: int) -> float:
    """Percentage of unlearning from the two negative counts (same seeds, same classifier)."""
    if n_neg_original < 0 or n_neg_unlearned < 0:
        raise ValueError(f"negative counts must be non-negative, got {n_neg_original} and {n_neg_unlearned}")
    if n_neg_original == 0:
        raise ValueError("PUL is undefined: the original network produced no samples with the feature on these "
                         "seeds; evaluate more seeds or check the classifier's target class and threshold")
    return 100.0 * (n_neg_original - n_neg_unlearned) / n_neg_original
