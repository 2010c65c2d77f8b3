"""Activations of G and D: the critic's smooth activations have exact first,
second and third derivatives; the penalty's parameter gradients of a critic
built with any activation equal those of the same critic in stock torch
modules (float64); the config keys choose them, each model declares what it
takes, and a few wgan-gp steps with each stay finite."""
import copy
import json
import os

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

from wgan_fast import config, losses, models, ops, train
from wgan_fast.nn import penalty_layers as pl

from helpers import TinyImages, tiny_cfg  # noqa: E402

SMOOTH = {"tanh": pl.tanh, "elu": pl.elu, "elu(0.5)": lambda t: pl.elu(t, 0.5), "gelu": pl.gelu, "silu": pl.silu}
OURS = (pl.Conv2d, pl.LeakyReLU, pl.ELU, pl.GELU, pl.SiLU, pl.Tanh)


@pytest.mark.parametrize("name", SMOOTH)
def test_smooth_activation_gradcheck_gradgradcheck(name):
    f = SMOOTH[name]
    torch.manual_seed(0)
    x = torch.randn(3, 7, dtype=torch.float64) * 2
    x = (x + 0.05 * x.sign()).requires_grad_(True)  # ELU's second derivative jumps at 0
    assert gradcheck(f, (x,))
    assert gradgradcheck(f, (x,))


@pytest.mark.parametrize("name", SMOOTH)
def test_smooth_activation_third_order(name):
    """The double backward is itself differentiable, exactly (gradcheck of x -> f''(x) terms)."""
    f = SMOOTH[name]
    torch.manual_seed(1)
    x = torch.randn(6, dtype=torch.float64) * 2
    x = (x + 0.1 * x.sign()).requires_grad_(True)
    v = torch.randn(6, dtype=torch.float64)

    def second(t):
        (g,) = torch.autograd.grad(f(t), t, v, create_graph=True)
        (gg,) = torch.autograd.grad(g, t, v, create_graph=True)
        return gg

    assert gradcheck(second, (x,))


@pytest.mark.parametrize("name,stock", [("tanh", torch.tanh), ("elu", nn.functional.elu),
                                        ("gelu", nn.functional.gelu), ("silu", nn.functional.silu)])
def test_smooth_activation_matches_stock_forward_and_first_derivative(name, stock):
    x = torch.randn(64, dtype=torch.float32) * 3
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = SMOOTH[name](a), stock(b)
    assert torch.equal(ya, yb)
    v = torch.randn(64)
    ya.backward(v)
    yb.backward(v)
    if name == "elu":  # from y (y + alpha, as torch's in-place ELU), not from x (alpha exp(x)): rounding apart
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    else:
        assert torch.equal(a.grad, b.grad)


def test_elu_rejects_negative_alpha():
    with pytest.raises(ValueError, match="alpha"):
        pl.elu(torch.randn(3, requires_grad=True), -1.0)


def _stock_twin(D):
    twin = pl.convert_layers(copy.deepcopy(D), fast=False)
    assert not any(isinstance(m, OURS) for m in twin.modules())
    return twin


def _penalty_and_grads_ours(D, real, fake, alpha):
    """The trainer's way: losses.gradient_penalty (input_grad_only, our layers)."""
    D.zero_grad(set_to_none=True)
    loss, _ = losses.gradient_penalty(D, real, fake, weight=1.0, alpha=alpha, impl="reference")
    loss.backward()
    return loss.detach(), [p.grad if p.grad is not None else torch.zeros_like(p) for p in D.parameters()]


def _penalty_and_grads_stock(D, real, fake, alpha):
    """Plain autograd through torch's layers and the penalty's reference."""
    D.zero_grad(set_to_none=True)
    x_hat = ops.interpolate_ref(real, fake, alpha).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    loss = ops.grad_penalty_ref(g)[0].mean()
    loss.backward()
    return loss.detach(), [p.grad if p.grad is not None else torch.zeros_like(p) for p in D.parameters()]


CRITICS = [("mlp", 28, 1, "none"), ("mlp", 28, 1, "layer"), ("dcgan", 28, 1, "none"), ("dcgan", 32, 3, "layer"),
           ("dcgan", 28, 1, "instance"), ("resnet", 32, 3, "none")]


@pytest.mark.parametrize("kind,res,ch,norm", CRITICS)
@pytest.mark.parametrize("act", models.ACTIVATIONS)
def test_penalty_parameter_gradients_match_stock_critic(kind, res, ch, norm, act):
    """Every weight's penalty gradient, including the f'' terms that reach the
    weights below each smooth activation (and each norm layer) through the
    x_hat forward graph, equals stock autograd's in float64."""
    torch.manual_seed(0)
    _, D = models.build(kind, resolution=res, channels=ch, z_dim=8, g_base=4, d_base=4, critic_norm=norm,
                        d_activation=act, activation_slope=0.1)
    D = D.double()
    stock = _stock_twin(D)
    real, fake = torch.randn(2, 3, ch, res, res, dtype=torch.float64)
    alpha = torch.rand(3, dtype=torch.float64)
    loss_ours, grads_ours = _penalty_and_grads_ours(D, real, fake, alpha)
    loss_stock, grads_stock = _penalty_and_grads_stock(stock, real, fake, alpha)
    torch.testing.assert_close(loss_ours, loss_stock, rtol=1e-10, atol=1e-12)
    for (name, _), a, b in zip(D.named_parameters(), grads_ours, grads_stock):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


