"""Critic layers with the cheap double backward (wgan_fast.nn.penalty_layers):
exact first and higher derivatives against autograd's stock layers, and no
work on the forward graph of x_hat in the penalty's backward."""
import copy

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.utils._python_dispatch import TorchDispatchMode

from wgan_fast import losses, models
from wgan_fast.nn import penalty_layers as pl
from wgan_fast.nn import spectral_norm

GEOMETRIES = [  # (cin, cout, kernel, stride, padding, dilation, groups, bias, size)
    (3, 4, 4, 2, 1, 1, 1, True, 8),
    (2, 3, 3, 1, 1, 1, 1, False, 5),
    (4, 4, 3, 2, 0, 2, 2, True, 9),
    (1, 2, (3, 2), (1, 2), (1, 0), 1, 1, True, 7),
]


def stock_twin(module: nn.Module) -> nn.Module:
    """A deep copy with our layers swapped back to torch's (same weights)."""
    return pl.convert_layers(copy.deepcopy(module), fast=False)


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_conv2d_gradcheck_gradgradcheck(geom):
    cin, cout, k, s, p, d, g, bias, size = geom
    torch.manual_seed(0)
    x = torch.randn(2, cin, size, size, dtype=torch.float64, requires_grad=True)
    conv = nn.Conv2d(cin, cout, k, s, p, d, g, bias).double()
    w = conv.weight.detach().clone().requires_grad_(True)
    b = conv.bias.detach().clone().requires_grad_(True) if bias else None
    args = (x, w) + ((b,) if bias else ())

    def f(x, w, b=None):
        return pl.conv2d(x, w, b, s, p, d, g)

    assert gradcheck(f, args)
    assert gradgradcheck(f, args)


def test_leaky_relu_gradcheck_gradgradcheck():
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_(True)  # away from the kink, where the derivative is defined
    for slope in (0.2, 0.0):
        assert gradcheck(lambda t: pl.leaky_relu(t, slope), (x,))
        assert gradgradcheck(lambda t: pl.leaky_relu(t, slope), (x,))


def test_leaky_relu_rejects_negative_slope():
    with pytest.raises(ValueError, match="negative_slope"):
        pl.leaky_relu(torch.randn(3, requires_grad=True), -0.1)


def _penalty_grads(D, x, mode, critic_term=True):
    """Penalty (+ mean critic output on the same batch unless input_grad_only:
    that mode gives no weight gradient of the output itself) and the critic's
    parameter gradients, the way losses.gradient_penalty takes them."""
    D.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    if mode:
        with pl.input_grad_only():
            out = D(x)
    else:
        out = D(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    loss = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    if critic_term and not mode:
        loss = loss + out.mean()
    loss.backward()
    # the penalty does not depend on biases: stock autograd gives zeros, ours None
    return loss.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in D.parameters()]


@pytest.mark.parametrize("kind,res,ch", [("dcgan", 32, 1), ("dcgan", 28, 3), ("resnet", 32, 3), ("mlp", 28, 1)])
@pytest.mark.parametrize("input_grad_only", [False, True])
def test_critic_penalty_gradients_match_stock_layers(kind, res, ch, input_grad_only):
    torch.manual_seed(0)
    _, D = models.build(kind, resolution=res, channels=ch, z_dim=8, g_base=8, d_base=8)
    D = D.double()
    assert any(isinstance(m, pl.LeakyReLU) for m in D.modules()) or kind == "resnet"
    stock = stock_twin(D)
    assert not any(isinstance(m, (pl.Conv2d, pl.LeakyReLU)) for m in stock.modules())
    x = torch.randn(3, ch, res, res, dtype=torch.float64)
    if kind == "dcgan":
        x = x.contiguous(memory_format=torch.channels_last)
    loss_ours, grads_ours = _penalty_grads(D, x, input_grad_only)
    loss_stock, grads_stock = _penalty_grads(stock, x, False, critic_term=not input_grad_only)
    torch.testing.assert_close(loss_ours, loss_stock, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads_ours, grads_stock):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_third_order_through_the_penalty():
    """The penalty's parameter gradient is itself differentiable (gradcheck of
    the double backward, so _Conv2dGradInput's backward is exact)."""
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    w1 = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)

    def penalty(w1, w2):
        xh = x.clone().requires_grad_(True)
        with pl.input_grad_only():
            out = pl.conv2d(pl.leaky_relu(pl.conv2d(xh, w1, None, 2, 1), 0.2), w2, None, 1, 0)
        (g,) = torch.autograd.grad(out.sum(), xh, create_graph=True)
        return ((g.flatten(1).norm(dim=1) - 1) ** 2).sum()

    assert gradcheck(penalty, (w1, w2))
    assert gradgradcheck(penalty, (w1, w2))


