"""Nearest neighbours of generated samples among training samples (what
memorization and the data-copying test search).

Variants:
  chunked  wgan_fast.metrics.nearest_neighbours: blocks of 1024 queries, one
           matrix product each (float32), top-k, the k found distances
           recomputed exactly in float64
  cdist    torch.cdist of all queries against all refs at once, then min
           (the whole distance matrix in memory)
  loop     one query at a time: (refs - q).norm(dim=1).min() (per-sample code)
Ratios are printed against cdist (chunked's baseline) and loop (cdist's);
the full-size time (10,000 among 60,000) is in docs/evaluation.md.
"""
import pytest
import torch

from bench_utils import DEVICES, sync
from wgan_fast.metrics import nearest_neighbours

QUERIES, REFS, DIM = 2000, 12000, 128  # the domain classifier's features


def _step(variant, q, r, device):
    if variant == "chunked":
        def step():
            out = nearest_neighbours(q, r, 1, device=device)
            sync(device)
            return out
    elif variant == "cdist":
        def step():
            out = torch.cdist(q, r).min(dim=1)
            sync(device)
            return out
    else:
        def step():
            out = torch.stack([(r - x).norm(dim=1).min() for x in q])
            sync(device)
            return out
    return step


@pytest.mark.parametrize("variant", ["chunked", "cdist", "loop"])
@pytest.mark.parametrize("device", DEVICES)
def test_nearest(benchmark, device, variant):
    g = torch.Generator().manual_seed(0)
    r = torch.randn(REFS, DIM, generator=g).to(device)
    q = torch.randn(QUERIES, DIM, generator=g).to(device)
    step = _step(variant, q, r, device)
    found = step()
    if variant == "chunked":  # the same neighbours as the stock way
        assert torch.equal(found[1][:, 0].cpu(), torch.cdist(q, r).argmin(dim=1).cpu())
    benchmark.group = f"{device} nearest neighbour {QUERIES} among {REFS} ({DIM}-d)"
    baseline = {"chunked": "cdist", "cdist": "loop", "loop": None}[variant]
    benchmark.extra_info.update(case=benchmark.group, variant=variant, baseline=baseline)
    if variant == "loop":  # seconds a round: a few rounds
        benchmark.pedantic(step, rounds=3, iterations=1)
    else:
        benchmark(step)
