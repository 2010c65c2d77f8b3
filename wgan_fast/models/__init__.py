"""Generators and critics: MLP, DCGAN (28/32/64/96 px), ResNet (32 px).

`build(kind, ...)` returns a (generator, critic) pair; every kind has a
conditional variant (`num_classes > 0`): a class embedding concatenated to z
in the generator, a projection discriminator in the critic.
"""
from __future__ import annotations

from torch import nn

from .dcgan import DCGANCritic, DCGANGenerator
from .layers import CRITIC_NORMS, critic_norm
from .mlp import MLPCritic, MLPGenerator
from .resnet import ResNetCritic, ResNetGenerator

KINDS = ("mlp", "dcgan", "resnet")


def build(kind: str, *, resolution: int, channels: int, z_dim: int, num_classes: int = 0,
          critic_norm: str = "none", g_base: int | None = None, d_base: int | None = None):
    """(generator, critic) of the given kind."""
    if kind == "mlp":
        shape = (channels, resolution, resolution)
        return (MLPGenerator(shape, z_dim=z_dim, num_classes=num_classes),
                MLPCritic(shape, num_classes=num_classes, norm=critic_norm))
    if kind == "dcgan":
        return (DCGANGenerator(resolution, channels, z_dim, base=g_base or 64, num_classes=num_classes),
                DCGANCritic(resolution, channels, base=d_base or 64, num_classes=num_classes, norm=critic_norm))
    if kind == "resnet":
        return (ResNetGenerator(resolution, channels, z_dim, base=g_base or 128, num_classes=num_classes),
                ResNetCritic(resolution, channels, base=d_base or 128, num_classes=num_classes, norm=critic_norm))
    raise ValueError(f"model kind must be one of {KINDS}, got {kind!r}")


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


__all__ = ["KINDS", "CRITIC_NORMS", "build", "critic_norm", "has_batchnorm", "MLPGenerator", "MLPCritic",
           "DCGANGenerator", "DCGANCritic", "ResNetGenerator", "ResNetCritic"]