def test_convert_layers_round_trips_every_activation():
    stock = nn.Sequential(nn.ReLU(), nn.LeakyReLU(0.3), nn.ELU(0.5), nn.GELU(), nn.SiLU(), nn.Tanh(),
                          nn.GELU(approximate="tanh"))
    fast = pl.convert_layers(copy.deepcopy(stock), fast=True)
    assert [type(m) for m in fast] == [pl.LeakyReLU, pl.LeakyReLU, pl.ELU, pl.GELU, pl.SiLU, pl.Tanh, nn.GELU]
    assert fast[0].negative_slope == 0.0 and fast[1].negative_slope == 0.3 and fast[2].alpha == 0.5
    back = pl.convert_layers(copy.deepcopy(fast), fast=False)
    assert [type(m) for m in back] == [nn.LeakyReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.GELU]
    x = torch.randn(4, 5)
    torch.testing.assert_close(fast(x), stock(x), rtol=0, atol=0)


# ---- models and config ----------------------------------------------------------------

def _activations(module):
    return [m for m in module.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh))]


@pytest.mark.parametrize("kind,res,g_type,d_slope", [("mlp", 28, nn.LeakyReLU, 0.2), ("dcgan", 32, nn.ReLU, 0.2),
                                                     ("resnet", 32, nn.ReLU, 0.0)])
def test_auto_keeps_each_models_own_activations(kind, res, g_type, d_slope):
    cfg = config.resolve({"model": kind, "resolution": res, "g_base": 4, "d_base": 4})
    assert cfg["g_activation"] == cfg["d_activation"] == "auto"
    G, D = models.from_config(cfg)
    hidden = _activations(G)[:-1] if kind != "resnet" else _activations(G)  # the mlp/dcgan output tanh stays
    assert hidden and all(type(m) is g_type for m in hidden)
    assert _activations(D) and all(type(m) is pl.LeakyReLU and m.negative_slope == d_slope for m in _activations(D))


@pytest.mark.parametrize("kind,res", [("mlp", 28), ("dcgan", 32), ("resnet", 32)])
def test_keys_choose_the_activations_and_slope(kind, res):
    cfg = config.resolve({"model": kind, "resolution": res, "g_base": 4, "d_base": 4, "g_activation": "silu",
                          "d_activation": "leaky_relu", "activation_slope": "0.05"})
    G, D = models.from_config(cfg)
    assert sum(type(m) is nn.SiLU for m in G.modules()) >= 2
    assert all(type(m) is pl.LeakyReLU and m.negative_slope == 0.05 for m in _activations(D))
    cfg = config.resolve(dict(cfg, g_activation="leaky_relu", d_activation="gelu"))
    G, D = models.from_config(cfg)
    assert any(type(m) is nn.LeakyReLU and m.negative_slope == 0.05 for m in G.modules())
    assert _activations(D) and all(type(m) is pl.GELU for m in _activations(D))


def test_config_without_the_keys_builds_the_models_own():
    """A checkpoint's config from before the keys existed."""
    cfg = config.resolve({"resolution": 28, "g_base": 4, "d_base": 4})
    old = {k: v for k, v in cfg.items() if k not in ("g_activation", "d_activation", "activation_slope")}
    _, D = models.from_config(old)
    assert all(type(m) is pl.LeakyReLU and m.negative_slope == 0.2 for m in _activations(D))


@pytest.mark.parametrize("over,key", [({"g_activation": "swish"}, "g_activation"),
                                      ({"d_activation": "prelu"}, "d_activation"),
                                      ({"activation_slope": "-0.1"}, "activation_slope"),
                                      ({"activation_slope": "relu"}, "activation_slope")])
def test_bad_activation_values_are_refused_naming_the_key(over, key):
    with pytest.raises(config.ConfigError, match=f"^{key}: "):
        config.resolve(over)


def test_a_model_refuses_an_activation_it_does_not_declare(monkeypatch):
    monkeypatch.setattr(models.DCGANCritic, "ACTIVATIONS", ("relu", "leaky_relu"))
    config.resolve({"d_activation": "leaky_relu"})
    with pytest.raises(config.ConfigError, match="^d_activation: the dcgan critic takes auto, relu, leaky_relu"):
        config.resolve({"d_activation": "tanh"})


# ---- end to end -------------------------------------------------------------------------

@pytest.mark.parametrize("act", models.ACTIVATIONS)
def test_wgan_gp_trains_finite_with_each_critic_activation(tmp_path, act):
    cfg = tiny_cfg(tmp_path, algorithm="wgan-gp", d_activation=act, g_activation=act, critic_norm="layer")
    run_dir = train.train(cfg, data=TinyImages((1, 28, 28))).run_dir
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert all(isinstance(v, (int, float)) and v == v and abs(v) != float("inf") for v in r.values()), r
    assert len({round(r["loss_d"], 6) for r in rows}) > 1
