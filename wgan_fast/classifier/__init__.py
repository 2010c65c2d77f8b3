"""A small domain classifier of our own (Fashion-MNIST, MNIST).

It judges generated images without Inception: `model(x)` gives class logits
(does G(z, y) look like y?), `model.features(x)` the 128-d penultimate
features for a cheap classifier-feature FID. Inputs are images in [-1, 1]
(N, C, H, W) at any resolution: they are made gray and resized to 28x28
inside. The weights are trained by `python -m wgan_fast.classifier.train` and
committed beside this file; `weights.json` records each file's sha256 (checked
on load) and the test accuracy it reached.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, DataNotFound, UsageError

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "weights.json")
DATASETS = ("fashion-mnist", "mnist")
SIZE = 28
FEATURES = 128
NUM_CLASSES = 10  # both datasets have ten


class DomainClassifier(nn.Module):
    """Three conv blocks (32, 64, 128 channels; BN, ReLU, 2x2 max-pool) and a
    128-unit hidden layer: ~240k parameters, ~1 MB of float32 weights."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                    nn.MaxPool2d(2)]

        self.conv = nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128))  # 28 -> 14 -> 7 -> 3
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(128 * 3 * 3, FEATURES), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, num_classes))

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images, any channels and size -> (N, 1, 28, 28) float32."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] == 3:
            x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bicubic", align_corners=False,
                              antialias=x.shape[-1] > SIZE)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.conv(self.prepare(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def weights_path(dataset: str) -> str:
    return os.path.join(HERE, dataset.replace("-", "_") + ".pt")


def read_manifest() -> dict:
    if not os.path.exists(MANIFEST):
        return {}
    with open(MANIFEST) as f:
        return json.load(f)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_classifier(dataset: str, device="cpu") -> DomainClassifier:
    """The committed classifier for `dataset`, in eval mode on `device`."""
    if dataset not in DATASETS:
        raise UsageError(f"no domain classifier for dataset {dataset!r}: there are classifiers for "
                                f"{', '.join(DATASETS)} only")
    path, entry = weights_path(dataset), read_manifest().get(dataset)
    if entry is None or not os.path.exists(path):
        raise DataNotFound(
            f"no classifier weights for {dataset} ({path}"
            + (" is missing)" if not os.path.exists(path) else " is not recorded in weights.json)")
            + f"; train them with `python -m wgan_fast.classifier.train --dataset {dataset} --data-dir DIR`")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise DataError(f"{path}: sha256 {digest} does not match weights.json ({entry['sha256']}): the file is "
                         "corrupt or was replaced (a Git LFS pointer?); retrain or check it out again")
    model = DomainClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval().requires_grad_(False)


def load_split(dataset: str, data_dir: str = "", train: bool = False):
    """(uint8 images (N, 28, 28), int64 labels) of a dataset's train or test split."""
    from ..data import fashion_mnist_root, idx  # noqa: PLC0415

    if dataset == "fashion-mnist":
        return idx.load_split(fashion_mnist_root(data_dir), train=train)
    if dataset == "mnist":
        root = data_dir or os.environ.get("WGAN_FAST_DATA", "")
        if not root:
            raise DataNotFound("mnist: pass --data-dir FOLDER (or set $WGAN_FAST_DATA) with the MNIST IDX files")
        return idx.load_split(root, train=train)
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).float().div(127.5).sub(1).unsqueeze(1)


@torch.no_grad()
def predict(model: DomainClassifier, images: torch.Tensor, batch_size: int = 1000):
    """(logits, features) of [-1, 1] images, in batches, on CPU."""
    device = next(model.parameters()).device
    logits, feats = [], []
    for chunk in images.split(batch_size):
        f = model.features(chunk.to(device))
        feats.append(f.cpu())
        logits.append(model.head(f).cpu())
    if not feats:
        return torch.empty(0, 10), torch.empty(0, FEATURES)
    return torch.cat(logits), torch.cat(feats)


def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of `images` the classifier puts in their `labels`' class."""
    logits, _ = predict(model, images)
    return (logits.argmax(1) == labels.cpu()).float().mean().item()
