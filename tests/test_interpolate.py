"""interpolate: native kernel against its reference, autograd, bad input."""
import pytest
import torch
from torch.testing import assert_close

from helpers import DEVICES, LAYOUTS, make_layout
from wgan_fast import ops

SHAPES = [(1, 3, 8, 8), (5, 1, 28, 28), (3, 3, 7, 5), (7, 2, 3), (4, 5), (6,), (17, 3, 4, 4), (2, 0)]

LOW_PRECISION_TOL = {torch.float16: dict(rtol=1e-3, atol=1e-3), torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}


def _inputs(shape, dtype, device, layout="contiguous", requires_grad=False):
    if layout == "channels_last" and len(shape) != 4:
        layout = "contiguous"
    real = make_layout(torch.randn(shape, dtype=dtype, device=device), layout)
    fake = make_layout(torch.randn(shape, dtype=dtype, device=device), layout)
    alpha = torch.rand(shape[0], dtype=dtype if dtype == torch.float64 else torch.float32, device=device)
    for t in (real, fake, alpha):
        t.requires_grad_(requires_grad)
    return real, fake, alpha


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_parity(device, native, shape, layout):
    real, fake, alpha = _inputs(shape, torch.float32, device, layout, requires_grad=True)
    out = ops.interpolate(real, fake, alpha, impl="native")
    ref = ops.interpolate_ref(real, fake, alpha)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert_close(out, ref)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, (real, fake, alpha), g)
    want = torch.autograd.grad(ref, (real, fake, alpha), g)
    for a, b in zip(got, want):
        assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_preserves_channels_last(device, native):
    real, fake, alpha = _inputs((4, 3, 8, 8), torch.float32, device, "channels_last")
    out = ops.interpolate(real, fake, alpha, impl="native")
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_alpha_endpoints(device, native):
    real, fake, _ = _inputs((3, 2, 5), torch.float32, device)
    alpha = torch.tensor([1.0, 0.0, 0.5], device=device)
    out = ops.interpolate(real, fake, alpha, impl="native")
    assert torch.equal(out[0], real[0])
    assert torch.equal(out[1], fake[1])
    assert_close(out[2], (real[2] + fake[2]) / 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_against_float32(device, native, dtype):
    real, fake, alpha = _inputs((9, 3, 7, 7), dtype, device, requires_grad=True)
    out = ops.interpolate(real, fake, alpha, impl="native")
    assert out.dtype == dtype
    ref = ops.interpolate_ref(real.float(), fake.float(), alpha)
    assert_close(out.float(), ref, **LOW_PRECISION_TOL[dtype])
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, (real, fake, alpha), g.to(dtype))
    r32, f32 = real.detach().float().requires_grad_(), fake.detach().float().requires_grad_()
    a32 = alpha.detach().clone().requires_grad_()
    want = torch.autograd.grad(ops.interpolate_ref(r32, f32, a32), (r32, f32, a32), g)
    for a, b in zip(got[:2], want[:2]):
        assert_close(a.float(), b, **LOW_PRECISION_TOL[dtype])
    # grad_alpha sums D products: its error grows like sqrt(D) * the rounding of its inputs
    assert_close(got[2], want[2], rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "batch_inner"])
def test_opcheck(device, native, layout):
    real, fake, alpha = _inputs((3, 2, 4, 5), torch.float32, device, layout, requires_grad=True)
    torch.library.opcheck(torch.ops.wgan_fast.interpolate.default, (real, fake, alpha))
    g = torch.randn_like(real)
    for mask in ([True, True, True], [False, False, True], [True, False, False]):
        torch.library.opcheck(torch.ops.wgan_fast.interpolate_backward.default, (g, real, fake, alpha, mask))


def test_gradcheck_gradgradcheck_float64(device, native):
    real, fake, alpha = _inputs((3, 2, 3, 2), torch.float64, device, "channels_last", requires_grad=True)
    fn = lambda r, f, a: ops.interpolate(r, f, a, impl="native")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (real, fake, alpha))
    assert torch.autograd.gradgradcheck(fn, (real, fake, alpha))


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, True), (False, False, True), (True, True, False)])
def test_only_requested_gradients(device, native, needs):
    # Inputs that do not require grad are masked off in the fused backward.
    real, fake, alpha = _inputs((3, 2, 4, 5), torch.float64, device)
    for t, n in zip((real, fake, alpha), needs):
        t.requires_grad_(n)
    wanted = [t for t, n in zip((real, fake, alpha), needs) if n]
    g = torch.randn_like(real)
    got = torch.autograd.grad(ops.interpolate(real, fake, alpha, impl="native"), wanted, g)
    want = torch.autograd.grad(ops.interpolate_ref(real, fake, alpha), wanted, g)
    for a, b in zip(got, want):
        assert_close(a, b)
    def fn(*w):
        it = iter(w)
        return ops.interpolate(*[next(it) if n else t for t, n in zip((real, fake, alpha), needs)], impl="native")

    assert torch.autograd.gradgradcheck(fn, tuple(wanted))


def test_alpha_dtype_differs_from_data(device, native):
    # alpha drawn in float32 for bfloat16 data: gradient comes back in alpha's dtype.
    real, fake, _ = _inputs((4, 3, 4, 4), torch.bfloat16, device)
    alpha = torch.rand(4, device=device, requires_grad=True)
    out = ops.interpolate(real, fake, alpha, impl="native")
    (ga,) = torch.autograd.grad(out.float().sum(), alpha)
    assert ga.dtype == torch.float32


def _bad_inputs(device):
    x = torch.randn(4, 3, 2, 2, device=device)
    a = torch.rand(4, device=device)
    return [
        ((x, torch.randn(4, 3, 2, 3, device=device), a), "same shape"),
        ((x, x, torch.rand(3, device=device)), "alpha must have shape"),
        ((x, x, torch.rand(4, 1, device=device)), "alpha must have shape"),
        ((x.long(), x.long(), a), "real must be a floating-point"),
        ((x, x.int(), a), "fake must be a floating-point"),
        ((x, x, torch.ones(4, dtype=torch.int64, device=device)), "alpha must be a floating-point"),
        ((x, x.double(), a), "same dtype"),
        ((torch.tensor(1.0, device=device), torch.tensor(2.0, device=device), a), "0-dim"),
        ((x, x.to("meta"), a), "same device"),
    ]


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_bad_input_names_the_argument(device, impl, request):
    if impl == "native":
        request.getfixturevalue("native")
    for args, message in _bad_inputs(device):
        with pytest.raises(ValueError, match=message):
            ops.interpolate(*args, impl=impl)


def test_bad_input_native_op_direct(device, native):
    # Called without the Python wrapper, the C++ checks give the same messages.
    for args, message in _bad_inputs(device)[:-1]:
        with pytest.raises((ValueError, RuntimeError), match=message):
            torch.ops.wgan_fast.interpolate(*args)


def test_unknown_impl():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="impl must be one of"):
        ops.interpolate(x, x, torch.rand(2), impl="fast")
