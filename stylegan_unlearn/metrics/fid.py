"""Fréchet Inception Distance from feature vectors.

FID = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2·(Σ₁Σ₂)^½), with float64 statistics and the covariance
E[xxᵀ] − μμᵀ (divide by N), as the reference metric code computes them.

The trace of the matrix square root is taken without `scipy.linalg.sqrtm`: Σ₁Σ₂ is not symmetric,
but it is similar to the symmetric positive semi-definite matrix M = Σ₁^½ Σ₂ Σ₁^½, so
Tr((Σ₁Σ₂)^½) = Σᵢ √λᵢ(M). Both steps use `numpy.linalg.eigh` on symmetric matrices, which is stable
for the rank-deficient covariances that small sample sets produce (tiny negative eigenvalues from
round-off are clipped to zero instead of turning into complex numbers).
"""
from typing import Tuple

import numpy as np

__all__ = ["feature_statistics", "frechet_distance", "fid_from_features"]


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64, E[xxᵀ] − μμᵀ) of features [N, D]."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"features must be a non-empty [N, D] array, got shape {x.shape}")
    mu = x.mean(axis=0)
    sigma = (x.T @ x) / x.shape[0] - np.outer(mu, mu)
    return mu, (sigma + sigma.T) / 2


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    root = np.sqrt(np.clip(eigenvalues, 0, None))
    return (eigenvectors * root) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((Σ₁Σ₂)^½) for symmetric PSD Σ₁, Σ₂, via the eigenvalues of Σ₁^½ Σ₂ Σ₁^½."""
    root1 = _symmetric_sqrt(np.asarray(sigma1, dtype=np.float64))
    middle = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics do not match: means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {sigma1.shape} vs {sigma2.shape}; were both sets measured with the same detector?")
    mean_term = float(np.square(mu1 - mu2).sum())
    trace_term = float(np.trace(sigma1) + np.trace(sigma2)) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(mean_term + trace_term, 0.0)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets [N1, D] and [N2, D]."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
