"""Named configurations reproducing the reports this project grew from.

Each preset is one line of help (shown by `--help`) and a plain dict of config
keys; the algorithm's defaults from the
literature (config.ALGORITHM_DEFAULTS) apply underneath.
"""

_MNIST_MLP = dict(dataset="mnist", model="mlp", resolution=28, channels=1, z_dim=100, batch_size=64, steps=30000)
_CIFAR = dict(dataset="cifar10", model="resnet", resolution=32, channels=3, z_dim=128, g_base=128, d_base=128,
              batch_size=64, steps=100000, lr_decay=True)

# chosen by the study preset cpu-default-search (30 TPE trials of 4 minutes on one core, classifier-feature
# FID; docs/results.md): narrow pairs (base 32), batch 32, two critic steps, high rates with beta2 0.99,
# the penalty every 4th critic step (x4), EMA 0.995. On CUDA this pattern (lazy_reg 4 over n_critic 2
# alternates between iterations) runs without CUDA graphs (graphs.unsupported_reason); GPU not measured yet.
_FASHION = dict(algorithm="wgan-gp", dataset="fashion-mnist", model="dcgan", resolution=28, channels=1,
                batch_size=32, n_critic=2, lr_d=1.4e-3, lr_g=5e-4, beta1=0.0, beta2=0.99, g_base=32, d_base=32,
                ema=0.995, lazy_reg=4, sample_every=500, log_every=50, ckpt_every=1000)

_TOY = dict(algorithm="wgan-gp", model="mlp", gp_weight=0.1, batch_size=256, steps=2000, z_dim=8, g_base=128,
            d_base=128, lr_g=1e-3, lr_d=1e-3, beta1=0.5, beta2=0.9, channels=1, resolution=1, ema=0.0,
            sample_every=250, log_every=50)


def _preset(help_line: str, **config) -> dict:
    return {"help": help_line, "config": config}


PRESETS = {
    # the flagship default: WGAN-GP with a DCGAN pair on Fashion-MNIST at its native
    # 28 px, chosen for quality per minute on the 2-core CPU (see _FASHION). Measured
    # results: docs/results.md. On a CPU it stops after 9.5 minutes; a GPU runs the whole schedule.
    "fashion-wgan-gp": _preset("the default: WGAN-GP, DCGAN-32 pair, Fashion-MNIST 28 px, study-tuned, 40k steps "
                               "(9.5 min on a CPU)",
                               **_FASHION, steps=40000, cpu_max_minutes=9.5),
    # the projection critic plus an auxiliary classifier (AC-GAN, weight 1 on real images and 1 on the
    # generator's): class accuracy 86.1-87.3% without it, 91.9-96.9% with it (three seeds, 5k steps; results.md)
    "fashion-cwgan-gp": _preset("conditional WGAN-GP on Fashion-MNIST 28 px (projection critic + auxiliary "
                                "classifier), 40k steps", **_FASHION, conditional=True, num_classes=10,
                                ac_weight=1.0, ac_weight_g=1.0, steps=40000),
    "mnist-mlp-gan": _preset("GAN (non-saturating BCE), MLP pair, MNIST 28 px, 30k steps", algorithm="gan", **_MNIST_MLP),
    "mnist-mlp-wgan-clip": _preset("WGAN with weight clipping, MLP pair, MNIST 28 px, RMSprop 5e-5",
                                   algorithm="wgan-clip", **_MNIST_MLP),
    "mnist-mlp-wgan-gp": _preset("WGAN-GP, MLP pair, MNIST 28 px", algorithm="wgan-gp", **_MNIST_MLP),
    "cifar10-gan": _preset("GAN, ResNet-32 pair, CIFAR-10, 100k steps with LR decay", algorithm="gan", **_CIFAR),
    "cifar10-wgan-clip": _preset("WGAN-clip, ResNet-32 pair, CIFAR-10", algorithm="wgan-clip", **_CIFAR),
    "cifar10-wgan-gp": _preset("WGAN-GP, ResNet-32 pair, CIFAR-10, Adam 2e-4 (0, 0.9), LR decay",
                               algorithm="wgan-gp", beta1=0.0, beta2=0.9, lr_g=2e-4, lr_d=2e-4, **_CIFAR),
    "cifar10-wgan-sn": _preset("WGAN with spectral norm, ResNet-32 pair, CIFAR-10, Adam 2e-4 (0, 0.9)",
                               algorithm="wgan-sn", beta1=0.0, beta2=0.9, lr_g=2e-4, lr_d=2e-4, **_CIFAR),
    "celeba64-wgan-gp": _preset("WGAN-GP, DCGAN-64 pair, CelebA 64x64 RGB (--data-dir), 100k steps",
                                algorithm="wgan-gp", dataset="celeba", model="dcgan", resolution=64, channels=3,
                                batch_size=64, steps=100000),
    "stl10-96-wgan-gp": _preset("WGAN-GP, DCGAN-96 pair, STL-10 96x96 RGB (--data-dir), 100k steps",
                                algorithm="wgan-gp", dataset="stl10", model="dcgan", resolution=96, channels=3,
                                batch_size=64, steps=100000),
    "animals10-wgan-gp": _preset("WGAN-GP, DCGAN-64 pair, any image folder 64x64 RGB (--data-dir), flips",
                                 algorithm="wgan-gp", dataset="folder", model="dcgan", resolution=64, channels=3,
                                 batch_size=64, steps=100000, flip=True),
    # 2-D toys: 3 hidden layers of 128, lambda = 0.1 (as in Gulrajani et al.'s
    # toy experiments); a higher lr than theirs converges in ~500 steps.
    "toy-8gaussians": _preset("WGAN-GP on 8 Gaussians in 2-D (MLP, lambda 0.1), 2k steps: a minute on a CPU",
                              **_TOY, dataset="toy-8gaussians"),
    "toy-moons": _preset("WGAN-GP on two moons in 2-D", **_TOY, dataset="toy-moons"),
    "toy-scurve": _preset("WGAN-GP on an S-curve in 2-D", **_TOY, dataset="toy-scurve"),
}
