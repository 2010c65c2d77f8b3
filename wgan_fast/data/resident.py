"""A dataset held whole on the device (uint8), drawn in shuffled batches by
on-device indexing: no host work and no host synchronisation per batch."""
from __future__ import annotations

import torch


class ResidentStream:
    """Endless batches of (images in [-1, 1], labels) from tensors on `device`.

    Order: epoch e is the permutation drawn by a generator seeded with
    (seed, e); global batch k of an epoch is positions [k*W*B, (k+1)*W*B) of
    it (W ranks, B per rank) and rank r takes its r-th B-slice, so ranks see
    disjoint shards and W ranks together see exactly the batches one process
    with batch W*B would. The tail of an epoch shorter than W*B is dropped.
    The position is one integer (the global batch count): a resumed stream
    continues with the same batches.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int, device, seed: int = 0,
                 rank: int = 0, world_size: int = 1, flip: bool = False):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device) if labels is not None else None
        self.B, self.rank, self.world, self.seed, self.flip = batch_size, rank, world_size, seed, flip
        self.per_epoch = len(images) // (batch_size * world_size)
        if self.per_epoch == 0:
            raise ValueError(f"{len(images)} images are fewer than one global batch ({batch_size} x {world_size} ranks)")
        self.k = 0
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) & 0x7FFFFFFFFFFF)
            self._perm = torch.randperm(len(self.images), generator=g).to(self.device)  # once per epoch
            self._epoch = epoch
        return self._perm

    def next(self):
        epoch, k = divmod(self.k, self.per_epoch)
        start = (k * self.world + self.rank) * self.B
        idx = self._permutation(epoch)[start: start + self.B]
        x = self.images.index_select(0, idx).float().div_(127.5).sub_(1.0)
        if self.flip:  # per-sample horizontal flips from the same (seed, batch) stream
            g = torch.Generator().manual_seed((self.seed * 7_919 + self.k) & 0x7FFFFFFFFFFF)
            mask = (torch.rand(self.world * self.B, generator=g)[self.rank * self.B:(self.rank + 1) * self.B] < 0.5)
            mask = mask.to(self.device).view(-1, 1, 1, 1)
            x = torch.where(mask, x.flip(3), x)
        y = self.labels.index_select(0, idx) if self.labels is not None else None
        self.k += 1
        return x, y

    def state_dict(self):
        return {"k": self.k}

    def load_state_dict(self, state):
        self.k = int(state["k"])
