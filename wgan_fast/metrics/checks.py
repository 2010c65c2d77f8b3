"""Validation of feature arrays, images and labels, shared by the metrics: bad
input gets a ValueError (UsageError for images and labels) naming the
argument, never a silently wrong number."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UsageError
from .inception import eight_bit_levels


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


MIN_SIDE = 8  # the domain classifier's three 2x2 poolings need 8 px of content


def as_images(x, name: str = "images") -> torch.Tensor:
    """Images as uint8 (N, C, H, W), C 1 or 3: uint8 (N, H, W) or (N, C, H, W) as they are, float
    images in [-1, 1] quantised to the 8-bit levels a saved file would hold; a UsageError naming
    `name` for anything else."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:  # a read-only view (np.frombuffer): torch wants a copy
        x = x.copy()
    x = torch.as_tensor(x)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] not in (1, 3) or min(x.shape[2:]) < MIN_SIDE:
        raise UsageError(f"{name}: expected images (N, H, W) or (N, C, H, W) with C 1 or 3 and H, W >= {MIN_SIDE} "
                         f"(what the domain classifier takes), got shape {tuple(x.shape)}")
    try:
        return eight_bit_levels(x).to(torch.uint8) if x.dtype != torch.uint8 else x
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def as_labels(labels, n: int, name: str = "labels", num_classes: int = 10, images_name: str = "images"):
    """Labels as int64 (n,), each in [0, num_classes); a UsageError naming `name` otherwise."""
    y = torch.as_tensor(np.asarray(labels))
    if y.dim() != 1 or len(y) != n:
        raise UsageError(f"{name}: {tuple(y.shape)} labels for {n} {images_name} (one label per image)")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise UsageError(f"{name}: labels must be integers, got {y.dtype}")
    y = y.long()
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = int(y.max()) if int(y.max()) >= num_classes else int(y.min())
        raise UsageError(f"{name}: label {bad} is outside the classifier's classes 0..{num_classes - 1}")
    return y
