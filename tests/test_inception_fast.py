"""The rebuilt Inception (metrics/inception_fast.py) against the TorchScript it
is made from, on real Fashion-MNIST images: the same features, the same FID."""
import os

import numpy as np
import pytest
import torch

from wgan_fast import metrics
from wgan_fast.data import idx
from wgan_fast.metrics import inception, inception_fast

FASHION = "/usr/share/datasets/fashion-mnist"
pytestmark = [pytest.mark.skipif(not os.path.exists(FASHION), reason=f"Fashion-MNIST IDX files not in {FASHION}"),
              pytest.mark.filterwarnings("ignore:FID from .* samples:RuntimeWarning")]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):  # conftest.one_thread for every test here
    yield


def fashion(split: str, n: int) -> torch.Tensor:
    stem = "t10k" if split == "test" else "train"
    images = idx.read_idx(os.path.join(FASHION, f"{stem}-images-idx3-ubyte.gz"))[:n]
    return torch.from_numpy(images.copy())[:, None]


@pytest.fixture(scope="module")
def images():
    return torch.cat([fashion("test", 8), fashion("train", 8)])


@pytest.fixture(scope="module")
def stock_features(images):
    net = metrics.InceptionFeatures(device="cpu", batch_size=8, fast=False)
    assert not net.fast and isinstance(net.net, torch.jit.ScriptModule)
    return net(images)


def test_fast_features_equal_the_torchscript(images, stock_features):
    net = metrics.InceptionFeatures(device="cpu", batch_size=8)
    assert net.fast and isinstance(net.net, inception_fast.FastInception)
    fast = net(images)
    assert fast.shape == stock_features.shape == (16, 2048)
    np.testing.assert_allclose(fast, stock_features, rtol=0, atol=1e-4 * np.abs(stock_features).max())
    # without the oneDNN fused ops (other CPUs, CUDA) the rebuilt network gives the same features
    plain = inception_fast.FastInception(torch.jit.load(net.path)).use_onednn(False)
    with torch.inference_mode():
        x = inception.network_input(inception.eight_bit_levels(images[:4]))
        np.testing.assert_allclose(plain(x).double().numpy(), fast[:4], rtol=0, atol=1e-4 * np.abs(fast).max())


def test_fid_on_the_same_samples_changes_by_under_half_a_percent(images, stock_features):
    fast = metrics.InceptionFeatures(device="cpu", batch_size=5)(images)  # another batch size too
    stock_fid = metrics.fid_from_features(stock_features[:8], stock_features[8:])  # test vs train images
    fast_fid = metrics.fid_from_features(fast[:8], fast[8:])
    assert stock_fid > 10  # two different sets of images: a real distance, not 0 == 0
    assert abs(fast_fid / stock_fid - 1) <= 0.005


def test_the_rebuilt_network_refuses_an_unknown_layer():
    class Odd(torch.nn.Module):
        original_name = "Dropout"

    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.odd = Odd()

    scripted = torch.nn.Module()
    scripted.net = torch.nn.Module()
    scripted.net.layers = Layers()
    with pytest.raises(ValueError, match="unexpected layer odd"):
        inception_fast.FastInception(scripted)
