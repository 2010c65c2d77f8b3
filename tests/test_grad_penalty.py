"""grad_penalty: native kernel against its reference, autograd to 2nd order, bad input."""
import math

import pytest
import torch
from torch.testing import assert_close

from helpers import DEVICES, LAYOUTS, make_layout
from wgan_fast import ops
from wgan_fast.ops.grad_penalty import _penalty_d2norm

SHAPES = [(1, 3, 8, 8), (5, 1, 28, 28), (3, 3, 7, 5), (7, 2, 3), (4, 5), (6,), (17, 3, 4, 4), (3, 0)]
CUDA_ONLY = [d for d in DEVICES if d != "cpu"]  # the `device` param of CUDA, skipped without a GPU
VARIANTS = [dict(center=1.0, one_sided=False), dict(center=1.0, one_sided=True), dict(center=0.0, one_sided=False)]


def _grad(shape, dtype, device, layout="contiguous", scale=None):
    if layout == "channels_last" and len(shape) != 4:
        layout = "contiguous"
    g = torch.randn(shape, dtype=dtype, device=device)
    if scale is not None:  # per-row scales put norms on both sides of the center
        g = g * torch.as_tensor(scale, dtype=dtype, device=device).reshape((-1,) + (1,) * (g.dim() - 1))
    return make_layout(g, layout)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_parity(device, native, shape, layout, variant):
    D = math.prod(shape[1:]) or 1
    scale = [((-1) ** b) * (0.3 + b) / math.sqrt(D) for b in range(shape[0])]  # norms ~0.3, ~1.3, ...
    g = _grad(shape, torch.float32, device, layout, scale).requires_grad_()
    p, n = ops.grad_penalty_with_norm(g, impl="native", **variant)
    p_ref, n_ref = ops.grad_penalty_ref(g, **variant)
    assert p.shape == (shape[0],) and n.shape == (shape[0],)
    assert_close(p, p_ref, rtol=1e-5, atol=1e-6)
    assert_close(n, n_ref, rtol=1e-5, atol=1e-6)
    wp, wn = torch.randn_like(p), torch.randn_like(n)
    (got,) = torch.autograd.grad((p * wp).sum() + (n * wn).sum(), g)
    (want,) = torch.autograd.grad((p_ref * wp).sum() + (n_ref * wn).sum(), g)
    assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_norm_is_per_sample_over_all_dims(device, native):
    # The classic bug: grad.norm(2, dim=1) on a 4-D tensor. Here each sample is a
    # constant c_b over 3*4*4 = 48 elements, so its norm is |c_b| * sqrt(48).
    c = torch.tensor([0.5, 2.0, 0.0], device=device)
    g = c.view(3, 1, 1, 1).expand(3, 3, 4, 4).contiguous()
    p, n = ops.grad_penalty_with_norm(g, impl="native")
    assert_close(n, c.abs() * math.sqrt(48) + torch.tensor([0, 0, 1e-6], device=device), rtol=1e-6, atol=1e-7)
    assert_close(p, (n - 1) ** 2)


def test_zero_and_huge_norms_are_finite(device, native):
    g = torch.randn(4, 3, 16, 16, device=device)
    g[0] = 0
    g[1] *= 1e4
    g.requires_grad_()
    p, n = ops.grad_penalty_with_norm(g, impl="native")
    p_ref, n_ref = ops.grad_penalty_ref(g)
    assert torch.isfinite(p).all() and torch.isfinite(n).all()
    assert_close(p, p_ref, rtol=1e-5, atol=1e-6)
    assert_close(n[0], torch.tensor(1e-6, device=device))
    (got,) = torch.autograd.grad(p.sum(), g, create_graph=True)
    (want,) = torch.autograd.grad(p_ref.sum(), g, create_graph=True)
    assert torch.isfinite(got).all()
    assert_close(got, want, rtol=1e-5, atol=1e-5)
    # second order: finite at the zero row too
    (gg,) = torch.autograd.grad(got.square().sum(), g)
    assert torch.isfinite(gg).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_against_float32(device, native, dtype):
    # Values of 300 square to 9e4 > float16's max: the sum must run in float32.
    g32 = torch.randn(6, 3, 9, 9, device=device)
    g32[0] *= 300
    g = g32.to(dtype).requires_grad_()
    p, n = ops.grad_penalty_with_norm(g, impl="native")
    ref_in = g.detach().float().requires_grad_()
    p_ref, n_ref = ops.grad_penalty_ref(ref_in)
    assert p.dtype == torch.float32 and n.dtype == torch.float32
    assert torch.isfinite(p).all() and p[0] > 65504  # beyond float16's range, kept in float32
    tol = dict(rtol=1e-2, atol=1e-2) if dtype == torch.bfloat16 else dict(rtol=2e-3, atol=2e-3)
    assert_close(n, n_ref, **tol)
    assert_close(p, p_ref, **tol)
    (got,) = torch.autograd.grad(p.sum(), g)
    (want,) = torch.autograd.grad(p_ref.sum(), ref_in)
    assert_close(got.float(), want, rtol=2 * tol["rtol"], atol=2 * tol["atol"])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "batch_inner"])
