"""Generators and critics: MLP, DCGAN (28/32/64/96 px), ResNet (32 px).

`build(kind, ...)` returns a (generator, critic) pair; every kind has a
conditional variant (`num_classes > 0`): a class embedding concatenated to z
in the generator, a projection discriminator in the critic (plus, with
`class_head`, an auxiliary classifier: `D(x, y, return_logits=True)`), and takes its
hidden activation (ACTIVATIONS; "auto" is the class's DEFAULT_ACTIVATION).
`from_config(cfg)` builds a run's pair (2-D toys included) and
`check_config(cfg)` says, before anything runs, whether the model can be built
as configured: each critic class states the resolutions and normalisations it
accepts, and each class the activations.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data import TOY_DATASETS
from ..errors import ConfigError
from .dcgan import DCGANCritic, DCGANGenerator
from .layers import ACTIVATIONS, CRITIC_NORMS, critic_norm
from .mlp import MLPCritic, MLPGenerator
from .resnet import ResNetCritic, ResNetGenerator
from .sampling import sample_images

PAIRS = {"mlp": (MLPGenerator, MLPCritic), "dcgan": (DCGANGenerator, DCGANCritic),
         "resnet": (ResNetGenerator, ResNetCritic)}
KINDS = tuple(PAIRS)


def build(kind: str, *, resolution: int, channels: int, z_dim: int, num_classes: int = 0,
          critic_norm: str = "none", g_base: int | None = None, d_base: int | None = None,
          g_activation: str = "auto", d_activation: str = "auto", activation_slope: float = 0.2,
          class_head: bool = False):
    """(generator, critic) of the given kind; class_head: the conditional critic's auxiliary classifier."""
    if kind not in PAIRS:
        raise ValueError(f"model kind must be one of {KINDS}, got {kind!r}")
    G_cls, D_cls = PAIRS[kind]
    g_act = dict(activation=resolve_activation(G_cls, g_activation), slope=activation_slope)
    d_act = dict(activation=resolve_activation(D_cls, d_activation), slope=activation_slope)
    if kind == "mlp":
        shape = (channels, resolution, resolution)
        return (MLPGenerator(shape, z_dim=z_dim, num_classes=num_classes, **g_act),
                MLPCritic(shape, num_classes=num_classes, norm=critic_norm, class_head=class_head, **d_act))
    base_g, base_d = (g_base or 64, d_base or 64) if kind == "dcgan" else (g_base or 128, d_base or 128)
    return (G_cls(resolution, channels, z_dim, base=base_g, num_classes=num_classes, **g_act),
            D_cls(resolution, channels, base=base_d, num_classes=num_classes, norm=critic_norm, class_head=class_head,
                  **d_act))


def resolve_activation(cls, name: str) -> str:
    """The activation a model class uses for the config value `name` ("auto": its own)."""
    return cls.DEFAULT_ACTIVATION if name == "auto" else name


def check_config(cfg: dict) -> None:
    """Raise ConfigError naming the key when the run's model cannot be built as configured."""
    kind = cfg["model"]
    if kind not in PAIRS:
        raise ConfigError(f"model: must be one of {', '.join(KINDS)}, got {kind!r}")
    critic = PAIRS[kind][1]
    if cfg["dataset"] in TOY_DATASETS:
        if kind != "mlp":
            raise ConfigError(f"model: the 2-D toy datasets use the mlp model, got {kind!r}")
        if cfg["conditional"]:
            raise ConfigError("conditional: the 2-D toy datasets have no class labels")
    elif critic.RESOLUTIONS is not None and cfg["resolution"] not in critic.RESOLUTIONS:
        raise ConfigError(f"resolution: the {kind} model makes {', '.join(map(str, critic.RESOLUTIONS))} px, "
                          f"got {cfg['resolution']}")
    if cfg["critic_norm"] not in critic.NORMS:
        raise ConfigError(f"critic_norm: the {kind} critic takes {', '.join(critic.NORMS)}, "
                          f"got {cfg['critic_norm']!r}")
    for key, cls, role in (("g_activation", PAIRS[kind][0], "generator"), ("d_activation", critic, "critic")):
        if cfg[key] != "auto" and cfg[key] not in cls.ACTIVATIONS:
            raise ConfigError(f"{key}: the {kind} {role} takes auto, {', '.join(cls.ACTIVATIONS)}, "
                              f"got {cfg[key]!r}")


def from_config(cfg: dict, device="cpu"):
    """The run's (generator, critic) on `device`: 2-D toys get small MLPs on
    points, wgan-sn critics spectral norm on every layer, CUDA channels_last."""
    device = torch.device(device)
    toy = cfg["dataset"] in TOY_DATASETS
    num_classes = cfg["num_classes"] if cfg["conditional"] else 0
    # a checkpoint's config from before the activation keys counts as their defaults
    acts = {k: cfg.get(k, d) for k, d in (("g_activation", "auto"), ("d_activation", "auto"),
                                          ("activation_slope", 0.2))}
    if toy:
        G = MLPGenerator((2,), z_dim=cfg["z_dim"], hidden=(cfg["g_base"],) * 3, num_classes=num_classes, tanh=False,
                         activation=resolve_activation(MLPGenerator, acts["g_activation"]),
                         slope=acts["activation_slope"])
        D = MLPCritic((2,), hidden=(cfg["d_base"],) * 3, num_classes=num_classes,
                      activation=resolve_activation(MLPCritic, acts["d_activation"]), slope=acts["activation_slope"])
    else:
        G, D = build(cfg["model"], resolution=cfg["resolution"], channels=cfg["channels"], z_dim=cfg["z_dim"],
                     num_classes=num_classes, critic_norm=cfg["critic_norm"], g_base=cfg["g_base"],
                     d_base=cfg["d_base"], class_head=cfg.get("ac_weight", 0.0) > 0, **acts)
    if cfg["algorithm"] == "wgan-sn":
        from .. import nn as wnn  # noqa: PLC0415

        for m in D.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                # only power_iteration_ iterates: every forward of a critic step shares one sigma
                wnn.spectral_norm(m, n_power_iterations=cfg["sn_iterations"], iterate_on_forward=False)
    G, D = G.to(device), D.to(device)
    if device.type == "cuda" and not toy and cfg["model"] != "mlp":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return G, D


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


__all__ = ["KINDS", "PAIRS", "ACTIVATIONS", "CRITIC_NORMS", "build", "resolve_activation", "check_config",
           "from_config", "sample_images", "critic_norm", "has_batchnorm", "MLPGenerator", "MLPCritic",
           "DCGANGenerator", "DCGANCritic", "ResNetGenerator", "ResNetCritic"]
