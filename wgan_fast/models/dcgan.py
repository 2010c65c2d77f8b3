"""DCGAN-style generator and critic for 28, 32, 64 and 96 px.

The 64 px pair with base=64, z_dim=128 is exactly the benchmark's DCGAN-64:
  G: z -> ConvT(512,4,1,0) BN ReLU -> ConvT(256,4,2,1) BN ReLU -> ConvT(128,4,2,1)
     BN ReLU -> ConvT(64,4,2,1) BN ReLU -> ConvT(3,4,2,1) tanh
  D: Conv(64,4,2,1) LReLU(0.2) -> Conv(128,4,2,1) LReLU -> Conv(256,4,2,1) LReLU
     -> Conv(512,4,2,1) LReLU -> Conv(1,4,1,0)        (norm="none")
Other resolutions start from a 7x7 (28 px), 4x4 (32 px) or 6x6 (96 px) map.
`activation` (one of ACTIVATIONS, `slope` for leaky_relu) replaces G's ReLU
or D's LReLU.
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn.penalty_layers import Conv2d
from .layers import (ACTIVATIONS, CRITIC_NORMS, ClassEmbedding, ClassHead, Projection, activation_layer, critic_norm,
                     critic_outputs)

# resolution -> (first feature map size, number of stride-2 up/down layers)
GEOMETRY = {28: (7, 2), 32: (4, 3), 64: (4, 4), 96: (6, 4)}


def geometry(resolution: int):
    if resolution not in GEOMETRY:
        raise ValueError(f"DCGAN models support resolutions {sorted(GEOMETRY)}, got {resolution}")
    return GEOMETRY[resolution]


class DCGANGenerator(nn.Module):
    ACTIVATIONS = ACTIVATIONS
    DEFAULT_ACTIVATION = "relu"

    def __init__(self, resolution=64, channels=3, z_dim=128, base=64, num_classes=0, embed_dim=None,
                 activation="relu", slope=0.2):
        super().__init__()
        size0, n_up = geometry(resolution)
        self.z_dim, self.num_classes = z_dim, num_classes
        embed_dim = embed_dim or z_dim
        self.cond = ClassEmbedding(num_classes, embed_dim) if num_classes else None
        in_dim = z_dim + (embed_dim if num_classes else 0)
        ch = base * 2 ** (n_up - 1)
        def act():
            return activation_layer(activation, slope, inplace=True)  # in place after BatchNorm

        layers = [nn.ConvTranspose2d(in_dim, ch, size0, 1, 0, bias=False), nn.BatchNorm2d(ch), act()]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), act()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond is not None:
            z = self.cond(z, labels)
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANCritic(nn.Module):
    NORMS = CRITIC_NORMS
    RESOLUTIONS = tuple(sorted(GEOMETRY))
    ACTIVATIONS = ACTIVATIONS
    DEFAULT_ACTIVATION = "leaky_relu"

    def __init__(self, resolution=64, channels=3, base=64, num_classes=0, norm="none", activation="leaky_relu",
                 slope=0.2, class_head=False):
        super().__init__()
        size0, n_down = geometry(resolution)
        self.num_classes = num_classes
        # the critic's layers have the cheap double backward of the penalty (wgan_fast.nn.penalty_layers)
        layers = [Conv2d(channels, base, 4, 2, 1), activation_layer(activation, slope, critic=True)]
        ch = base
        for _ in range(n_down - 1):
            layers += [Conv2d(ch, ch * 2, 4, 2, 1), critic_norm(norm, ch * 2),
                       activation_layer(activation, slope, critic=True)]
            ch *= 2
        self.features = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.out = Conv2d(ch, 1, size0, 1, 0)
        self.proj = Projection(num_classes, ch) if num_classes else None
        self.class_head = ClassHead(num_classes, ch) if num_classes and class_head else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, return_logits: bool = False):
        h = self.features(x)
        out = self.out(h).flatten(1).squeeze(1)
        if self.proj is None and not return_logits:
            return out  # unconditional: no pooled features needed
        return critic_outputs(self, out, h.sum((2, 3)), labels, return_logits)
