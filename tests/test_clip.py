"""clip_: native kernel against torch.clamp_, layouts, dtypes, many tensors, bad input."""
import pytest
import torch

from helpers import DEVICES
from wgan_fast import ops

CUDA_ONLY = [d for d in DEVICES if d != "cpu"]  # the `device` param of CUDA, skipped without a GPU
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# sizes around the 16384-element chunk and the 16-byte vector width
SIZES = [(1,), (7,), (16384,), (16385,), (3, 5, 7), (64, 3, 4, 4), (2, 16383), (0,), (1, 1)]


def _values(shape, dtype, device, scale=3.0):
    t = torch.randn(shape, device=device) * scale
    flat = t.view(-1)
    if flat.numel() >= 8:  # exact bounds, just inside/outside, non-finite values
        flat[:8] = torch.tensor([0.5, -0.5, 0.5000001, -0.4999999, float("nan"), float("inf"), -float("inf"), 0.0])
    return t.to(dtype)


def _check_parity(tensors, bound, impl="native"):
    want = [t.clone().clamp_(-bound, bound) for t in tensors]
    ptrs = [t.data_ptr() for t in tensors]
    ops.clip_(tensors, bound, impl=impl)
    for i, (got, w) in enumerate(zip(tensors, want)):
        assert got.data_ptr() == ptrs[i], "clip_ must work in place"
        assert got.dtype == w.dtype and got.shape == w.shape
        assert torch.equal(got.isnan(), w.isnan()), f"NaN pattern of tensor {i}"
        assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(w)), f"tensor {i} ({got.dtype}, {tuple(got.shape)})"


@pytest.mark.parametrize("bound", [0.5, 0.01, 1e-3])
def test_mixed_dtype_list_matches_clamp(device, native, bound):
    tensors = [_values(s, DTYPES[i % len(DTYPES)], device) for i, s in enumerate(SIZES * 2)]
    _check_parity(tensors, bound)


def test_bound_rounds_like_clamp_in_low_precision(device, native):
    # 0.1 is not representable: the bound is rounded to the storage type first.
    for dtype in (torch.float16, torch.bfloat16):
        t = torch.linspace(0.09, 0.11, 4097, device=device).to(dtype)
        _check_parity([t, -t.clone()], 0.1)


@pytest.mark.parametrize("layout", ["channels_last", "permuted", "unaligned"])
def test_dense_layouts(device, native, layout):
    base = _values((4, 6, 5, 3), torch.float32, device)
    if layout == "channels_last":
        t = base.contiguous(memory_format=torch.channels_last)
    elif layout == "permuted":
        t = base.permute(2, 0, 3, 1)
    else:  # dense but not 16-byte aligned: the scalar path of the CUDA kernel
        buf = torch.zeros(base.numel() + 1, device=device)
        t = buf[1:].view(base.shape)
        t.copy_(base)
    _check_parity([t, _values((33,), torch.float16, device)], 0.5)
    if layout == "unaligned":
        assert buf[0] == 0  # untouched neighbour


def test_many_tensors_and_chunks(device, native):
    # > 110 tensors and > 320 chunks: several argument blocks on CUDA, with a
    # tensor cut across blocks.
    tensors = [_values((i % 37 + 1, 3), DTYPES[i % 3], device) for i in range(250)]
    tensors.insert(100, _values((330 * 16384 + 5,), torch.float32, device))
    tensors.append(_values((700, 16384), torch.bfloat16, device))
    _check_parity(tensors, 0.25)


def test_critic_parameters_in_place(device, native):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(8, 1, 4)).to(device)
    want = [p.detach().clone().clamp_(-0.01, 0.01) for p in net.parameters()]
    ops.clip_(net.parameters(), 0.01, impl="native")  # a generator works, leaves need grad: no error
    for p, w in zip(net.parameters(), want):
        assert torch.equal(p.detach(), w)
        assert p.requires_grad and p.abs().max() <= 0.01


