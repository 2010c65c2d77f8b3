"""The real images a run is judged against, and their features cached on disk.

The reference set is `n` images of the run's dataset (the test split where
the dataset has one), chosen with a fixed seed and brought to the run's
resolution and channels exactly as the trainer saw them. Its features are
computed once and kept in
`<cache>/reference/<dataset>-<split>-<res>px-<ch>ch-n<n>-<network>-<hash>.npz`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings

import numpy as np
import torch

from .. import data
from ..data import formats, idx
from ..errors import UsageError
from .inception import cache_dir

TEST_SPLITS = ("fashion-mnist", "mnist", "cifar10", "stl10")  # datasets with an official test split
SUBSET_SEED = 0


def split_used(cfg: dict, split: str) -> str:
    """`split`, or "train" (with a warning) for a dataset without a test split."""
    if split not in ("train", "test"):
        raise UsageError(f"split must be train or test, got {split!r}")
    if cfg["dataset"].startswith("toy-"):
        raise UsageError(f"dataset {cfg['dataset']} is a 2-D toy: image metrics do not apply to its points")
    if split == "test" and cfg["dataset"] not in TEST_SPLITS:
        warnings.warn(f"{cfg['dataset']} has no test split here: the reference images are drawn from the "
                      f"training images", RuntimeWarning, stacklevel=3)
        return "train"
    return split


def split_arrays(cfg: dict, split: str):
    """(uint8 images (N, H, W[, C]), int64 labels or None) of an array dataset's train or test split."""
    name = cfg["dataset"]
    if split == "train":
        return data.load_arrays(cfg)  # exactly what the trainer reads
    if name == "fashion-mnist":
        return idx.load_split(data.fashion_mnist_root(cfg["data_dir"]), train=False)
    root = data.dataset_root(cfg, name)  # the trainer's own rule for where a dataset lives
    if name == "mnist":
        return idx.load_split(root, train=False)
    if name == "cifar10":
        return formats.read_cifar10(root, train=False)
    return formats.read_stl10(root, splits=("test",))


def _choose(total: int, n: int, what: str) -> np.ndarray:
    """n of `total` indices, the same ones every time (sorted)."""
    if n < 1:
        raise UsageError(f"n_real must be >= 1, got {n}")
    if n > total:
        raise UsageError(f"n_real={n} but {what} has only {total} images")
    return np.sort(np.random.RandomState(SUBSET_SEED).choice(total, n, replace=False))


def real_images(cfg: dict, split: str, n: int) -> torch.Tensor:
    """uint8 (n, channels, resolution, resolution): the reference images of the run's dataset."""
    name, res, ch = cfg["dataset"], cfg["resolution"], cfg["channels"]
    if name in data.FILE_DATASETS:
        paths, _, _ = formats.list_images(data.dataset_root(cfg, name))
        paths = [paths[i] for i in _choose(len(paths), n, f"the image folder {cfg['data_dir']}")]
        images, _, _ = formats.decode_folder(paths, None, res, ch, cfg["crop"], cfg["on_corrupt"], cfg["max_corrupt"])
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    images = split_arrays(cfg, split)[0]
    chosen = images[_choose(len(images), n, f"the {name} {split} split")]
    return data.to_resolution(chosen, res, ch)  # the trainer's resize, so both sides match


def _preparation(cfg: dict) -> str:
    """How an image-file dataset's pixels are made (crop, filter); "" for array datasets."""
    return f"{cfg['crop']}-{formats.RESIZE_FILTER}" if cfg["dataset"] in data.FILE_DATASETS else ""


def cache_path(cfg: dict, split: str, n: int, network_tag: str) -> str:
    name = cfg["dataset"]
    if name in data.FILE_DATASETS:  # "folder" names no dataset: the folder does
        name += "-" + hashlib.sha256(os.path.abspath(cfg["data_dir"]).encode()).hexdigest()[:8]
        name += "-" + _preparation(cfg)
    stem = f"{name}-{split}-{cfg['resolution']}px-{cfg['channels']}ch-n{n}-{network_tag}"
    return os.path.join(cache_dir(), "reference", stem + ".npz")


def _key(cfg, split, n, network_tag) -> dict:
    # where a named dataset's files lie does not change them; an image folder is its path
    folder = os.path.abspath(cfg["data_dir"]) if cfg["dataset"] in data.FILE_DATASETS else ""
    return dict(dataset=cfg["dataset"], folder=folder, preparation=_preparation(cfg), split=split,
                resolution=cfg["resolution"], channels=cfg["channels"], n=n, network=network_tag,
                subset_seed=SUBSET_SEED)


def reference_features(cfg: dict, split: str, n: int, network, network_tag: str, use_cache: bool = True):
    """(features (n, D) float64, cache path) of the reference set under `network`;
    read from the cache when it holds them, else computed and stored."""
    split = split_used(cfg, split)
    path = cache_path(cfg, split, n, network_tag)
    key = _key(cfg, split, n, network_tag)
    if use_cache and os.path.exists(path):
        try:
            with np.load(path) as z:
                if json.loads(str(z["key"])) == key:
                    return z["features"].astype(np.float64), path
            warnings.warn(f"{path} was made for other settings; recomputing it", RuntimeWarning, stacklevel=2)
        except Exception as exc:  # noqa: BLE001 - truncated or foreign file: recompute, say so
            warnings.warn(f"{path} is unreadable ({type(exc).__name__}: {exc}); recomputing it", RuntimeWarning,
                          stacklevel=2)
    # kept as float32 (the networks' own precision), so a cache hit gives the very same numbers
    features = network(real_images(cfg, split, n)).astype(np.float32).astype(np.float64)
    if use_cache:
        _save(path, features, key)
    return features, path


def _save(path: str, features: np.ndarray, key: dict) -> None:
    """Write atomically: a reader sees the old file or the whole new one."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ref_", suffix=".npz", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, features=features.astype(np.float32), key=json.dumps(key))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
