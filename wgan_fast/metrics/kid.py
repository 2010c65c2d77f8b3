"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased estimate of
the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
averaged over random subsets of both sets.

Unlike FID it is unbiased at any sample count, so small-sample numbers
compare fairly (their spread is larger: see the std).
"""
from __future__ import annotations

import numpy as np

from .checks import as_features, same_dim

# Dot products of all samples at once when they fit in this many bytes; else per subset.
GRAM_BYTES = 1 << 30


def mmd2_unbiased(kernel: np.ndarray, m: int) -> float:
    """Unbiased MMD^2 from the kernel matrix of [x; y], each of m samples:
    mean of k(x, x') and k(y, y') over distinct pairs, minus twice the mean of k(x, y)."""
    kxx, kyy, kxy = kernel[:m, :m], kernel[m:, m:], kernel[:m, m:]
    same = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(same - 2 * kxy.sum() / (m * m))


def kid_from_features(f_real, f_fake, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """(mean, std) of the unbiased MMD^2 over `subsets` pairs of random subsets
    of `subset_size` samples (drawn without replacement, real then generated,
    from np.random.RandomState(seed))."""
    f_real, f_fake = as_features(f_real, "f_real"), as_features(f_fake, "f_fake")
    same_dim(f_real, f_fake)
    n_real, n_fake, d = len(f_real), len(f_fake), f_real.shape[1]
    if subsets < 1:
        raise ValueError(f"kid: subsets must be >= 1, got {subsets}")
    if not 2 <= subset_size <= min(n_real, n_fake):
        raise ValueError(f"kid: subset_size={subset_size} must be in [2, min(#real, #fake)] = "
                         f"[2, {min(n_real, n_fake)}] ({n_real} real, {n_fake} generated samples)")
    both = np.concatenate([f_real, f_fake])
    gram = both @ both.T if len(both) ** 2 * 8 <= GRAM_BYTES else None
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        idx = np.concatenate([rng.choice(n_real, subset_size, replace=False),
                              n_real + rng.choice(n_fake, subset_size, replace=False)])
        dots = gram[np.ix_(idx, idx)] if gram is not None else both[idx] @ both[idx].T
        mmds.append(mmd2_unbiased((dots / d + 1) ** 3, subset_size))
    return float(np.mean(mmds)), float(np.std(mmds))
