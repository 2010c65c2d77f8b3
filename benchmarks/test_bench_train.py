"""Training throughput: DCGAN-64 WGAN-GP, batch 64, 5 critic steps per generator step.

Variants, same architecture (wgan_fast.models' DCGAN-64 pair), same data:
  stock      a plain eager implementation written here: fp32, separate real and
             fake critic forwards, alpha*real + (1-alpha)*fake and an
             autograd.grad penalty with grad.view(B,-1).norm, Adam with
             per-parameter loops (foreach=False), critic weights receive
             gradients in the generator step
  wgan_fast  the trainer's own steps (wgan_fast.step): concatenated forward,
             fused interpolate + penalty, one backward, critic frozen in the
             generator step, foreach Adam (fused on CUDA), bf16 and
             channels_last on CUDA
Also each without the penalty, for the penalty overhead time(GP) / time(no GP).
"""
from contextlib import nullcontext

import pytest
import torch

from bench_utils import DEVICES, sync
from wgan_fast import config, models
from wgan_fast.step import Metrics, Parts, critic_step, generator_step

B, N_CRITIC, Z = 64, 5, 128


def _models(device, channels_last=False):
    torch.manual_seed(0)
    G, D = models.build("dcgan", resolution=64, channels=3, z_dim=Z)
    G, D = G.to(device), D.to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return G, D


def stock_iteration(G, D, opt_g, opt_d, real, gp=True):
    for _ in range(N_CRITIC):
        z = torch.randn(B, Z, device=real.device)
        fake = G(z).detach()
        d_real, d_fake = D(real).mean(), D(fake).mean()
        loss = d_fake - d_real
        if gp:
            alpha = torch.rand(B, 1, 1, 1, device=real.device)
            x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            (g,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
            loss = loss + 10 * ((g.view(B, -1).norm(2, dim=1) - 1) ** 2).mean()
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    z = torch.randn(B, Z, device=real.device)
    loss_g = -D(G(z)).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()


def make_stock(device):
    G, D = _models(device)
    opt_g = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.0, 0.9), foreach=False)
    opt_d = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.0, 0.9), foreach=False)
    return lambda real, gp: stock_iteration(G, D, opt_g, opt_d, real, gp)


def make_ours(device):
    cuda = torch.device(device).type == "cuda"
    G, D = _models(device, channels_last=cuda)
    kw = {"fused": True} if cuda else {}
    opt_g = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.0, 0.9), **kw)
    opt_d = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.0, 0.9), **kw)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=False)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext
    metrics = Metrics(device)
    cfgs = {gp: config.resolve({"algorithm": "wgan-gp", "gp_weight": "10" if gp else "0"}) for gp in (True, False)}
    parts = {gp: Parts(cfgs[gp], G, D, opt_g, opt_d, scaler, scaler, autocast, lambda m: None, metrics)
             for gp in (True, False)}

    def iteration(real, gp):
        p = parts[gp]
        for i in range(N_CRITIC):
            z = torch.randn(B, Z, device=real.device)
            critic_step(p, real, None, z, torch.rand(B, device=real.device), critic_iter=i)
        generator_step(p, torch.randn(B, Z, device=real.device), None)

    return iteration


@pytest.mark.parametrize("penalty", [True, False], ids=["gp", "no-gp"])
@pytest.mark.parametrize("variant", ["wgan_fast", "stock"])
@pytest.mark.parametrize("device", DEVICES)
def test_dcgan64_wgan_gp_iteration(benchmark, device, variant, penalty):
    real = torch.rand(B, 3, 64, 64, device=device) * 2 - 1
    if torch.device(device).type == "cuda" and variant == "wgan_fast":
        real = real.contiguous(memory_format=torch.channels_last)
    step = (make_ours if variant == "wgan_fast" else make_stock)(device)

    def run():
        step(real, penalty)
        sync(real.device)

    run()  # warm-up
    benchmark.group = f"{device} dcgan64 B=64 n_critic=5 {'gp' if penalty else 'no-gp'}"
    benchmark.extra_info.update(case=benchmark.group, variant=variant,
                                baseline="stock" if variant != "stock" else None)
    rounds = 3 if torch.device(device).type == "cpu" else 20
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    if benchmark.stats is not None:
        benchmark.extra_info["gen_iters_per_s"] = 1.0 / benchmark.stats.stats.median
        benchmark.extra_info["images_per_s"] = N_CRITIC * B / benchmark.stats.stats.median
