"""Datasets and batch streams for training.

`make_stream(cfg, device, rank, world_size)` returns an endless, seeded stream
of (images in [-1, 1] NCHW on `device`, labels or None) with `next()`,
`state_dict()` and `load_state_dict()`; for the 2-D toy datasets, (points,
None). The public helpers say where a dataset lives (`dataset_root`), read
array datasets (`load_arrays`) and resize as the trainer does
(`to_resolution`), so evaluation sees the images training saw.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError, DataNotFound
from . import files, formats, idx, toys
from .order import BatchOrder
from .resident import ResidentStream

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def fashion_mnist_root(data_dir: str = "") -> str:
    """Where the Fashion-MNIST IDX files are: --data-dir, $WGAN_FAST_DATA, the
    Debian package's folder, else a torchvision download; or say what to do."""
    candidates = []
    for base in (data_dir, os.environ.get("WGAN_FAST_DATA", "")):
        if base:
            candidates += [base, os.path.join(base, "fashion-mnist"), os.path.join(base, "FashionMNIST", "raw")]
    candidates.append(DEBIAN_FASHION_MNIST)
    for c in candidates:
        if idx.find(c, "train-images-idx3-ubyte"):
            return c
    target = data_dir or os.environ.get("WGAN_FAST_DATA") or os.path.expanduser("~/.cache/wgan_fast")
    try:
        from torchvision.datasets import FashionMNIST  # noqa: PLC0415

        FashionMNIST(target, train=True, download=True)
        return os.path.join(target, "FashionMNIST", "raw")
    except Exception as exc:  # noqa: BLE001 - no network, or a mirror down
        raise DataNotFound(
            "Fashion-MNIST not found (looked in: " + ", ".join(candidates) + f") and the download failed ({exc}). "
            "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put "
            "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz in a folder and pass --data-dir FOLDER."
        ) from None


def to_resolution(images: np.ndarray, resolution: int, channels: int) -> torch.Tensor:
    """uint8 (N, H, W[, C]) -> uint8 (N, channels, resolution, resolution).

    Resized once at load with bilinear interpolation (antialiased when
    shrinking); grayscale is repeated to 3 channels when asked.
    """
    x = torch.from_numpy(np.array(images, dtype=np.uint8))  # a writable copy
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] == 1 and channels == 3:
        x = x.repeat(1, 3, 1, 1)
    elif x.shape[1] == 3 and channels == 1:
        x = (x.float() @ torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1).transpose(1, 3)).clamp(0, 255).byte()
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        out = []
        for chunk in x.split(4096):
            y = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear", align_corners=False,
                              antialias=resolution < chunk.shape[-1])
            out.append(y.round().clamp(0, 255).byte())
        x = torch.cat(out)
    return x.contiguous()


def dataset_root(cfg, name=None):
    """The folder of a dataset's files: --data-dir, else $WGAN_FAST_DATA."""
    name = name or cfg["dataset"]
    root = cfg["data_dir"] or os.environ.get("WGAN_FAST_DATA", "")
    if not root:
        raise DataNotFound(f"{name}: pass --data-dir FOLDER (or set $WGAN_FAST_DATA) with the dataset's files")
    return root


def load_arrays(cfg):
    """(images uint8 (N, H, W[, C]), labels or None) of the array-format datasets."""
    name = cfg["dataset"]
    if name == "fashion-mnist":
        return idx.load_split(fashion_mnist_root(cfg["data_dir"]), train=True)
    if name == "mnist":
        return idx.load_split(dataset_root(cfg, name), train=True)
    if name == "cifar10":
        return formats.read_cifar10(dataset_root(cfg, name), train=True)
    if name == "stl10":
        x, y = formats.read_stl10(dataset_root(cfg, name), splits=("train", "unlabeled"))
        return x, (y if (y >= 0).all() else None)  # unlabeled images: no labels for the whole set
    raise ValueError(f"dataset {name!r} is not an array dataset")


FILE_DATASETS = ("celeba", "folder")
ARRAY_DATASETS = ("fashion-mnist", "mnist", "cifar10", "stl10")
TOY_DATASETS = toys.TOYS
DATASETS = ARRAY_DATASETS + FILE_DATASETS + TOY_DATASETS


def check_config(cfg: dict) -> None:
    """Raise ConfigError naming the key when the data keys cannot work together."""
    if cfg["dataset"] in ARRAY_DATASETS and cfg["loader"] not in ("auto", "resident"):
        raise ConfigError(f"loader: {cfg['dataset']} is read from array files and held on the device; use auto or "
                          f"resident, got {cfg['loader']!r}")


def _labels(labels, cfg, source: str):
    """The labels as a tensor (or None); a conditional run needs one per image,
    each below num_classes."""
    if labels is not None:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if not cfg["conditional"]:
        return labels
    if labels is None:
        raise DataError(f"conditional: {source} has no class labels (an unlabeled split or a folder without class "
                        f"sub-folders); train without --conditional, or give labelled data")
    if len(labels) and int(labels.min()) < 0:
        raise DataError(f"conditional: {source} has a negative label ({int(labels.min())}); a conditional run "
                        f"needs labels 0..num_classes-1")
    if len(labels) and int(labels.max()) >= cfg["num_classes"]:
        raise DataError(f"num_classes: {source} has labels up to {int(labels.max())}, more than "
                        f"num_classes={cfg['num_classes']} allows; pass --num-classes {int(labels.max()) + 1}")
    return labels


def make_stream(cfg: dict, device, rank: int = 0, world_size: int = 1):
    """The trainer's batch stream for cfg["dataset"] (see the module docstring)."""
    name, loader = cfg["dataset"], cfg["loader"]
    common = dict(batch_size=cfg["batch_size"], device=device, seed=cfg["seed"], rank=rank, world_size=world_size,
                  flip=cfg["flip"])
    if name in TOY_DATASETS:
        return toys.ToyStream(name, cfg["batch_size"], device, cfg["seed"], rank)
    if name in ARRAY_DATASETS:
        images, labels = load_arrays(cfg)
        x = to_resolution(images, cfg["resolution"], cfg["channels"])
        return ResidentStream(x, _labels(labels, cfg, name), **common)
    if name in FILE_DATASETS:
        root = dataset_root(cfg, name)
        paths, labels, _ = formats.list_images(root)
        # every loader streams the files that pass the scan, in one order; later finds are substituted alike
        paths, labels, unreadable = files.check_files(paths, labels, cfg["on_corrupt"], cfg["max_corrupt"])
        labels = _labels(labels, cfg, root)
        if loader == "resident":
            images = formats.decode_each(paths, cfg["resolution"], cfg["channels"], cfg["crop"], unreadable.mark)
            x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
            return ResidentStream(x, labels, unreadable=unreadable, **common)
        labels = labels.numpy() if labels is not None else None
        if loader == "dali" or (loader == "auto" and files.dali_available()):
            return files.DALIStream(paths, labels, cfg["resolution"], cfg["channels"], crop=cfg["crop"],
                                    unreadable=unreadable, **common)
        return files.DataLoaderStream(paths, labels, cfg["resolution"], cfg["channels"], crop=cfg["crop"],
                                      num_workers=cfg["num_workers"], unreadable=unreadable, **common)
    raise ValueError(f"dataset: unknown dataset {name!r}")