def test_opcheck(device, native, layout, variant):
    g = _grad((3, 2, 4, 5), torch.float32, device, layout).requires_grad_()
    args = (g, variant["center"], variant["one_sided"], 1e-12)
    torch.library.opcheck(torch.ops.wgan_fast.grad_penalty.default, args)
    p, n = torch.ops.wgan_fast.grad_penalty(*args)
    gp = torch.randn(3, device=device)
    gn = torch.randn(3, device=device)
    bwd = torch.ops.wgan_fast.grad_penalty_backward.default
    torch.library.opcheck(bwd, (gp, gn, g.detach(), n.detach(), variant["center"], variant["one_sided"]))
    torch.library.opcheck(bwd, (gp, None, g.detach(), n.detach(), variant["center"], variant["one_sided"]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradcheck_gradgradcheck_float64(device, native, variant):
    # norms ~0.4, ~1.6, ~2.8: away from the one-sided kink at center=1
    g = _grad((3, 2, 3, 2), torch.float64, device, "channels_last", scale=[0.4 / math.sqrt(12), 1.6 / math.sqrt(12), 2.8 / math.sqrt(12)])
    g.requires_grad_()
    fn = lambda x: ops.grad_penalty_with_norm(x, impl="native", **variant)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (g,))
    assert torch.autograd.gradgradcheck(fn, (g,))


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_second_derivative_matches_finite_differences(device, impl, request):
    # phi'' is written once, in the Python double backward (_penalty_d2norm);
    # phi' comes from the kernel (native) or from autograd of the spec. With
    # eps = 0 and a one-element row g = [n], norm = n and d penalty / d g = phi'(n).
    if impl == "native":
        request.getfixturevalue("native")

    def dphi(n, center, one_sided):
        g = torch.tensor([[n]], dtype=torch.float64, device=device, requires_grad=True)
        p = ops.grad_penalty(g, center=center, one_sided=one_sided, eps=0.0, impl=impl)
        return torch.autograd.grad(p.sum(), g)[0].item()

    h = 1e-6
    for center in (0.0, 1.0):
        for one_sided in (False, True):
            for n in (0.3, 0.9, 1.7, 4.0):
                fd2 = (dphi(n + h, center, one_sided) - dphi(n - h, center, one_sided)) / (2 * h)
                d2 = _penalty_d2norm(torch.tensor([n], dtype=torch.float64), center, one_sided).item()
                assert abs(fd2 - d2) < 1e-5, (center, one_sided, n, fd2, d2)


def test_third_order_matches_reference(device, native):
    # The backward's backward is built from differentiable pieces: any order works.
    g = torch.randn(3, 2, 5, dtype=torch.float64, device=device, requires_grad=True)
    out = []
    for impl in ("native", "reference"):
        p = ops.grad_penalty(g, impl=impl)
        (d1,) = torch.autograd.grad(p.sum(), g, create_graph=True)
        (d2,) = torch.autograd.grad((d1 ** 2).sum(), g, create_graph=True)
        (d3,) = torch.autograd.grad(d2.sum(), g)
        out.append((d1, d2, d3))
    for a, b in zip(*out):
        assert_close(a, b)


def _bad(device):
    g = torch.randn(4, 3, device=device)
    return [
        (dict(grad=torch.tensor(1.0, device=device)), "0-dim"),
        (dict(grad=g.long()), "grad must be a floating-point"),
        (dict(grad=g, center=-1.0), "center must be"),
        (dict(grad=g, center=float("nan")), "center must be"),
        (dict(grad=g, eps=-1.0), "eps must be"),
    ]


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_bad_input_names_the_argument(device, impl, request):
    if impl == "native":
        request.getfixturevalue("native")
    for kwargs, message in _bad(device):
        grad = kwargs.pop("grad")
        with pytest.raises(ValueError, match=message):
            ops.grad_penalty(grad, impl=impl, **kwargs)


def test_bad_input_native_op_direct(device, native):
    with pytest.raises((ValueError, RuntimeError), match="0-dim"):
        torch.ops.wgan_fast.grad_penalty(torch.tensor(1.0, device=device), 1.0, False, 1e-12)
    with pytest.raises((ValueError, RuntimeError), match="grad must be a floating-point"):
        torch.ops.wgan_fast.grad_penalty(torch.ones(2, 3, dtype=torch.int32, device=device), 1.0, False, 1e-12)
    g = torch.randn(4, 3, device=device)
    with pytest.raises((ValueError, RuntimeError), match="grad_penalty must have shape"):
        torch.ops.wgan_fast.grad_penalty_backward(torch.ones(3, device=device), None, g, torch.ones(4, device=device), 1.0, False)


@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_cuda_graph_capture_and_replay(device, native):
    # The kernels must not synchronise or allocate outside the caching
    # allocator: capture interpolate + penalty + backward, replay on new data.
    B, shape = 8, (3, 16, 16)
    real, fake = torch.randn((B,) + shape, device="cuda"), torch.randn((B,) + shape, device="cuda")
    alpha = torch.rand(B, device="cuda")
    grad = torch.randn((B,) + shape, device="cuda", requires_grad=True)

    def step():
        x = ops.interpolate(real, fake, alpha, impl="native")
        p, n = ops.grad_penalty_with_norm(grad * 1.0, impl="native")
        (d,) = torch.autograd.grad(p.sum(), grad)
        return x, p, d

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()  # warm-up outside capture
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = step()
    for _ in range(2):
        real.copy_(torch.randn_like(real))
        grad.data.copy_(torch.randn_like(grad))
        graph.replay()
        want = step()
        for a, b in zip(static, want):
            assert_close(a, b)
