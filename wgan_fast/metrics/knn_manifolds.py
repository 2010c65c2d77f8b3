"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each set's manifold is the union of balls around its samples, each ball
reaching the sample's k-th nearest neighbour in its own set. Precision: the
fraction of generated samples inside the real manifold (fidelity). Recall:
the fraction of real samples inside the generated manifold (coverage).
"""
from __future__ import annotations

import torch

from .checks import as_features, same_dim

ROWS = 1024  # distance rows per block: a block of 1024 x N float64 distances at a time


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (len(a), len(b)); squared norms and one matmul, float64."""
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2 * a @ b.T
    return sq.clamp_min_(0).sqrt_()


def knn_radii(f: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each sample to its k-th nearest neighbour in its own set (itself excluded)."""
    # the (k+1)-th smallest distance of a row, the sample's own zero being the first
    return torch.cat([_distances(block, f).kthvalue(k + 1, dim=1).values for block in f.split(ROWS)])


def fraction_inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of queries inside at least one ball (centre, radius), boundary included."""
    inside = [(_distances(block, centres) <= radii).any(dim=1) for block in queries.split(ROWS)]
    return torch.cat(inside).double().mean().item()


def precision_recall(f_real, f_fake, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of generated features against real ones, k-NN balls."""
    if k < 1:
        raise ValueError(f"precision_recall: k must be >= 1, got {k}")
    f_real = torch.from_numpy(as_features(f_real, "f_real", min_rows=k + 1))
    f_fake = torch.from_numpy(as_features(f_fake, "f_fake", min_rows=k + 1))
    same_dim(f_real.numpy(), f_fake.numpy())
    precision = fraction_inside(f_fake, f_real, knn_radii(f_real, k))
    recall = fraction_inside(f_real, f_fake, knn_radii(f_fake, k))
    return precision, recall
