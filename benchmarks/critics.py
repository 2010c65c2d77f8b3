"""The critics the Lipschitz benchmarks run on.

dcgan64: the DCGAN critic for 64x64 images (Radford et al.), ~2.8M parameters
in 10 tensors. resnet_cifar: the ResNet CIFAR-10 critic of Gulrajani et al.
(WGAN-GP), 128 channels, 3 residual blocks + linear.
"""
from torch import nn


def dcgan64():
    return nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 256, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(256, 512, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(512, 1, 4, 1, 0),
    )


class _Block(nn.Module):
    def __init__(self, cin, cout, down):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if (down or cin != cout) else nn.Identity()
        self.pool = nn.AvgPool2d(2) if down else nn.Identity()

    def forward(self, x):
        h = self.pool(self.conv2(nn.functional.relu(self.conv1(nn.functional.relu(x)))))
        return h + self.pool(self.shortcut(x))


class ResNetCifarCritic(nn.Module):
    def __init__(self, ch=128):
        super().__init__()
        self.blocks = nn.Sequential(_Block(3, ch, True), _Block(ch, ch, True), _Block(ch, ch, False))
        self.linear = nn.Linear(ch, 1)

    def forward(self, x):
        return self.linear(nn.functional.relu(self.blocks(x)).mean((2, 3)))


CRITICS = {"dcgan64": dcgan64, "resnet_cifar": ResNetCifarCritic}
