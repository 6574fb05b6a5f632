"""Kernel Inception Distance: the reference's subset estimator of the unbiased squared MMD.

Kernel k(x, y) = (xᵀy / d + 1)³ (d = feature dimension). For each of `num_subsets` rounds, m
generated and m real features are drawn without replacement (m = min(n_gen, n_real,
max_subset_size)) and the unbiased MMD² is computed:
    1/(m(m−1)) Σ_{i≠j} [k(xᵢ,xⱼ) + k(yᵢ,yⱼ)] − 2/m² Σ_{i,j} k(xᵢ,yⱼ);
KID is the mean over rounds. Its expectation is the population MMD², so it can be slightly
negative for two sets from the same distribution.
"""
import numpy as np

__all__ = ["polynomial_kernel", "kid_from_features"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³ for all pairs of rows of x [n, d] and y [m, d]."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def kid_from_features(gen_features: np.ndarray, real_features: np.ndarray, num_subsets: int = 100,
                      max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID between generated [Ng, D] and real [Nr, D] features (reference defaults: 100 subsets of ≤1000)."""
    x_all = np.asarray(gen_features, dtype=np.float64)
    y_all = np.asarray(real_features, dtype=np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with the same D, got {x_all.shape} and {y_all.shape}")
    m = min(x_all.shape[0], y_all.shape[0], int(max_subset_size))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {x_all.shape[0]} and {y_all.shape[0]}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be at least 1, got {num_subsets}")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(int(num_subsets)):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        within = polynomial_kernel(x, x) + polynomial_kernel(y, y)
        between = polynomial_kernel(x, y)
        total += (within.sum() - np.trace(within)) / (m - 1) - between.sum() * 2 / m
    return float(total / num_subsets / m)
