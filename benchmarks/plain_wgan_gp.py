"""WGAN-GP on Fashion-MNIST 28 px written as plain eager PyTorch: the baseline
recipes of the time-to-quality benchmark (time_to_quality.py).

The same DCGAN-28 pair as wgan_fast's default preset (width b = the recipe's base), in torch.nn layers:
  G: z(128) -> ConvT(2b, 7, 1, 0) BN ReLU -> ConvT(b, 4, 2, 1) BN ReLU -> ConvT(1, 4, 2, 1) tanh
  D: Conv(b, 4, 2, 1) LReLU(0.2) -> Conv(2b, 4, 2, 1) LReLU(0.2) -> Conv(1, 7, 1, 0)
and the penalty as public WGAN-GP code writes it (alpha * real + (1 - alpha) *
fake, autograd.grad, ((|grad| - 1) ** 2).mean() * 10), every lazy_reg-th
critic step with the weight times lazy_reg (lazy_reg 1: every step).

Recipes:
  plain  wgan_fast's default recipe (presets.py _FASHION): base 32, batch 32,
         two critic steps per generator step, Adam (0, 0.99), lr 1.4e-3 critic /
         5e-4 generator, the penalty every 4th critic step (x4), EMA 0.995
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
    base: int = 64
    batch: int = 64
    lazy_reg: int = 1


RECIPES = {
    "plain": Recipe(n_critic=2, lr_d=1.4e-3, lr_g=5e-4, betas=(0.0, 0.99), ema=0.995, base=32, batch=32, lazy_reg=4),
    "stock": Recipe(n_critic=5, lr_d=1e-4, lr_g=1e-4, betas=(0.5, 0.9), ema=0.0),
}
Z_DIM, GP_WEIGHT = 128, 10.0


def generator(b: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (Z_DIM, 1, 1)),
        nn.ConvTranspose2d(Z_DIM, 2 * b, 7, 1, 0, bias=False), nn.BatchNorm2d(2 * b), nn.ReLU(True),
        nn.ConvTranspose2d(2 * b, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True),
        nn.ConvTranspose2d(b, 1, 4, 2, 1), nn.Tanh())


def critic(b: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, b, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(b, 2 * b, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * b, 1, 7, 1, 0), nn.Flatten(0))


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
        self.G, self.D = generator(recipe.base), critic(recipe.base)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if recipe.ema else None
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=recipe.lr_g, betas=recipe.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=recipe.lr_d, betas=recipe.betas)
        self.steps = self.critic_steps = 0

    def _batch(self):
        return self.images[torch.randint(len(self.images), (self.r.batch,))]

    def step(self) -> None:
        for _ in range(self.r.n_critic):
            real = self._batch()
            with torch.no_grad():
                fake = self.G(torch.randn(self.r.batch, Z_DIM))
            loss_d = self.D(fake).mean() - self.D(real).mean()
            if self.critic_steps % self.r.lazy_reg == 0:
                loss_d = loss_d + GP_WEIGHT * self.r.lazy_reg * gradient_penalty(self.D, real, fake)
            self.critic_steps += 1
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        loss_g = -self.D(self.G(torch.randn(self.r.batch, Z_DIM))).mean()
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
