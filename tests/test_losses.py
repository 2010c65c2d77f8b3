"""losses.gradient_penalty: native vs reference through a real critic."""
import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from wgan_fast import losses, ops


def small_critic(dtype, device, channels=3):
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 3, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 1),
    ).to(device=device, dtype=dtype)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", [dict(center=1.0, one_sided=False), dict(center=1.0, one_sided=True), dict(center=0.0)])
def test_native_matches_reference_in_a_conv_critic(device, native, dtype, memory_format, variant):
    real = torch.randn(6, 3, 8, 8, dtype=dtype, device=device).contiguous(memory_format=memory_format)
    fake = torch.randn(6, 3, 8, 8, dtype=dtype, device=device).contiguous(memory_format=memory_format)
    alpha = torch.rand(6, dtype=dtype, device=device)
    results = []
    for impl in ("native", "reference"):
        critic = small_critic(dtype, device).to(memory_format=memory_format)
        loss, norms = losses.gradient_penalty(critic, real, fake, alpha=alpha, impl=impl, **variant)
        loss.backward()
        results.append((loss.detach(), norms, [p.grad for p in critic.parameters()]))
        # The gradient of a piecewise-linear critic does not depend on its biases;
        # every weight must receive a penalty gradient.
        assert all(m.weight.grad is not None for m in critic if hasattr(m, "weight"))
    (l1, n1, g1), (l2, n2, g2) = results
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else {}
    assert_close(l1, l2, **tol)
    assert_close(n1, n2, **tol)
    assert not n1.requires_grad
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.isfinite(a).all()
            assert_close(a, b, **tol)


def test_linear_critic_known_answer(device):
    # D(x) = <w, x>: every sample's gradient is w, so the penalty is (||w|| - 1)^2.
    w = torch.randn(3, 4, 4, dtype=torch.float64, device=device)
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real = torch.randn(5, 3, 4, 4, dtype=torch.float64, device=device)
    fake = torch.randn_like(real)
    loss, norms = losses.gradient_penalty(critic, real, fake, weight=10.0)
    assert_close(norms, torch.full((5,), w.norm().item(), dtype=torch.float64, device=device))
    assert_close(loss, 10.0 * (w.norm() - 1) ** 2)


def test_critic_kwargs_reach_the_critic(device):
    seen = {}

    def critic(x, labels=None):
        seen["labels"] = labels
        return x.flatten(1).sum(1)

    x = torch.randn(4, 1, 2, 2, device=device)
    y = torch.arange(4, device=device)
    losses.gradient_penalty(critic, x, x, labels=y)
    assert seen["labels"] is y


def test_alpha_is_drawn_per_sample(device):
    # With alpha drawn once per sample, x_hat lies on each real-fake segment.
    seen = {}

    def critic(x):
        seen["x"] = x.detach()
        return x.flatten(1).sum(1)

    real = torch.zeros(64, 2, device=device)
    fake = torch.ones(64, 2, device=device)
    losses.gradient_penalty(critic, real, fake)
    x = seen["x"]
    assert torch.equal(x[:, 0], x[:, 1])  # one alpha for all of a sample's elements
    assert x[:, 0].unique().numel() > 32  # different alphas across samples
    assert ((x >= 0) & (x <= 1)).all()


def test_grad_scaler_path_equals_unscaled(device):
    critic = small_critic(torch.float32, device)
    real = torch.randn(4, 3, 8, 8, device=device)
    fake = torch.randn_like(real)
    alpha = torch.rand(4, device=device)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0 ** 16)
    plain, n1 = losses.gradient_penalty(critic, real, fake, alpha=alpha)
    scaled, n2 = losses.gradient_penalty(critic, real, fake, alpha=alpha, scaler=scaler)
    assert_close(plain, scaled)
    assert_close(n1, n2)


def test_non_callable_critic():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="critic must be callable"):
        losses.gradient_penalty("not a module", x, x)
