"""Spectral normalisation of every layer of a critic, per critic step.

Variants:
  native  wgan_fast.nn.spectral_norm(iterate_on_forward=False):
          power_iteration_(critic) + one W/sigma per layer
  torch   torch.nn.utils.parametrizations.spectral_norm: one access of every
          layer's weight in training mode (power iteration + W/sigma)
Cases: "update" = one update and one normalised weight per layer (what one
forward needs); "gp step" = what a WGAN-GP critic step needs, three forwards
(real, fake, interpolated): torch iterates on each access, ours once.
"""
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations as tp

import wgan_fast
from bench_utils import DEVICES, sync
from critics import CRITICS
from wgan_fast import ops


def _sn_layers(net, variant):
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        if variant == "native":
            wgan_fast.nn.spectral_norm(m, iterate_on_forward=False)
        else:
            tp.spectral_norm(m)
    return layers


@pytest.mark.parametrize("variant", ["native", "torch"])
@pytest.mark.parametrize("accesses", [1, 3], ids=["update", "gp_step"])
@pytest.mark.parametrize("critic", list(CRITICS))
@pytest.mark.parametrize("device", DEVICES)
def test_spectral_norm_step(benchmark, device, critic, accesses, variant):
    if variant == "native" and not ops.native_available(device):
        pytest.skip(f"native kernels unavailable: {ops.why_unavailable(device)}")
    net = CRITICS[critic]().to(device)
    layers = _sn_layers(net, variant)
    net.train()

    def step():
        if variant == "native":
            wgan_fast.nn.power_iteration_(net)
        for _ in range(accesses):
            ws = [m.weight for m in layers]
        sync(device)
        return ws

    step()
    name = "update" if accesses == 1 else "gp step (3 forwards)"
    benchmark.group = f"{device} spectral norm {name} {critic} ({len(layers)} layers)"
    benchmark.extra_info.update(case=benchmark.group, variant=variant, baseline="torch" if variant == "native" else None)
    benchmark(step)