class _CountConvs(TorchDispatchMode):
    """Counts the convolution kernels (forward and backward) that run."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten.convolution_backward):
            self.n += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("ours", [True, False])
def test_penalty_backward_runs_only_the_needed_convolutions(ours):
    """Per conv layer the penalty's backward needs one weight gradient and (below
    the top layer) one forward convolution; stock layers also run a backward of
    the x_hat forward graph on zeros (LeakyReLU's zero second derivative)."""
    torch.manual_seed(0)
    _, D = models.build("dcgan", resolution=32, channels=1, z_dim=8, g_base=8, d_base=8)
    if not ours:
        D = stock_twin(D)
    n_conv = sum(isinstance(m, nn.Conv2d) for m in D.modules())
    x = torch.randn(4, 1, 32, 32)
    loss, _ = losses.gradient_penalty(D, x, -x, weight=10.0)
    with _CountConvs() as count:
        loss.backward()
    if ours:
        assert count.n == 2 * n_conv - 1
    else:
        assert count.n > 2 * n_conv


def _bf16_penalty_grads(D, x, mode):
    D.zero_grad(set_to_none=True)
    xh = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if mode:
            with pl.input_grad_only():
                out = D(xh)
        else:
            out = D(xh)
        assert out.dtype == torch.bfloat16
        (g,) = torch.autograd.grad(out.sum(), xh, create_graph=True)
        loss = ((g.float().flatten(1).norm(dim=1) - 1) ** 2).mean()
    loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in D.parameters())
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in D.parameters()]


@pytest.mark.parametrize("act", models.ACTIVATIONS)
def test_autocast_bf16_as_accurate_as_stock_autocast(act):
    """Under bf16 autocast our layers cast as autocast would (bf16 compute,
    fp32 parameter gradients) and stay as close to the fp32 gradients as
    torch's layers under the same autocast, with each critic activation."""
    torch.manual_seed(0)
    _, D = models.build("dcgan", resolution=32, channels=1, z_dim=8, g_base=16, d_base=16, d_activation=act)
    x = torch.randn(8, 1, 32, 32)
    _, ref = _penalty_grads(stock_twin(D), x, False, critic_term=False)  # fp32 stock autograd
    ours = _bf16_penalty_grads(D, x, True)
    stock = _bf16_penalty_grads(stock_twin(D), x, False)
    for r, a, b in zip(ref, ours, stock):
        err_ours, err_stock = (a - r).norm(), (b - r).norm()
        assert err_ours <= 2 * err_stock + 1e-3 * r.norm() + 1e-8
        assert err_ours <= 0.1 * r.norm() + 1e-8


def test_modules_keep_torch_state_dicts_and_spectral_norm():
    conv = pl.Conv2d(3, 4, 3, 1, 1)
    assert isinstance(conv, nn.Conv2d)
    assert conv.state_dict().keys() == nn.Conv2d(3, 4, 3, 1, 1).state_dict().keys()
    torch.manual_seed(0)
    D = nn.Sequential(spectral_norm(pl.Conv2d(1, 4, 4, 2, 1)), pl.LeakyReLU(0.2), spectral_norm(pl.Conv2d(4, 1, 4, 1, 0)))
    x = torch.randn(2, 1, 8, 8)
    loss_a, grads_a = _penalty_grads(D, x, True)
    # the same critic with torch's layers and the same parametrization state
    twin = nn.Sequential(spectral_norm(nn.Conv2d(1, 4, 4, 2, 1)), nn.LeakyReLU(0.2), spectral_norm(nn.Conv2d(4, 1, 4, 1, 0)))
    twin.load_state_dict(D.state_dict())
    loss_b, grads_b = _penalty_grads(twin, x, False, critic_term=False)
    torch.testing.assert_close(loss_a, loss_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_input_grad_only_restores_mode_after_errors():
    with pytest.raises(RuntimeError):
        with pl.input_grad_only():
            raise RuntimeError("boom")
    conv = pl.Conv2d(1, 1, 3)
    x = torch.randn(1, 1, 5, 5)
    conv(x).sum().backward()
    assert conv.weight.grad is not None  # outside the context weights get gradients again


def test_convert_layers_round_trip():
    torch.manual_seed(0)
    _, D = models.build("dcgan", resolution=32, channels=1, z_dim=8, g_base=8, d_base=8)
    stock = pl.convert_layers(copy.deepcopy(D), fast=False)
    assert not any(type(m) in (pl.Conv2d, pl.LeakyReLU) for m in stock.modules())
    fast = pl.convert_layers(copy.deepcopy(stock), fast=True)
    assert sum(type(m) is pl.Conv2d for m in fast.modules()) == sum(type(m) is pl.Conv2d for m in D.modules()) > 0
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(stock(x), D(x))
    torch.testing.assert_close(fast(x), D(x))
    relu = pl.convert_layers(nn.Sequential(nn.ReLU()), fast=True)
    assert isinstance(relu[0], pl.LeakyReLU) and relu[0].negative_slope == 0.0
