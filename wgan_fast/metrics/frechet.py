"""Fréchet distance between Gaussians fitted to features (FID, Heusel et al. 2017).

FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .checks import as_features, same_dim


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) in float64; the covariance with the
    unbiased 1/(N-1) normalisation, as every FID implementation uses."""
    f = as_features(features)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, device=None) -> float:
    """The Fréchet (2-Wasserstein) distance squared between N(mu1, sigma1) and N(mu2, sigma2).

    `device`: where the two eigendecompositions run, in float64: a torch device
    ("cuda", "cpu"), or None for CUDA when there is one, else numpy (LAPACK)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise ValueError(f"frechet_distance: {name} contains NaN or infinite values")
    tr_covmean = trace_sqrt_product(sigma1, sigma2, device)
    diff = mu1 - mu2
    fid = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    return max(fid, 0.0)  # the exact value is >= 0; a negative one is rounding (identical sets)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, device=None) -> float:
    """tr (S1 S2)^(1/2) of two symmetric PSD matrices, from symmetric eigendecompositions only.

    S1 S2 has the eigenvalues of S1^(1/2) S2 S1^(1/2), which is symmetric PSD:
    eigh stays real and exact enough for singular covariances (fewer samples
    than dimensions), where a general sqrtm needs an eps offset or returns
    complex noise."""
    if device is None and torch.cuda.is_available():
        device = "cuda"
    if device is None:
        w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
        root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        m = root1 @ sigma2 @ root1
        return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    s1 = torch.as_tensor(sigma1, dtype=torch.float64, device=device)
    s2 = torch.as_tensor(sigma2, dtype=torch.float64, device=device)
    w, v = torch.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    m = root1 @ s2 @ root1
    return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum())


def fid_from_features(f_real, f_fake) -> float:
    """FID between two feature sets (N, D). Warns when a set has no more samples
    than dimensions: the covariance is then singular and FID biased upward."""
    f_real, f_fake = as_features(f_real, "f_real"), as_features(f_fake, "f_fake")
    same_dim(f_real, f_fake)
    warn_if_biased(len(f_real), len(f_fake), f_real.shape[1])
    if min(len(f_real), len(f_fake)) <= f_real.shape[1]:
        return fid_in_sample_space(f_real, f_fake)
    return frechet_distance(*feature_stats(f_real), *feature_stats(f_fake))


def fid_in_sample_space(x: np.ndarray, y: np.ndarray) -> float:
    """The same FID computed through the samples, for fewer samples than dimensions.

    With A, B the centred features, S1 = A^T A / (n1-1) and S2 = B^T B / (n2-1);
    the nonzero eigenvalues of S1 S2 are those of M M^T / ((n1-1)(n2-1)) with
    M = A B^T (n1 x n2), so tr (S1 S2)^(1/2) is M's nuclear norm / sqrt((n1-1)(n2-1)):
    one small SVD instead of two D x D eigendecompositions, and no square roots
    of the rounding noise in the D - n zero eigenvalues.
    """
    a, b = x - x.mean(axis=0), y - y.mean(axis=0)
    c1, c2 = len(x) - 1, len(y) - 1
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(c1 * c2)
    diff = x.mean(axis=0) - y.mean(axis=0)
    fid = float(diff @ diff + (a * a).sum() / c1 + (b * b).sum() / c2 - 2 * tr_covmean)
    return max(fid, 0.0)  # the exact value is >= 0; a negative one is rounding


def warn_if_biased(n_real: int, n_fake: int, dim: int) -> str | None:
    """The warning (also returned) for sample counts too small for a dim-d covariance."""
    if min(n_real, n_fake) > dim:
        return None
    msg = (f"FID from {n_real} real and {n_fake} generated samples of {dim}-d features: with no more samples than "
           f"dimensions the covariance is singular and FID is biased upward (it is biased at every finite count); "
           f"compare only numbers computed from the same sample counts")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return msg
