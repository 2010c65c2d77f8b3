"""Metric math against independent computations: closed forms for Gaussians,
brute-force loops, scipy, and torch-fidelity's own functions on the same
features."""
import itertools
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from wgan_fast import metrics
from wgan_fast.metrics import frechet, kid as kid_module


def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


# ---- FID ------------------------------------------------------------------------------

def test_frechet_diagonal_closed_form():
    # commuting covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_2d_non_commuting_closed_form():
    # for 2x2 PSD M: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); M = S1 S2 has sqrt(M)'s trace though not symmetric
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    mu1, mu2 = np.array([0.3, -1.0]), np.array([1.0, 2.0])
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)


def test_frechet_matches_scipy_sqrtm_and_is_symmetric():
    rng = np.random.default_rng(0)
    d = 40
    s1, s2 = random_spd(rng, d), random_spd(rng, d, scale=3.0)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    got = metrics.frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-9)
    assert metrics.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)


def test_fid_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.array([0.0, 0.0, 1.0]), np.array([1.0, -0.5, 1.0])
    s1 = np.array([[1.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 0.5]])
    s2 = np.diag([2.0, 0.5, 1.0])
    exact = metrics.frechet_distance(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert metrics.fid_from_features(x, y) == pytest.approx(exact, rel=0.02)
    assert exact > 1.0  # not a trivially small target


@pytest.mark.parametrize("n1,n2", [(30, 45), (45, 30), (200, 150)])
def test_fid_through_samples_equals_fid_through_covariances(n1, n2):
    rng = np.random.default_rng(12)
    d = 64 if max(n1, n2) < 64 else 40
    x = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d)) + 1
    y = rng.normal(size=(n2, d)) * 2
    via_stats = metrics.frechet_distance(*metrics.feature_stats(x), *metrics.feature_stats(y))
    # singular covariances: the covariance path adds square roots of rounding noise (~1e-8 relative here)
    rel = 1e-7 if min(n1, n2) <= d else 1e-9
    assert frechet.fid_in_sample_space(x, y) == pytest.approx(via_stats, rel=rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert metrics.fid_from_features(x, y) == pytest.approx(via_stats, rel=rel)


def test_feature_stats_are_mean_and_unbiased_covariance():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(50, 6)).astype(np.float32)
    mu, sigma = metrics.feature_stats(f)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    centred = f.astype(np.float64) - f.astype(np.float64).mean(0)
    np.testing.assert_allclose(mu, f.astype(np.float64).sum(0) / 50, rtol=1e-12)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49, rtol=1e-12)


@pytest.mark.parametrize("n,d", [(500, 16), (10, 64)])  # full-rank and singular covariances
def test_fid_of_identical_sets_is_zero(n, d):
    f = np.random.default_rng(3).normal(size=(n, d)) * 3 + 1
    if n <= d:
        with pytest.warns(RuntimeWarning, match=f"FID from {n} real and {n} generated .*biased upward"):
            fid = metrics.fid_from_features(f, f)
    else:
        fid = metrics.fid_from_features(f, f)
    assert 0 <= fid < 1e-9 * np.trace(np.cov(f, rowvar=False))


def test_fid_rejects_bad_features():
    good = np.zeros((5, 3))
    with pytest.raises(ValueError, match="f_real has 3-d features but f_fake has 4-d"):
        metrics.fid_from_features(good, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.fid_from_features(good, np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
        metrics.fid_from_features(np.zeros((1, 3)), good)
    with pytest.raises(ValueError, match="2-D array"):
        metrics.fid_from_features(np.zeros(5), good)
    with pytest.raises(ValueError, match="shapes do not match"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_fid_matches_torch_fidelity():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 32)) @ rng.normal(size=(32, 32))
    y = rng.normal(size=(300, 32)) * 1.5 + 0.2
    theirs = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(x)),
                                      fid_features_to_statistics(torch.from_numpy(y)), verbose=False)
    assert metrics.fid_from_features(x, y) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)


# ---- KID ------------------------------------------------------------------------------

