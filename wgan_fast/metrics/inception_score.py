"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)),
computed on `splits` consecutive chunks of the samples, mean and std."""
from __future__ import annotations

import numpy as np
import torch

from .checks import as_features


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over splits of the Inception Score of class logits (N, classes)."""
    logits = torch.from_numpy(as_features(logits, "logits"))
    if not 1 <= splits <= len(logits):
        raise ValueError(f"inception_score: splits must be in [1, {len(logits)}] (one sample per split at least), "
                         f"got {splits}")
    log_p = logits.log_softmax(dim=1)
    scores = []
    n = len(logits)
    for i in range(splits):  # chunk boundaries i * n // splits, as the original code
        lp = log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = lp.exp().mean(0).log()
        kl = (lp.exp() * (lp - log_marginal)).sum(1).mean()
        scores.append(kl.exp().item())
    return float(np.mean(scores)), float(np.std(scores))
