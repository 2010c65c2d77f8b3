"""Nearest neighbours in blocks of matrix products, and improved precision
and recall (Kynkäänniemi et al. 2019) on them.

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


def nearest_neighbours(queries, refs, k: int = 1, *, exclude=None, search_dtype=torch.float32, device=None,
                       rows: int = ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances float64 (N, k) ascending, indices int64 (N, k)) of each query's k nearest refs.

    Each block of `rows` queries is one matrix product against all refs (in
    `search_dtype`, on `device`: the GPU when given one), then a top-k; the k
    distances found are recomputed from the vectors in float64, so a copy sits
    at exactly 0 (the product form cancels to ~1e-7 of the norms in float32).
    `exclude` (N,) names one ref per query to leave out (a set searched
    against itself: each sample's own index).
    """
    device = torch.device(device) if device is not None else queries.device
    q_all, r_all = torch.as_tensor(queries), torch.as_tensor(refs)
    if k > len(r_all) - (exclude is not None):
        raise ValueError(f"nearest_neighbours: k={k} but only {len(r_all)} refs")
    refs_search = r_all.to(device, search_dtype)
    ref_norms = (refs_search * refs_search).sum(1)
    dist, index = [], []
    for start in range(0, len(q_all), rows):
        block = q_all[start:start + rows].to(device, search_dtype)
        # squared distances up to the block's own norms (constant along a row: the ranking needs none)
        d = torch.addmm(ref_norms, block, refs_search.T, alpha=-2)
        if exclude is not None:
            d[torch.arange(len(block), device=device), torch.as_tensor(exclude[start:start + rows]).to(device)] = \
                float("inf")
        idx = d.topk(k, dim=1, largest=False).indices.cpu()
        exact = (r_all[idx].double() - q_all[start:start + rows, None].double()).norm(dim=2)
        exact, order = exact.sort(dim=1)  # the exact distances may reorder near-ties
        dist.append(exact)
        index.append(idx.gather(1, order))
    if not dist:
        return torch.empty(0, k, dtype=torch.float64), torch.empty(0, k, dtype=torch.int64)
    return torch.cat(dist), torch.cat(index)


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
