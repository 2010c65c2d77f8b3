"""2-D toy distributions (8 gaussians, two moons, S-curve) as endless streams."""
from __future__ import annotations

import math

import torch

TOYS = ("toy-8gaussians", "toy-moons", "toy-scurve")


def sample(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """n points of the named distribution, scaled to roughly [-2, 2]^2."""
    if name == "toy-8gaussians":
        k = torch.randint(0, 8, (n,), generator=generator)
        angle = k.float() * (2 * math.pi / 8)
        centers = torch.stack([angle.cos(), angle.sin()], 1) * 2.0
        return centers + 0.02 ** 0.5 * torch.randn(n, 2, generator=generator)
    if name == "toy-moons":
        t = torch.rand(n, generator=generator) * math.pi
        upper = torch.rand(n, generator=generator) < 0.5
        x = torch.where(upper, t.cos(), 1 - t.cos())
        y = torch.where(upper, t.sin(), 0.5 - t.sin())
        pts = torch.stack([x - 0.5, y - 0.25], 1) * 1.5
        return pts + 0.05 * torch.randn(n, 2, generator=generator)
    if name == "toy-scurve":
        t = 3 * math.pi * (torch.rand(n, generator=generator) - 0.5)
        pts = torch.stack([t.sin(), torch.sign(t) * (t.cos() - 1)], 1)
        return pts + 0.05 * torch.randn(n, 2, generator=generator)
    raise ValueError(f"unknown toy dataset {name!r}; known: {TOYS}")


def mode_of(points: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of the 8 gaussian centres for each point."""
    angle = torch.arange(8, dtype=points.dtype) * (2 * math.pi / 8)
    centers = torch.stack([angle.cos(), angle.sin()], 1) * 2.0
    return torch.cdist(points.cpu(), centers).argmin(1)


class ToyStream:
    """Endless seeded batches; batch k of rank r depends only on (seed, r, k)."""

    def __init__(self, name, batch_size, device, seed=0, rank=0, step=0):
        self.name, self.batch_size, self.device = name, batch_size, torch.device(device)
        self.seed, self.rank, self.step = seed, rank, step

    def next(self):
        g = torch.Generator().manual_seed(hash((self.seed, self.rank, self.step)) & 0x7FFFFFFF)
        self.step += 1
        return sample(self.name, self.batch_size, g).to(self.device), None

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = int(state["step"])
