"""The ResNet generator and critic of Gulrajani et al. (2017) for 32 px (CIFAR-10).

G: z(128) -> Linear(4*4*128) -> 3 x ResBlockUp(128) -> BN ReLU Conv3x3(3) -> tanh
D: OptimizedBlock(3->128, down) -> ResBlockDown(128) -> ResBlock(128) x 2
   -> ReLU -> sum over space -> Linear(128 -> 1)
`activation` (one of ACTIVATIONS, `slope` for leaky_relu) replaces every ReLU
of G or of D.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..nn.penalty_layers import Conv2d
from .layers import (ACTIVATIONS, CRITIC_NORMS, ClassEmbedding, ClassHead, Projection, activation_layer, critic_norm,
                     critic_outputs)


class ResBlockUp(nn.Module):
    def __init__(self, ch: int, act: nn.Module):
        super().__init__()
        self.act = act  # stateless: one module for both places
        self.bn1, self.bn2 = nn.BatchNorm2d(ch), nn.BatchNorm2d(ch)
        self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        h = F.interpolate(self.act(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(self.act(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlockDown(nn.Module):
    """Critic block; `first` is Gulrajani's optimised first block (no activation on the image)."""

    def __init__(self, cin: int, cout: int, down: bool, norm: str, act: nn.Module, first: bool = False):
        super().__init__()
        self.act = act  # a critic layer of wgan_fast.nn.penalty_layers; stateless: one module for both places
        self.down, self.first = down, first
        self.conv1, self.conv2 = Conv2d(cin, cout, 3, 1, 1), Conv2d(cout, cout, 3, 1, 1)
        self.norm1 = nn.Identity() if first else critic_norm(norm, cin)
        self.norm2 = critic_norm(norm, cout)
        self.shortcut = Conv2d(cin, cout, 1) if (cin != cout or down) else None

    def forward(self, x):
        h = x if self.first else self.act(self.norm1(x))
        h = self.conv2(self.act(self.norm2(self.conv1(h))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.shortcut is not None:
            s = self.shortcut(F.avg_pool2d(s, 2) if (self.first and self.down) else s)
            if self.down and not self.first:
                s = F.avg_pool2d(s, 2)
        return h + s


class ResNetGenerator(nn.Module):
    ACTIVATIONS = ACTIVATIONS
    DEFAULT_ACTIVATION = "relu"

    def __init__(self, resolution=32, channels=3, z_dim=128, base=128, num_classes=0, embed_dim=None,
                 activation="relu", slope=0.2):
        super().__init__()
        if resolution != 32:
            raise ValueError(f"the ResNet models are for 32 px, got resolution {resolution}")
        self.z_dim, self.num_classes, self.base = z_dim, num_classes, base
        embed_dim = embed_dim or z_dim
        self.cond = ClassEmbedding(num_classes, embed_dim) if num_classes else None
        self.fc = nn.Linear(z_dim + (embed_dim if num_classes else 0), 4 * 4 * base)
        self.blocks = nn.Sequential(*(ResBlockUp(base, activation_layer(activation, slope)) for _ in range(3)))
        self.act = activation_layer(activation, slope)
        self.bn = nn.BatchNorm2d(base)
        self.out = nn.Conv2d(base, channels, 3, 1, 1)

    def forward(self, z, labels=None):
        if self.cond is not None:
            z = self.cond(z, labels)
        h = self.blocks(self.fc(z).view(z.shape[0], self.base, 4, 4))
        return torch.tanh(self.out(self.act(self.bn(h))))


class ResNetCritic(nn.Module):
    NORMS = CRITIC_NORMS
    RESOLUTIONS = (32,)
    ACTIVATIONS = ACTIVATIONS
    DEFAULT_ACTIVATION = "relu"

    def __init__(self, resolution=32, channels=3, base=128, num_classes=0, norm="none", activation="relu",
                 slope=0.2, class_head=False):
        super().__init__()
        if resolution != 32:
            raise ValueError(f"the ResNet models are for 32 px, got resolution {resolution}")
        self.num_classes = num_classes
        def act():
            return activation_layer(activation, slope, critic=True)

        self.blocks = nn.Sequential(
            ResBlockDown(channels, base, down=True, norm=norm, act=act(), first=True),
            ResBlockDown(base, base, down=True, norm=norm, act=act()),
            ResBlockDown(base, base, down=False, norm=norm, act=act()),
            ResBlockDown(base, base, down=False, norm=norm, act=act()),
        )
        self.act = act()
        self.out = nn.Linear(base, 1)
        self.proj = Projection(num_classes, base) if num_classes else None
        self.class_head = ClassHead(num_classes, base) if num_classes and class_head else None

    def forward(self, x, labels=None, return_logits: bool = False):
        h = self.act(self.blocks(x)).sum((2, 3))
        return critic_outputs(self, self.out(h).squeeze(1), h, labels, return_logits)
