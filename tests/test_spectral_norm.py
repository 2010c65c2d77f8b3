"""wgan_fast.nn.spectral_norm: parity with torch's parametrization, gradients,
modes (eval, iterate_on_forward), state dicts, determinism, bad input."""
import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations as tp
from torch.testing import assert_close

import wgan_fast
from wgan_fast import ops
from wgan_fast.nn import power_iteration_, power_iteration_ref, remove_spectral_norm, set_iterate_on_forward, spectral_norm

SN = wgan_fast.nn.spectral_norm
LAYERS = {
    "linear": lambda: nn.Linear(7, 3),
    "linear_tall": lambda: nn.Linear(5, 40),
    "conv": lambda: nn.Conv2d(3, 5, (3, 2)),
    "conv_1x1": lambda: nn.Conv2d(4, 6, 1),
    "convT": lambda: nn.ConvTranspose2d(4, 6, 3),
    "convT_odd": lambda: nn.ConvTranspose2d(5, 3, (2, 3), stride=2),
}
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def _pair(kind, device, dtype, **kw):
    """(ours, torch's) spectral-normalised copies of one layer, with torch's u, v set to ours."""
    base = LAYERS[kind]().to(device=device, dtype=dtype)
    ours = SN(copy.deepcopy(base), **kw)
    theirs = tp.spectral_norm(copy.deepcopy(base))
    p_o, p_t = ours.parametrizations.weight[0], theirs.parametrizations.weight[0]
    assert p_o._u.shape == p_t._u.shape and p_o._v.shape == p_t._v.shape
    with torch.no_grad():
        p_t._u.copy_(p_o._u)
        p_t._v.copy_(p_o._v)
    return ours, theirs


