"""Fully connected generator and critic (the MNIST reports' models)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .layers import ACTIVATIONS, ClassEmbedding, ClassHead, Projection, activation_layer, critic_outputs


class MLPGenerator(nn.Module):
    """z -> four Linear layers with LeakyReLU(0.2) (or `activation`) -> tanh, reshaped to an image.

    `tanh=False` leaves the output unbounded (2-D toy data is not in [-1, 1]).
    `activation` is one of ACTIVATIONS (`slope`: leaky_relu's), as in every model.
    """

    ACTIVATIONS = ACTIVATIONS
    DEFAULT_ACTIVATION = "leaky_relu"

    def __init__(self, out_shape=(1, 28, 28), z_dim=100, hidden=(256, 512, 1024), num_classes=0, embed_dim=50,
                 tanh=True, activation="leaky_relu", slope=0.2):
        super().__init__()
        self.out_shape, self.z_dim, self.num_classes = tuple(out_shape), z_dim, num_classes
        self.cond = ClassEmbedding(num_classes, embed_dim) if num_classes else None
        dims = [z_dim + (embed_dim if num_classes else 0), *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), activation_layer(activation, slope)]
        layers += [nn.Linear(dims[-1], math.prod(self.out_shape))] + ([nn.Tanh()] if tanh else [])
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond is not None:
            z = self.cond(z, labels)
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPCritic(nn.Module):
    """Image -> four Linear layers with LeakyReLU(0.2) (or `activation`) -> one score (no sigmoid)."""

    NORMS = ("none", "layer")
    RESOLUTIONS = None  # any
    ACTIVATIONS = ACTIVATIONS
    DEFAULT_ACTIVATION = "leaky_relu"

    def __init__(self, in_shape=(1, 28, 28), hidden=(1024, 512, 256), num_classes=0, norm="none",
                 activation="leaky_relu", slope=0.2, class_head=False):
        super().__init__()
        if norm not in self.NORMS:
            raise ValueError(f"MLP critic norm must be 'none' or 'layer', got {norm!r}")
        self.in_shape, self.num_classes = tuple(in_shape), num_classes
        dims = [math.prod(self.in_shape), *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b)] + ([nn.LayerNorm(b)] if norm == "layer" else []) + \
                [activation_layer(activation, slope, critic=True)]
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], 1)
        self.proj = Projection(num_classes, dims[-1]) if num_classes else None
        self.class_head = ClassHead(num_classes, dims[-1]) if num_classes and class_head else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, return_logits: bool = False):
        h = self.features(x.flatten(1))
        return critic_outputs(self, self.out(h).squeeze(1), h, labels, return_logits)
