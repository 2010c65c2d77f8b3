"""Small building blocks shared by the generators and critics."""
from __future__ import annotations

import torch
from torch import nn

from ..nn import penalty_layers as pl

CRITIC_NORMS = ("none", "layer", "instance", "batch")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh")


def activation_layer(name: str, slope: float = 0.2, *, critic: bool = False, inplace: bool = False) -> nn.Module:
    """The hidden-layer activation `name` (`slope`: leaky_relu's negative slope).

    A critic's come from wgan_fast.nn.penalty_layers (the penalty's cheap,
    exact double backward); a generator's are torch's own, in place where
    `inplace` and torch's module can be (after a BatchNorm, say).
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    if critic:
        return {"relu": lambda: pl.LeakyReLU(0.0), "leaky_relu": lambda: pl.LeakyReLU(slope), "elu": pl.ELU,
                "gelu": pl.GELU, "silu": pl.SiLU, "tanh": pl.Tanh}[name]()
    return {"relu": lambda: nn.ReLU(inplace), "leaky_relu": lambda: nn.LeakyReLU(slope, inplace),
            "elu": lambda: nn.ELU(inplace=inplace), "gelu": nn.GELU, "silu": lambda: nn.SiLU(inplace),
            "tanh": nn.Tanh}[name]()


def critic_norm(kind: str, channels: int) -> nn.Module:
    """Per-sample normalisation for a critic.

    "layer" normalises over (C, H, W) of each sample (GroupNorm with one group),
    "instance" over (H, W) per channel; both keep samples independent, which the
    per-sample gradient penalty needs. "batch" mixes samples and is only allowed
    without a penalty (the trainer's config validation refuses it otherwise).
    """
    if kind == "none":
        return nn.Identity()
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"critic norm must be one of {CRITIC_NORMS}, got {kind!r}")


class ClassEmbedding(nn.Module):
    """Generator conditioning: the class embedding is concatenated to z."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError("this generator is conditional: pass labels (LongTensor of shape (B,))")
        check_labels(labels, self.num_classes, z.shape[0])
        return torch.cat([z, self.embed(labels)], dim=1)


class Projection(nn.Module):
    """Critic conditioning by projection (Miyato & Koyama 2018):
    D(x, y) = psi(h) + <embed(y), h>."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError("this critic is conditional: pass labels (LongTensor of shape (B,))")
        check_labels(labels, self.num_classes, h.shape[0])
        return (self.embed(labels) * h).sum(1)


class ClassHead(nn.Module):
    """The critic's auxiliary classifier (AC-GAN, Odena et al. 2017; the conditional WGAN-GP of Gulrajani et
    al. 2017): class logits from the pooled features the projection reads. Trained on real images only
    (config ac_weight); the generator is pushed towards the class it was asked for (ac_weight_g)."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.linear = nn.Linear(features, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)


def critic_outputs(critic: nn.Module, out: torch.Tensor, h: torch.Tensor, labels, return_logits: bool):
    """The critic's score plus its projection term; with return_logits, (score, class logits) too."""
    if critic.proj is not None:
        out = out + critic.proj(h, labels)
    if not return_logits:
        return out
    if critic.class_head is None:
        raise ValueError("this critic has no class head: build it with class_head=True (config ac_weight > 0)")
    return out, critic.class_head(h)


def check_labels(labels: torch.Tensor, num_classes: int, batch: int) -> None:
    if labels.dtype not in (torch.int64, torch.int32) or labels.shape != (batch,):
        raise ValueError(f"labels must be an integer tensor of shape ({batch},), got {labels.dtype} {tuple(labels.shape)}")
