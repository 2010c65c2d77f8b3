"""Class coverage of generated images: how the domain classifier's predicted
classes of the samples are spread, against its predictions on real images.

An unconditional model can drop or over-produce classes while its FID looks
fine; these numbers show it directly:
- class_cov: total variation distance between the two class histograms,
  1/2 sum |p_k - q_k| (0: the same shares; 1: disjoint);
- class_kl: KL(real || generated), with the generated counts smoothed by
  +1/2 each (Jeffreys), so a missing class costs a large but finite amount;
- class_min_share: the smallest class share of the samples (0: a class missing);
- class_shares: each class's share of the samples.
The reference is the classifier's predictions on real images, not the true
labels, so its own confusions (shirt / T-shirt) cancel out of the distance.
"""
from __future__ import annotations

import numpy as np


def class_shares(classes, num_classes: int) -> np.ndarray:
    """Share of each class 0..num_classes-1 among integer class indices."""
    c = np.asarray(classes).astype(np.int64).ravel()
    if len(c) == 0:
        raise ValueError("class_shares: no class indices")
    if c.min() < 0 or c.max() >= num_classes:
        raise ValueError(f"class_shares: class indices must lie in 0..{num_classes - 1}, got {c.min()}..{c.max()}")
    return np.bincount(c, minlength=num_classes) / len(c)


def class_coverage(generated, real, num_classes: int) -> dict:
    """The class-coverage numbers (module docstring) of predicted class indices of
    generated and of real images."""
    p, q = class_shares(generated, num_classes), class_shares(real, num_classes)
    n = len(np.asarray(generated).ravel())
    p_smooth = (p * n + 0.5) / (n + 0.5 * num_classes)
    present = q > 0
    kl = float((q[present] * np.log(q[present] / p_smooth[present])).sum())
    return dict(class_cov=float(0.5 * np.abs(p - q).sum()), class_kl=kl, class_min_share=float(p.min()),
                class_shares=[float(s) for s in p])
