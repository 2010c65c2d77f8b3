"""Does a generator copy its training images? Two tests on nearest-neighbour
distances in a feature space (Inception pool3, the domain classifier's
128-d features, or raw pixels):

- authenticity (after Alaa et al. 2022): a generated sample is not authentic
  when it lies closer to its nearest training sample than that training
  sample lies to its own nearest training neighbour; `authenticity` is the
  share that are authentic. Held-out real images score the same way
  (`heldout_authenticity`): what a generator that copies nothing reaches.
- the data-copying test C_T (Meehan et al. 2020): the training set is cut
  into k-means cells; in each cell a Mann-Whitney U test, z-scored, compares
  the generated and the held-out samples' distances to their nearest
  training sample in that cell; C_T (`copying_z`) is the mean of the cells'
  z weighted by their share of held-out samples, over cells with at least
  `min_per_cell` generated samples. About 0 when the samples sit as far from
  the training set as unseen real data, strongly negative when closer
  (copying), positive when farther (underfitting).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import data
from ..classifier import load_split
from ..errors import UsageError, require
from ..runlog import save_grid
from .checks import as_images
from .knn_manifolds import nearest_neighbours

FEATURES = ("inception", "classifier", "pixels")
CELLS = 20
MIN_PER_CELL = 20


def feature_fn(features: str, dataset: str, device, batch_size: int | None = None):
    """uint8 images (N, C, H, W) -> features (N, D), by the named network (loaded once)."""
    if features == "pixels":
        return lambda images: images.flatten(1).float() / 255
    if features == "classifier":
        from .classifier_features import ClassifierFeatures  # noqa: PLC0415

        net = ClassifierFeatures(dataset, device)
    else:
        from .inception import InceptionFeatures  # noqa: PLC0415

        net = InceptionFeatures(device=device, batch_size=batch_size)
    return lambda images: torch.from_numpy(net(images))


def authentic(queries, train_f, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(authentic bool, distance to the nearest training sample, its index, that sample's own
    nearest-training-neighbour distance) of each query."""
    d, j = (t[:, 0] for t in nearest_neighbours(queries, train_f, 1, device=device))
    matched = j.unique()
    radius_of_matched = nearest_neighbours(train_f[matched], train_f, 1, exclude=matched, device=device)[0][:, 0]
    radius = torch.empty(len(train_f), dtype=torch.float64)
    radius[matched] = radius_of_matched
    return d >= radius[j], d, j, radius[j]


def copying_z(gen_f, heldout_f, train_f, *, cells: int = CELLS, min_per_cell: int = MIN_PER_CELL, seed: int = 0,
              device=None) -> dict:
    """Meehan et al.'s C_T and the cell counts behind it (see the module docstring)."""
    cluster = require("sklearn.cluster", "eval", "the data-copying test's k-means cells")
    stats = require("scipy.stats", "eval", "the data-copying test's Mann-Whitney U")
    if cells > len(train_f):
        raise UsageError(f"cells: {cells} k-means cells need at least as many training images, got {len(train_f)}")
    km = cluster.KMeans(n_clusters=cells, n_init=1, random_state=seed).fit(train_f.float().numpy())
    cell_of = [torch.from_numpy(km.predict(f.float().numpy())) for f in (gen_f, heldout_f)]
    train_cell = torch.from_numpy(km.labels_)
    z, weight, no_heldout, few_generated = [], [], 0, 0
    for c in range(cells):
        q, p, t = gen_f[cell_of[0] == c], heldout_f[cell_of[1] == c], train_f[train_cell == c]
        if len(p) == 0:
            no_heldout += 1
            continue
        if len(q) < min_per_cell:
            few_generated += 1
            continue
        lq = nearest_neighbours(q, t, 1, device=device)[0][:, 0].numpy()
        lp = nearest_neighbours(p, t, 1, device=device)[0][:, 0].numpy()
        m, n = len(lq), len(lp)
        u = stats.mannwhitneyu(lq, lp).statistic  # pairs with the generated distance larger (ties 1/2)
        z.append((u - m * n / 2 + 0.5) / np.sqrt(m * n * (m + n + 1) / 12))  # Meehan et al.'s z, continuity 1/2
        weight.append(n / len(heldout_f))
    if not z:
        raise UsageError(f"images: no k-means cell holds >= {min_per_cell} generated and some held-out samples "
                         f"({cells} cells); pass more images or fewer cells")
    return dict(copying_z=float(np.dot(weight, z) / np.sum(weight)), cells=cells, cells_used=len(z),
                cells_without_heldout=no_heldout, cells_with_few_generated=few_generated, min_per_cell=min_per_cell,
                cell_z=[float(v) for v in z])


def _heldout(heldout_images, dataset: str, like: torch.Tensor) -> torch.Tensor:
    """The held-out images: given, else the dataset's test split at the generated images' size."""
    if heldout_images is not None:
        return as_images(heldout_images, "heldout_images")
    test, _ = load_split(dataset, train=False)
    return data.to_resolution(test, like.shape[-1], like.shape[1])


def memorization(images, train_images, *, features: str = "inception", heldout_images=None,
                 dataset: str = "fashion-mnist", cells: int = CELLS, min_per_cell: int = MIN_PER_CELL,
                 grid: str | None = None, n_pairs: int = 16, seed: int = 0, device="cpu",
                 batch_size: int | None = None) -> dict:
    """Authenticity and the data-copying statistic of generated images against the training images
    (uint8 N x H x W or N x C x H x W, or floats in [-1, 1], all of one shape); held-out images
    default to `dataset`'s test split. grid=PATH writes the `n_pairs` closest generated/training
    pairs there (generated left, training right). Arrays of the distances are in the result."""
    t0 = time.time()
    if features not in FEATURES:
        raise UsageError(f"features: must be one of {', '.join(FEATURES)}, got {features!r}")
    images, train_images = as_images(images, "images"), as_images(train_images, "train_images")
    heldout_images = _heldout(heldout_images, dataset, images)
    for name, x in (("train_images", train_images), ("heldout_images", heldout_images)):
        if x.shape[1:] != images.shape[1:]:
            raise UsageError(f"{name}: images of shape {tuple(x.shape[1:])}, the generated ones are "
                             f"{tuple(images.shape[1:])}; bring them to one size")
        if len(x) < 2:
            raise UsageError(f"{name}: needs at least 2 images, got {len(x)}")
    embed = feature_fn(features, dataset, device, batch_size)
    gen_f, train_f, held_f = (embed(x) for x in (images, train_images, heldout_images))
    ok, d, j, radius = authentic(gen_f, train_f, device)
    held_ok, held_d, _, _ = authentic(held_f, train_f, device)
    result = dict(authenticity=ok.double().mean().item(), heldout_authenticity=held_ok.double().mean().item(),
                  **copying_z(gen_f, held_f, train_f, cells=cells, min_per_cell=min_per_cell, seed=seed,
                              device=device),
                  features=features, n_generated=len(images), n_train=len(train_images),
                  n_heldout=len(heldout_images), exact_copies=int((d == 0).sum()),
                  nn_distance_median=d.median().item(), heldout_nn_distance_median=held_d.median().item(),
                  nn_distances=d.numpy(), nn_indices=j.numpy(), train_nn_distances=radius.numpy(),
                  heldout_nn_distances=held_d.numpy())
    if grid:
        closest = d.argsort()[:n_pairs]
        pairs = torch.stack([images[closest], train_images[j[closest]]], 1).flatten(0, 1)
        result["grid"] = save_grid(pairs.float() / 127.5 - 1, grid, nrow=8)
    result["seconds"] = round(time.time() - t0, 1)
    return result
