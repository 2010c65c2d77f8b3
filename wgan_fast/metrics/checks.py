"""Validation of feature arrays, shared by the metrics: bad input gets a
ValueError naming the problem, never a silently wrong number."""
from __future__ import annotations

import numpy as np
import torch


def as_features(x, name: str = "features", min_rows: int = 2) -> np.ndarray:
    """x (N, D) as a float64 numpy array; finite, at least `min_rows` rows."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (samples, features), got shape {x.shape}")
    if len(x) < min_rows:
        raise ValueError(f"{name}: needs at least {min_rows} samples, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def same_dim(a: np.ndarray, b: np.ndarray, names=("f_real", "f_fake")) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} has {a.shape[1]}-d features but {names[1]} has {b.shape[1]}-d")
