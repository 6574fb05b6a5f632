"""Metrics for unlearning: PUL, FID, KID, Ret-FID (FID between two networks) and attribute drift.

The maths modules (`fid`, `kid`, `pul`, `drift`) work on plain numpy arrays; `detectors` turns
images into features; `stylegan_unlearn.seeds` turns a network and a seed list into images.
"""
from stylegan_unlearn.metrics.drift import attribute_shares, drift_markdown, drift_table
from stylegan_unlearn.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from stylegan_unlearn.metrics.kid import kid_from_features
from stylegan_unlearn.metrics.pul import count_negatives, negative_share, pul

__all__ = [
    "attribute_shares", "drift_markdown", "drift_table",
    "feature_statistics", "fid_from_features", "frechet_distance",
    "kid_from_features",
    "count_negatives", "negative_share", "pul",
]
