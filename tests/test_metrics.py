"""The metric maths against hand-derived values: PUL, FID, KID, drift."""
import numpy as np
import pytest
import scipy.linalg

from stylegan_unlearn.metrics import (attribute_shares, count_negatives, drift_markdown, drift_table,
                                      feature_statistics, fid_from_features, frechet_distance,
                                      kid_from_features, negative_share, pul)
from stylegan_unlearn.metrics.kid import polynomial_kernel


def _exact_samples(n: int, mean: np.ndarray, cov_root: np.ndarray, seed: int) -> np.ndarray:
    """n samples whose empirical mean and (1/N) covariance are exactly `mean` and cov_root·cov_rootᵀ."""
    rng = np.random.RandomState(seed)
    z = rng.randn(n, len(mean))
    z -= z.mean(axis=0)
    cov = z.T @ z / n
    z = z @ np.linalg.inv(np.linalg.cholesky(cov)).T  # whiten: empirical covariance is now I
    return z @ cov_root.T + mean


# ---------------------------------------------------------------- PUL

def test_pul_arithmetic():
    assert pul(200, 50) == pytest.approx(75.0)
    assert pul(40, 0) == pytest.approx(100.0)
    assert pul(10, 10) == 0.0
    assert pul(10, 15) == pytest.approx(-50.0)
    flags_before = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    flags_after = np.array([0, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    assert count_negatives(flags_before) == 4 and count_negatives(flags_after) == 1
    assert negative_share(flags_before) == pytest.approx(0.5)
    assert pul(count_negatives(flags_before), count_negatives(flags_after)) == pytest.approx(75.0)


def test_pul_undefined_without_original_negatives():
    with pytest.raises(ValueError, match="no samples with the feature"):
        pul(0, 3)
    with pytest.raises(ValueError):
        negative_share([])


# ---------------------------------------------------------------- FID

def test_feature_statistics_use_population_covariance():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = feature_statistics(x)
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(x.T, bias=True))


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.RandomState(0).randn(500, 16) @ np.random.RandomState(1).randn(16, 16)
    assert abs(fid_from_features(x, x)) < 1e-8


def test_fid_of_a_rank_deficient_set_with_itself_is_zero():
    x = np.random.RandomState(2).randn(20, 64) * 3 + 1  # N < D: singular covariance
    value = fid_from_features(x, x)
    assert np.isfinite(value) and abs(value) < 1e-6


def test_fid_of_shifted_gaussians_is_the_squared_shift():
    d = 8
    root = np.random.RandomState(3).randn(d, d)
    shift = np.arange(d, dtype=np.float64) / 3
    a = _exact_samples(400, np.zeros(d), root, seed=4)
    b = _exact_samples(300, shift, root, seed=5)
    assert fid_from_features(a, b) == pytest.approx(float(shift @ shift), rel=1e-9)


def test_fid_of_diagonal_gaussians_matches_closed_form():
    var1, var2 = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 1.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 0.0, -2.0]), np.array([1.0, 1.0, 3.0, 0.0])
    a = _exact_samples(500, mu1, np.diag(np.sqrt(var1)), seed=6)
    b = _exact_samples(500, mu2, np.diag(np.sqrt(var2)), seed=7)
    expected = np.square(mu1 - mu2).sum() + np.square(np.sqrt(var1) - np.sqrt(var2)).sum()
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-9)


def test_fid_matches_scipy_sqrtm_on_general_covariances():
    rng = np.random.RandomState(8)
    d = 12
    s1 = rng.randn(d, d); s1 = s1 @ s1.T + 0.1 * np.eye(d)
    s2 = rng.randn(d, d); s2 = s2 @ s2.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.randn(d), rng.randn(d)
    reference = np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)


def test_fid_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="same detector"):
        fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))


# ---------------------------------------------------------------- KID

def _full_pool_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The U-statistic over the whole pools: the exact mean of the subset estimator."""
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_kid_equals_unbiased_mmd_when_the_subset_is_the_whole_set():
    rng = np.random.RandomState(9)
    x, y = rng.randn(30, 5), rng.randn(30, 5) + 0.5
    assert kid_from_features(x, y, num_subsets=3, max_subset_size=1000) == pytest.approx(_full_pool_mmd2(x, y))


def test_kid_subset_average_is_unbiased_for_the_pool_statistic():
    rng = np.random.RandomState(10)
    x, y = rng.randn(40, 4), rng.randn(40, 4) * 1.3 + 0.4
    expected = _full_pool_mmd2(x, y)
    estimates = [kid_from_features(x, y, num_subsets=1, max_subset_size=6, seed=s) for s in range(3000)]
    standard_error = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - expected) < 4 * standard_error
    many_subsets_in_one_call = kid_from_features(x, y, num_subsets=3000, max_subset_size=6, seed=12345)
    assert abs(many_subsets_in_one_call - expected) < 4 * standard_error


def test_kid_is_near_zero_for_one_distribution_where_the_biased_estimate_is_not():
    rng = np.random.RandomState(11)
    x, y = rng.randn(2000, 4), rng.randn(2000, 4)
    value = kid_from_features(x, y, num_subsets=400, max_subset_size=8, seed=1)
    sub_x, sub_y = x[:8], y[:8]
    biased = (polynomial_kernel(sub_x, sub_x).mean() + polynomial_kernel(sub_y, sub_y).mean()
              - 2 * polynomial_kernel(sub_x, sub_y).mean())
    assert biased > 0.2  # the V-statistic carries a positive bias at m = 8
    assert abs(value) < 0.1


def test_kid_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        kid_from_features(np.zeros((1, 3)), np.zeros((5, 3)))


# ---------------------------------------------------------------- drift

def test_drift_table_shares_and_changes():
    before = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=bool)
    after = np.array([[0, 0, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    np.testing.assert_allclose(attribute_shares(before), [0.75, 0.25, 0.25])
    rows = drift_table(["Eyeglasses", "Male", "Young"],
                       {"original": attribute_shares(before), "unlearned": attribute_shares(after)})
    assert [r["attribute"] for r in rows] == ["Eyeglasses", "Young", "Male"]  # largest change first
    assert rows[0]["change"]["unlearned"] == pytest.approx(-0.75)
    assert rows[1]["shares"]["unlearned"] == pytest.approx(0.5)
    text = drift_markdown(rows)
    assert "| Eyeglasses | 75.0% | 0.0% (-75.0) |" in text


def test_drift_table_rejects_wrong_name_count():
    with pytest.raises(ValueError, match="2 attribute names"):
        drift_table(["a", "b"], {"original": [0.1, 0.2, 0.3]})