def brute_force_mmd2(x, y):
    """Unbiased MMD^2 with the cubic kernel, one pair at a time."""
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1) ** 3

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    kxy = sum(k(a, b) for a in x for b in y) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_on_whole_sets_equals_brute_force():
    # subsets as large as the sets are permutations of them: every subset gives the same MMD
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(7, 5)) + 0.3
    mean, std = metrics.kid_from_features(x, y, subsets=3, subset_size=7)
    assert mean == pytest.approx(brute_force_mmd2(x, y), rel=1e-10)
    assert std < 1e-12


def _poly3_expectation(mu_a, cov_a, mu_b, cov_b):
    """E (a.b / d + 1)^3 for independent a ~ N(mu_a, cov_a), b ~ N(mu_b, cov_b), in closed form."""
    d = len(mu_a)

    def third_moment(mu, cov):  # E[a_i a_j a_k] of a Gaussian
        return (np.einsum("i,j,k->ijk", mu, mu, mu) + np.einsum("i,jk->ijk", mu, cov)
                + np.einsum("j,ik->ijk", mu, cov) + np.einsum("k,ij->ijk", mu, cov))

    m_a, m_b = cov_a + np.outer(mu_a, mu_a), cov_b + np.outer(mu_b, mu_b)
    e1 = mu_a @ mu_b / d
    e2 = np.trace(m_a @ m_b) / d ** 2
    e3 = (third_moment(mu_a, cov_a) * third_moment(mu_b, cov_b)).sum() / d ** 3
    return 1 + 3 * e1 + 3 * e2 + e3


def test_kid_of_gaussians_matches_the_closed_form_mmd():
    rng = np.random.default_rng(6)
    d = 4
    mu1, mu2 = np.zeros(d), np.array([1.0, 0.5, -0.5, 0.0])
    s1, s2 = 0.3 * np.eye(d), 0.3 * np.diag([1.0, 2.0, 0.5, 1.5])
    exact = (_poly3_expectation(mu1, s1, mu1, s1) + _poly3_expectation(mu2, s2, mu2, s2)
             - 2 * _poly3_expectation(mu1, s1, mu2, s2))
    n = 1500  # one subset of the whole sets: the estimate's spread over seeds is ~4 % here
    x, y, x2 = (rng.multivariate_normal(mu, s, size=n) for mu, s in ((mu1, s1), (mu2, s2), (mu1, s1)))
    assert metrics.kid_from_features(x, y, subsets=1, subset_size=n)[0] == pytest.approx(exact, rel=0.12)
    assert abs(metrics.kid_from_features(x, x2, subsets=1, subset_size=n)[0]) < 0.01 * exact  # unbiased: ~0


def test_kid_matches_torch_fidelity_with_the_same_subsets():
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(120, 24)), rng.normal(size=(90, 24)) * 1.2
    theirs = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=20, kid_subset_size=50,
                                    kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                    kid_kernel_poly_coef0=1, rng_seed=11, verbose=False)
    mean, std = metrics.kid_from_features(x, y, subsets=20, subset_size=50, seed=11)
    assert mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    assert std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-6)


def test_kid_per_subset_path_equals_gram_path(monkeypatch):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(40, 8)), rng.normal(size=(30, 8))
    via_gram = metrics.kid_from_features(x, y, subsets=5, subset_size=20)
    monkeypatch.setattr(kid_module, "GRAM_BYTES", 0)
    assert metrics.kid_from_features(x, y, subsets=5, subset_size=20) == pytest.approx(via_gram, rel=1e-10)


def test_kid_rejects_a_subset_larger_than_a_set():
    with pytest.raises(ValueError, match=r"subset_size=1000 must be in \[2, min\(#real, #fake\)\] = \[2, 30\]"):
        metrics.kid_from_features(np.zeros((50, 3)), np.zeros((30, 3)))


# ---- precision and recall ---------------------------------------------------------------

