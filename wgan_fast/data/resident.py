"""A dataset held whole on the device (uint8), drawn in shuffled batches by
on-device indexing: one host-to-device copy of the epoch's permutation (and
flips) per epoch, no host work and no host synchronisation per batch.

An image folder held here keeps a (zero) slot for each file that did not
decode; the epoch's permutation names its substitute instead (see
unreadable.py), so batches are those of the file loaders."""
from __future__ import annotations

import torch

from .order import BatchOrder


class ResidentStream:
    """Endless batches of (images in [-1, 1], labels) in BatchOrder's order."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int, device, seed: int = 0,
                 rank: int = 0, world_size: int = 1, flip: bool = False, unreadable=None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device) if labels is not None else None
        self.order = BatchOrder(len(images), batch_size, seed, rank, world_size)
        self.flip, self.k = flip, 0
        self.unreadable = unreadable  # UnreadableFiles of an image folder, all found at load
        self._epoch, self._perm, self._flips = -1, None, None

    def _load_epoch(self, epoch):
        perm = self.order.permutation(epoch)
        self._perm = (self.unreadable.substituted(perm) if self.unreadable is not None else perm).to(self.device)
        if self.flip:  # every batch's flips of the epoch, copied once
            first = epoch * self.order.per_epoch
            flips = torch.stack([self.order.flips(k) for k in range(first, first + self.order.per_epoch)])
            self._flips = flips.to(self.device)
        self._epoch = epoch

    def next(self):
        epoch, start = self.order.locate(self.k)
        if epoch != self._epoch:
            self._load_epoch(epoch)
        idx = self._perm[start: start + self.order.B]
        x = self.images.index_select(0, idx).float().div_(127.5).sub_(1.0)
        if self.flip:
            mask = self._flips[self.k - epoch * self.order.per_epoch].view(-1, 1, 1, 1)
            x = torch.where(mask, x.flip(3), x)
        y = self.labels.index_select(0, idx) if self.labels is not None else None
        self.k += 1
        return x, y

    @property
    def skipped_files(self) -> int:
        return self.unreadable.count if self.unreadable is not None else 0

    def state_dict(self):
        return {"k": self.k}

    def load_state_dict(self, state):
        self.k = int(state["k"])
