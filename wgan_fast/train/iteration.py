"""One training iteration: n_critic critic steps, one generator step and the
EMA update, run eagerly or captured once as a CUDA graph (..graphs).

Everything that varies between iterations is a tensor of IterationInputs, so
a captured iteration replays with this step's batches, noise and EMA weight.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .. import graphs
from ..step import critic_step, generator_step


class IterationInputs(NamedTuple):
    reals: tuple                 # n_critic real batches
    labels: tuple                # their labels (None each when unconditional)
    zs: tuple                    # n_critic latent batches for the critic steps
    alphas: tuple                # n_critic penalty interpolation weights
    z_g: torch.Tensor            # the generator step's latents
    y_g: Optional[torch.Tensor]  # and labels

    def flat(self) -> list:
        return [*self.reals, *self.labels, *self.zs, *self.alphas, self.z_g, self.y_g]

    @classmethod
    def unflat(cls, flat, n_critic: int) -> "IterationInputs":
        parts = [tuple(flat[k * n_critic:(k + 1) * n_critic]) for k in range(4)]
        return cls(*parts, flat[4 * n_critic], flat[4 * n_critic + 1])


def ema_weight(decay, step):
    """How far the EMA moves towards the model at `step`. Warm-up: early on the
    average follows the model closely, so short runs (a CPU's ten minutes)
    still sample from a trained generator."""
    return 1 - min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema, model, weight):
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, weight)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


class NoiseDraws:
    """Latents, labels and alphas of this rank: drawn for the global batch
    (world x B) and sliced, so N ranks see one process's randomness."""

    def __init__(self, cfg, state):
        B, self.world = cfg["batch_size"], state.world
        self.mine = slice(state.rank * B, (state.rank + 1) * B)
        self.B, self.z_dim, self.gen, self.device = B, cfg["z_dim"], state.noise_gen, state.device
        self.num_classes = cfg["num_classes"] if cfg["conditional"] else 0

    def __call__(self):
        n, g, d = self.world * self.B, self.gen, self.device
        z = torch.randn(n, self.z_dim, device=d, generator=g)[self.mine]
        y = torch.randint(0, self.num_classes, (n,), device=d, generator=g)[self.mine] if self.num_classes else None
        alpha = torch.rand(n, device=d, generator=g)[self.mine]
        return z, y, alpha


def draw_inputs(state, noise: NoiseDraws, n_critic: int) -> IterationInputs:
    batches = [state.data.next() for _ in range(n_critic)]
    reals = tuple(x for x, _ in batches)
    labels = tuple(y if noise.num_classes else None for _, y in batches)
    critic_noise = [noise() for _ in range(n_critic)]  # (the critic steps' fakes use the real labels)
    z_g, y_g, _ = noise()
    return IterationInputs(reals, labels, tuple(z for z, _, _ in critic_noise), tuple(a for _, _, a in critic_noise),
                           z_g, y_g)


class Iteration:
    """Callable on IterationInputs.flat(); `phase` is the number of critic steps
    before this iteration modulo lazy_reg (always 0 when graphed)."""

    def __init__(self, cfg, parts, G_ema, ema_w):
        self.cfg, self.parts, self.G_ema, self.ema_w, self.phase = cfg, parts, G_ema, ema_w, 0
        self.sn = cfg["algorithm"] == "wgan-sn"

    def __call__(self, *flat):
        from .. import nn as wnn  # noqa: PLC0415

        x = IterationInputs.unflat(flat, self.cfg["n_critic"])
        for i in range(self.cfg["n_critic"]):
            if self.sn:
                wnn.power_iteration_(self.parts.D)  # one power iteration per critic step, shared by its forwards
            critic_step(self.parts, x.reals[i], x.labels[i], x.zs[i], x.alphas[i], critic_iter=self.phase + i)
        generator_step(self.parts, x.z_g, x.y_g)
        if self.cfg["ema"] > 0:
            ema_update(self.G_ema, self.parts.G, self.ema_w)


def runner(iteration: Iteration, no_graphs: str | None):
    """inputs -> None: eager, or captured once and replayed (CUDA graphs)."""
    if no_graphs:
        return lambda inputs: iteration(*inputs.flat())
    graphed = graphs.GraphedIteration(iteration)
    return lambda inputs: graphed(inputs.flat())