def brute_force_precision_recall(real, fake, k):
    def radii(points):
        return [sorted(np.linalg.norm(points - p, axis=1))[k] for p in points]  # [0] is the point itself

    def inside(queries, centres, r):
        return np.mean([any(np.linalg.norm(q - c) <= rc for c, rc in zip(centres, r)) for q in queries])

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def test_precision_recall_hand_made_points():
    real = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])  # k=1 balls: radius 1 each
    fake = np.array([[0.5], [1.2], [10.0], [11.0]])         # radii 0.7, 0.7, 1, 1
    # fake inside the real balls: 0.5 and 1.2; real inside the fake balls: 0 and 1
    assert metrics.precision_recall(real, fake, k=1) == (0.5, 0.4)
    # a point exactly on a ball's boundary counts as inside
    assert metrics.precision_recall(real, np.array([[5.0], [20.0], [21.0]]), k=1)[0] == pytest.approx(1 / 3)


def test_precision_recall_equals_brute_force():
    rng = np.random.default_rng(9)
    real = rng.normal(size=(60, 5))
    fake = np.concatenate([rng.normal(size=(30, 5)) * 0.5, rng.normal(size=(20, 5)) + 3])
    assert metrics.precision_recall(real, fake, k=3) == pytest.approx(brute_force_precision_recall(real, fake, 3))


def test_precision_recall_matches_torch_fidelity(monkeypatch):
    from torch_fidelity.metric_prc import prc_features_to_metric

    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(300, 16)), rng.normal(size=(250, 16)) + 0.6
    monkeypatch.setattr("wgan_fast.metrics.knn_manifolds.ROWS", 64)  # several blocks
    theirs = prc_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), prc_neighborhood=3,
                                    prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    precision, recall = metrics.precision_recall(real, fake, k=3)
    assert 0.1 < precision < 0.9 and 0.1 < recall < 0.9  # neither trivially 0 nor 1
    assert precision == pytest.approx(theirs["precision"], rel=1e-3)
    assert recall == pytest.approx(theirs["recall"], rel=1e-3)


def test_precision_recall_needs_more_samples_than_k():
    with pytest.raises(ValueError, match="f_fake: needs at least 4 samples, got 3"):
        metrics.precision_recall(np.zeros((10, 2)), np.zeros((3, 2)), k=3)


# ---- Inception Score ----------------------------------------------------------------------

def test_inception_score_known_values():
    assert metrics.inception_score(np.zeros((20, 7)), splits=2) == pytest.approx((1.0, 0.0))
    confident = np.eye(5)[np.arange(40) % 5] * 60.0  # sure of one class each, classes balanced: IS = 5
    assert metrics.inception_score(confident, splits=4)[0] == pytest.approx(5.0, rel=1e-9)


def test_inception_score_matches_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(11).normal(size=(100, 30)) * 3
    theirs = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    mean, std = metrics.inception_score(logits, splits=10)
    assert mean == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(theirs["inception_score_std"], rel=1e-9)


@pytest.mark.parametrize("device", [None, "cpu"])  # numpy (LAPACK), torch (the route CUDA takes)
def test_trace_sqrt_product_matches_scipy_sqrtm(device):
    rng = np.random.default_rng(5)
    s1, s2 = random_spd(rng, 50), random_spd(rng, 50, scale=0.2)
    expected = np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet.trace_sqrt_product(s1, s2, device) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_trace_sqrt_product_of_rank_deficient_covariances(device):
    # 12 and 9 samples in 64 dimensions: both covariances singular. The exact value is the
    # nuclear norm of A B^T through the samples; eigh on the D x D matrices must agree with it.
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(12, 64)), rng.normal(size=(9, 64)) * 2 + 0.5
    a, b = x - x.mean(0), y - y.mean(0)
    exact = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(11 * 8)
    got = frechet.trace_sqrt_product(np.cov(x, rowvar=False), np.cov(y, rowvar=False), device)
    assert got == pytest.approx(exact, rel=1e-6)  # the ~50 zero eigenvalues leave sqrt(rounding) each
    fid = metrics.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False), device)
    assert np.isfinite(fid) and fid == pytest.approx(frechet.fid_in_sample_space(x, y), rel=1e-6)
