"""Drawing samples from any generator: seeded latents (and labels), in batches."""
from __future__ import annotations

import torch

from ..errors import UsageError


@torch.no_grad()
def sample_images(G, n: int, *, z_dim: int, num_classes: int, device, labels=None, seed: int = 0,
                  batch_size: int = 256, z=None):
    """(images in [-1, 1] float32 on CPU, NCHW; labels or None) of `n` samples of G.

    Conditional generators draw labels uniformly unless `labels` (n,) is given.
    Latents `z` (n, z_dim) may be given; else drawn from N(0, I) with `seed`.
    """
    gen = torch.Generator().manual_seed(seed)
    if z is None:
        z = torch.randn(n, z_dim, generator=gen)
    if num_classes:
        if labels is None:
            labels = torch.randint(0, num_classes, (n,), generator=gen)
        labels = torch.as_tensor(labels).long()
        if labels.shape != (n,) or labels.min() < 0 or labels.max() >= num_classes:
            raise UsageError(f"labels must be ({n},) integers in [0, {num_classes})")
    out = []
    for i in range(0, n, batch_size):
        y = labels[i:i + batch_size].to(device) if num_classes else None
        out.append(G(z[i:i + batch_size].to(device), y).float().clamp(-1, 1).cpu())
    images = torch.cat(out) if out else torch.empty(0)
    return images, (labels if num_classes else None)