def _uv(m):
    p = m.parametrizations.weight[0]
    return p._u, p._v


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_parity_with_torch_training_step(device, native, kind, dtype):
    ours, theirs = _pair(kind, device, dtype)
    for _ in range(3):  # three training-mode accesses: three iterations each
        w_o, w_t = ours.weight, theirs.weight
        assert_close(w_o, w_t, **TOL[dtype])
        for a, b in zip(_uv(ours), _uv(theirs)):
            assert_close(a, b, **TOL[dtype])
    g = torch.randn_like(w_o)
    (d_o,) = torch.autograd.grad((w_o * g).sum(), ours.parametrizations.weight.original)
    (d_t,) = torch.autograd.grad((w_t * g).sum(), theirs.parametrizations.weight.original)
    assert_close(d_o, d_t, **TOL[dtype])
    # and the layer's forward
    x = torch.randn((2,) + ((7,) if kind == "linear" else (5,) if kind == "linear_tall" else (ours.in_channels, 6, 5)),
                   device=device, dtype=dtype)
    assert_close(ours(x), theirs(x), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_close_to_torch(device, native, dtype):
    ours, theirs = _pair("conv", device, dtype)
    w_o, w_t = ours.weight, theirs.weight
    assert w_o.dtype == dtype
    assert_close(w_o.float(), w_t.float(), rtol=2e-2, atol=2e-2)


def test_trainer_mode_one_sigma_per_step(device, native):
    ours, theirs = _pair("conv", device, torch.float64, iterate_on_forward=False)
    u0 = _uv(ours)[0].clone()
    w1, w2, w3 = ours.weight, ours.weight, ours.weight  # real, fake, interpolated forwards
    assert torch.equal(_uv(ours)[0], u0), "iterate_on_forward=False must not iterate on access"
    assert torch.equal(w1, w2) and torch.equal(w2, w3)
    assert power_iteration_(ours) == 1
    assert not torch.equal(_uv(ours)[0], u0)
    w_o, w_t = ours.weight, theirs.weight  # = one torch iteration
    assert_close(w_o, w_t, **TOL[torch.float64])
    # sigma comes from the iteration's kernel here; its gradient is still exact
    assert "CachedSigma" in str(w_o.grad_fn.next_functions)
    g = torch.randn_like(w_o)
    (d_o,) = torch.autograd.grad((w_o * g).sum(), ours.parametrizations.weight.original)
    (d_t,) = torch.autograd.grad((w_t * g).sum(), theirs.parametrizations.weight.original)
    assert_close(d_o, d_t, **TOL[torch.float64])
    # an optimizer step changes W: sigma is recomputed from the new W, not reused
    W = ours.parametrizations.weight.original
    with torch.no_grad():
        W.mul_(2)
    w2 = ours.weight
    assert "CachedSigma" not in str(w2.grad_fn.next_functions)
    assert_close(w2, w_o, **TOL[torch.float64])  # W / sigma is scale invariant
    with torch.no_grad():
        theirs.parametrizations.weight.original.mul_(2)
    set_iterate_on_forward(ours, True)
    assert_close(ours.weight, theirs.weight, **TOL[torch.float64])


def test_power_iteration_updates_every_layer_of_a_network(device, native):
    net = nn.Sequential(SN(nn.Conv2d(3, 8, 4, 2, 1)), nn.LeakyReLU(0.2), SN(nn.ConvTranspose2d(8, 4, 4)),
                        nn.Flatten(), SN(nn.Linear(4 * 11 * 11, 4)), nn.Linear(4, 1)).to(device)
    before = [p._v.clone() for p in net.modules() if hasattr(p, "_v")]
    assert power_iteration_(net) == 3
    after = [p._v for p in net.modules() if hasattr(p, "_v")]
    assert len(before) == 3 and all(not torch.equal(a, b) for a, b in zip(after, before))
    net(torch.randn(2, 3, 16, 16, device=device)).sum().backward()


def test_sigma_converges_to_the_spectral_norm(device, native):
    for kind in ("linear_tall", "conv", "convT"):
        m = SN(LAYERS[kind]().to(device=device, dtype=torch.float64), iterate_on_forward=False)
        power_iteration_(m, force=True)
        p = m.parametrizations.weight[0]
        W = m.parametrizations.weight.original
        mat = W.movedim(p.dim, 0).flatten(1)
        for _ in range(20):
            power_iteration_(m)
        true = torch.linalg.matrix_norm(mat, 2)
        sigma = p.sigma(W)
        assert_close(sigma, true, rtol=1e-6, atol=0)
        assert_close(torch.linalg.matrix_norm(m.weight.movedim(p.dim, 0).flatten(1), 2), torch.ones((), dtype=W.dtype, device=device), rtol=1e-6, atol=0)


def test_known_singular_values(device, native):
    # W = Q1 diag(s) Q2^T: sigma -> s[0] = 3 exactly
    torch.manual_seed(1)
    q1, _ = torch.linalg.qr(torch.randn(24, 24, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(30, 24, dtype=torch.float64))
    s = torch.linspace(1.5, 0.1, 24, dtype=torch.float64)
    s[0] = 3.0  # spectral gap 2: fast, sure convergence
    lin = nn.Linear(30, 24).double().to(device)
    with torch.no_grad():
        lin.weight.copy_(q1 @ torch.diag(s) @ q2.T)
    SN(lin, n_power_iterations=5)
    for _ in range(40):
        lin.weight
    p = lin.parametrizations.weight[0]
    assert_close(p.sigma(lin.parametrizations.weight.original).cpu(), torch.tensor(3.0, dtype=torch.float64), rtol=1e-8, atol=0)


@pytest.mark.parametrize("kind", ["linear", "conv", "convT"])
def test_gradcheck_float64(device, native, kind):
    m = SN(LAYERS[kind]().to(device=device, dtype=torch.float64)).eval()  # eval: u, v fixed
    p = m.parametrizations.weight[0]
    w = m.parametrizations.weight.original.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(p, (w,))
    assert torch.autograd.gradgradcheck(p, (w,))


def test_eval_mode_does_not_update(device, native):
    m = SN(nn.Linear(6, 4).to(device)).eval()
    u, v = (t.clone() for t in _uv(m))
    m.weight
    m(torch.randn(3, 6, device=device))
    assert power_iteration_(m) == 0
    assert torch.equal(_uv(m)[0], u) and torch.equal(_uv(m)[1], v)
    assert power_iteration_(m, force=True) == 1
    assert not torch.equal(_uv(m)[0], u)


def test_state_dict_round_trip_and_torch_interchange(device, native):
    a = SN(nn.Conv2d(3, 4, 3).to(device))
    for _ in range(2):
        a.weight
    sd = a.state_dict()
    assert set(sd) == {"bias", "parametrizations.weight.original", "parametrizations.weight.0._u", "parametrizations.weight.0._v"}
    b = SN(nn.Conv2d(3, 4, 3).to(device))
    b.load_state_dict(sd)
    assert all(torch.equal(x, y) for x, y in zip(_uv(a), _uv(b)))
    a.eval(), b.eval()
    assert torch.equal(a.weight, b.weight)
    t = tp.spectral_norm(nn.Conv2d(3, 4, 3).to(device)).eval()
    t.load_state_dict(sd)  # our checkpoint loads into torch's parametrization ...
    assert_close(t.weight, a.weight)
    b.load_state_dict(t.state_dict())  # ... and back


def test_remove_spectral_norm(device, native):
    m = SN(nn.ConvTranspose2d(3, 4, 3).to(device)).eval()
    w = m.weight.detach().clone()
    remove_spectral_norm(m)
    assert isinstance(m.weight, nn.Parameter) and torch.equal(m.weight.detach(), w)
    assert "parametrizations" not in dict(m.named_children())
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found"):
        remove_spectral_norm(m)
    SN(m)  # can be applied again after removal


def test_power_iteration_op_native_vs_reference_and_deterministic(device, native):
    shapes = [(1, 64, 48), (1, 512, 300), (3, 7, 16), (1, 1, 800), (2, 200, 1), (1, 0, 5), (1, 4, 0)]
    ws = [torch.randn(s, device=device) for s in shapes]
    us = [torch.nn.functional.normalize(torch.randn(s[1], device=device), dim=0) for s in shapes]
    vs = [torch.nn.functional.normalize(torch.randn(s[0] * s[2], device=device), dim=0) for s in shapes]
    ref_u, ref_v = [u.clone() for u in us], [v.clone() for v in vs]
    power_iteration_ref(ws, ref_u, ref_v, 2, 1e-12)
    got = []
    threads = torch.get_num_threads()
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            u2, v2 = [u.clone() for u in us], [v.clone() for v in vs]
            torch.ops.wgan_fast.spectral_norm_power_iteration_(ws, u2, v2, 2, 1e-12)
            got.append((u2, v2))
    finally:
        torch.set_num_threads(threads)
    for i in range(len(shapes)):
        assert_close(got[0][0][i], ref_u[i], rtol=1e-4, atol=1e-5)
        assert_close(got[0][1][i], ref_v[i], rtol=1e-4, atol=1e-5)
        # bit-identical whatever the thread count (the DDP argument)
        assert torch.equal(got[0][0][i], got[1][0][i]) and torch.equal(got[0][1][i], got[1][1][i])


def test_opcheck(device, native):
    w = torch.randn(2, 5, 3, device=device)
    u = torch.nn.functional.normalize(torch.randn(5, device=device), dim=0)
    v = torch.nn.functional.normalize(torch.randn(6, device=device), dim=0)
    torch.library.opcheck(torch.ops.wgan_fast.spectral_norm_power_iteration_.default, ([w], [u], [v], 2, 1e-12))


def test_reference_impl_matches_native(device, native):
    a = SN(nn.Conv2d(3, 5, 3).to(device))
    b = copy.deepcopy(a)
    power_iteration_(a, impl="native")
    power_iteration_(b, impl="reference")
    for x, y in zip(_uv(a), _uv(b)):
        assert_close(x, y)


# ---- bad input ---------------------------------------------------------------

def test_bad_input():
    with pytest.raises(ValueError, match="has no parameter named 'weight'"):
        SN(nn.ReLU())
    with pytest.raises(ValueError, match="has no parameter named 'kernel'"):
        SN(nn.Linear(3, 2), name="kernel")
    with pytest.raises(ValueError, match="2 or more dimensions"):
        SN(nn.Linear(3, 2), name="bias")
    with pytest.raises(ValueError, match="n_power_iterations"):
        SN(nn.Linear(3, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match="eps"):
        SN(nn.Linear(3, 2), eps=0.0)
    with pytest.raises(IndexError, match="dim"):
        SN(nn.Linear(3, 2), dim=2)
    m = SN(nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="applied twice"):
        SN(m)
    with pytest.raises(RuntimeError, match="applied twice"):
        SN(tp.spectral_norm(nn.Linear(3, 2)))
    with pytest.raises(RuntimeError, match="applied twice"):
        SN(torch.nn.utils.spectral_norm(nn.Linear(3, 2)))
    with pytest.raises(TypeError, match="nn.Module"):
        SN(torch.zeros(3, 3))


def test_cpp_checks_power_iteration_args(device, native):
    w, u, v = torch.randn(1, 4, 3, device=device), torch.randn(4, device=device), torch.randn(3, device=device)
    with pytest.raises(ValueError, match="n_power_iterations must be >= 1"):
        torch.ops.wgan_fast.spectral_norm_power_iteration_([w], [u], [v], 0, 1e-12)
    with pytest.raises(ValueError, match=r"us\[0\] must be a contiguous vector of 4"):
        torch.ops.wgan_fast.spectral_norm_power_iteration_([w], [torch.randn(3, device=device)], [v], 1, 1e-12)
    with pytest.raises(ValueError, match=r"weights\[0\] must be a contiguous \(A, H, B\)"):
        torch.ops.wgan_fast.spectral_norm_power_iteration_([w[0]], [u], [v], 1, 1e-12)
    with pytest.raises(ValueError, match="same length"):
        torch.ops.wgan_fast.spectral_norm_power_iteration_([w], [u], [], 1, 1e-12)
