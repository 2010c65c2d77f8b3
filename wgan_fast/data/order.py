"""The batch order every loader follows, a pure function of (seed, rank, k).

Epoch e is a permutation of the N items drawn by a generator seeded with
(seed, e). Global batch k of an epoch is positions [k*W*B, (k+1)*W*B) of it
(W ranks, B per rank) and rank r takes its r-th B-slice: ranks see disjoint
shards that together cover the epoch (its tail shorter than W*B is dropped),
W ranks see exactly the batches one process with batch W*B would, and a
resumed stream continues from the integer k alone. Horizontal flips are drawn
the same way, from (seed, k), for the global batch.
"""
from __future__ import annotations

import torch

from ..errors import DataError


class BatchOrder:
    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.n, self.B, self.seed, self.rank, self.world = n, batch_size, seed, rank, world_size
        self.per_epoch = n // (batch_size * world_size)
        if self.per_epoch == 0:
            raise DataError(f"batch_size: {n} items are fewer than one global batch ({batch_size} per rank x {world_size} ranks)")
        self._epoch, self._perm = -1, None

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) & 0x7FFFFFFFFFFF)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def locate(self, k: int):
        """(epoch, start position in that epoch's permutation) of this rank's slice of batch k."""
        epoch, j = divmod(k, self.per_epoch)
        return epoch, (j * self.world + self.rank) * self.B

    def indices(self, k: int) -> torch.Tensor:
        epoch, start = self.locate(k)
        return self.permutation(epoch)[start: start + self.B]

    def flips(self, k: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((self.seed * 7_919 + k) & 0x7FFFFFFFFFFF)
        return (torch.rand(self.world * self.B, generator=g) < 0.5)[self.rank * self.B:(self.rank + 1) * self.B]
