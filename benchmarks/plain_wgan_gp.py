"""WGAN-GP on Fashion-MNIST 28 px written as plain eager PyTorch: the baseline
recipes of the time-to-quality benchmark (time_to_quality.py).

The same DCGAN-28 pair as wgan_fast's default preset, in torch.nn layers:
  G: z(128) -> ConvT(128, 7, 1, 0) BN ReLU -> ConvT(64, 4, 2, 1) BN ReLU -> ConvT(1, 4, 2, 1) tanh
  D: Conv(64, 4, 2, 1) LReLU(0.2) -> Conv(128, 4, 2, 1) LReLU(0.2) -> Conv(1, 7, 1, 0)
and the penalty as public WGAN-GP code writes it (alpha * real + (1 - alpha) *
fake, autograd.grad, ((|grad| - 1) ** 2).mean() * 10).

Recipes:
  plain  wgan_fast's default recipe: one critic step per generator step, Adam
         (0, 0.9), lr 4e-4 critic / 1e-4 generator, EMA 0.999 of the generator
  stock  Gulrajani et al.'s: five critic steps, Adam (0.5, 0.9), lr 1e-4 both,
         no EMA
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Recipe:
    n_critic: int
    lr_d: float
    lr_g: float
    betas: tuple
    ema: float


RECIPES = {
    "plain": Recipe(n_critic=1, lr_d=4e-4, lr_g=1e-4, betas=(0.0, 0.9), ema=0.999),
    "stock": Recipe(n_critic=5, lr_d=1e-4, lr_g=1e-4, betas=(0.5, 0.9), ema=0.0),
}
Z_DIM, BATCH, GP_WEIGHT = 128, 64, 10.0


def generator() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (Z_DIM, 1, 1)),
        nn.ConvTranspose2d(Z_DIM, 128, 7, 1, 0, bias=False), nn.BatchNorm2d(128), nn.ReLU(True),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh())


def critic() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7, 1, 0), nn.Flatten(0))


def gradient_penalty(D, real, fake):
    alpha = torch.rand(real.shape[0], 1, 1, 1)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class PlainTrainer:
    """One generator step at a time (`step()`); `sampler()` is the network to sample from."""

    def __init__(self, recipe: Recipe, images: torch.Tensor, seed: int = 0):
        torch.manual_seed(seed)
        self.r, self.images = recipe, images  # images: float (N, 1, 28, 28) in [-1, 1]
        self.G, self.D = generator(), critic()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if recipe.ema else None
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=recipe.lr_g, betas=recipe.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=recipe.lr_d, betas=recipe.betas)
        self.steps = 0

    def _batch(self):
        return self.images[torch.randint(len(self.images), (BATCH,))]

    def step(self) -> None:
        for _ in range(self.r.n_critic):
            real = self._batch()
            with torch.no_grad():
                fake = self.G(torch.randn(BATCH, Z_DIM))
            loss_d = self.D(fake).mean() - self.D(real).mean() + GP_WEIGHT * gradient_penalty(self.D, real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        loss_g = -self.D(self.G(torch.randn(BATCH, Z_DIM))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if self.G_ema is not None:
            with torch.no_grad():
                for e, p in zip(self.G_ema.state_dict().values(), self.G.state_dict().values()):
                    e.copy_(e * self.r.ema + p * (1 - self.r.ema) if e.is_floating_point() else p)
        self.steps += 1

    def sampler(self) -> nn.Module:
        return self.G_ema if self.G_ema is not None else self.G.eval()

    def resume_training(self) -> None:
        self.G.train()