def test_bumps_version_counters_like_clamp(device, native):
    w = torch.randn(4, 3, device=device, requires_grad=True)
    x = torch.randn(2, 4, device=device, requires_grad=True)
    y = (x @ w).sum()  # saves w for backward
    v0 = w._version
    ops.clip_([w], 0.1, impl="native")
    assert w._version > v0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_reference_and_auto_agree(device, native):
    a = [_values((5, 7), torch.float32, device), _values((9,), torch.float16, device)]
    b = [t.clone() for t in a]
    ops.clip_(a, 0.3, impl="reference")
    ops.clip_(b, 0.3)
    for x, y in zip(a, b):
        assert torch.equal(torch.nan_to_num(x), torch.nan_to_num(y))


def test_opcheck(device, native):
    tensors = [torch.randn(5, 3, device=device), torch.randn(17, device=device).half(), torch.randn(2, 2, 2, device=device)]
    torch.library.opcheck(torch.ops.wgan_fast.clip_.default, (tensors, 0.5))


@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_cuda_graph_capture(device, native):
    tensors = [torch.randn(1000, device="cuda"), torch.randn(70000, device="cuda").half()]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        ops.clip_(tensors, 0.5)  # warm-up outside capture
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        ops.clip_(tensors, 0.1)
    fresh = [torch.randn_like(t) * 3 for t in tensors]
    for t, f in zip(tensors, fresh):
        t.copy_(f)
    g.replay()
    torch.cuda.synchronize()
    for t, f in zip(tensors, fresh):
        assert torch.equal(t, f.clamp(-0.1, 0.1))


# ---- bad input ---------------------------------------------------------------

@pytest.mark.parametrize("impl", ["native", "reference"])
@pytest.mark.parametrize("bound", [0.0, -1.0, float("nan"), float("inf"), True, "0.1"])
def test_bad_bound(device, request, impl, bound):
    if impl == "native":
        request.getfixturevalue("native")
    with pytest.raises(ValueError, match="bound must be a finite number > 0"):
        ops.clip_([torch.zeros(3, device=device)], bound, impl=impl)


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_bad_lists(device, request, impl):
    if impl == "native":
        request.getfixturevalue("native")
    with pytest.raises(ValueError, match="non-empty list"):
        ops.clip_([], 0.1, impl=impl)
    with pytest.raises(ValueError, match="single Tensor"):
        ops.clip_(torch.zeros(3, device=device), 0.1, impl=impl)
    with pytest.raises(ValueError, match=r"tensors\[1\] must be a floating-point tensor.*torch.int64"):
        ops.clip_([torch.zeros(3, device=device), torch.zeros(2, dtype=torch.long, device=device)], 0.1, impl=impl)
    with pytest.raises(ValueError, match=r"tensors\[1\] is on meta"):
        ops.clip_([torch.zeros(3, device=device), torch.zeros(2, device="meta")], 0.1, impl=impl)


def test_strided_view_refused_with_its_index(device, native):
    t = torch.randn(8, 8, device=device)
    before = t.clone()
    with pytest.raises(ValueError, match=r"tensors\[1\] of shape \[8, 4\].*not dense"):
        ops.clip_([torch.zeros(2, device=device), t[:, ::2]], 0.1, impl="native")
    assert torch.equal(t, before)  # refused before anything was written
    with pytest.raises(ValueError, match=r"tensors\[0\].*not dense"):
        ops.clip_([torch.zeros(3, device=device).expand(4, 3)], 0.1, impl="native")
    # the C++ check says the same for direct callers of the op
    with pytest.raises(ValueError, match=r"tensors\[0\].*not dense"):
        torch.ops.wgan_fast.clip_([t[:, ::2]], 0.1)
    # the reference accepts any layout
    ops.clip_([t[:, ::2]], 0.1, impl="reference")
    assert torch.equal(t[:, ::2], before[:, ::2].clamp(-0.1, 0.1))
    assert torch.equal(t[:, 1::2], before[:, 1::2])


def test_cpp_checks_bad_bound_and_dtype(device, native):
    with pytest.raises(ValueError, match="bound must be a finite number > 0"):
        torch.ops.wgan_fast.clip_([torch.zeros(3, device=device)], -1.0)
    with pytest.raises(ValueError, match=r"tensors\[0\] must be a floating-point"):
        torch.ops.wgan_fast.clip_([torch.zeros(3, dtype=torch.int32, device=device)], 1.0)
    # (an empty list has no device to dispatch on: the Python wrapper refuses it)
