"""Facts of the native build: what any build of wgan_fast._C must satisfy."""
import os

import pytest
import torch

import wgan_fast
from wgan_fast import ops

# Every op of csrc/ops.cpp, with its schema. The differentiable ones also get
# an autograd formula from Python (wgan_fast/ops); every op a fake kernel.
SCHEMAS = {
    "interpolate": "wgan_fast::interpolate(Tensor real, Tensor fake, Tensor alpha) -> Tensor",
    "interpolate_backward": (
        "wgan_fast::interpolate_backward(Tensor grad, Tensor real, Tensor fake, Tensor alpha, "
        "bool[3] output_mask) -> (Tensor, Tensor, Tensor)"
    ),
    "grad_penalty": "wgan_fast::grad_penalty(Tensor grad, float center, bool one_sided, float eps) -> (Tensor, Tensor)",
    "grad_penalty_backward": (
        "wgan_fast::grad_penalty_backward(Tensor? grad_penalty, Tensor? grad_norm, Tensor grad, Tensor norm, "
        "float center, bool one_sided) -> Tensor"
    ),
    "clip_": "wgan_fast::clip_(Tensor(a!)[] tensors, float bound) -> ()",
    "spectral_norm_power_iteration_": (
        "wgan_fast::spectral_norm_power_iteration_(Tensor[] weights, Tensor(a!)[] us, Tensor(b!)[] vs, "
        "int n_power_iterations, float eps) -> Tensor"
    ),
}
DIFFERENTIABLE = {"interpolate", "interpolate_backward", "grad_penalty", "grad_penalty_backward"}


def _has_kernel(op: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"wgan_fast::{op}", key)


def test_build_info_matches_running_torch(device, native):
    info = dict(wgan_fast._C.build_info())
    assert set(info) >= {"cuda", "cuda_archs", "cuda_version", "torch_version", "cpu_flags", "cxx_standard"}
    assert info["torch_version"] == torch.__version__
    assert info["cxx_standard"] >= 202002  # torch 2.14's headers need C++20
    assert ops.BUILD_INFO == info
    if info["cuda"]:
        assert info["cuda_version"] == torch.version.cuda, info
        assert info["cuda_archs"], info
    else:
        assert info["cuda_archs"] == info["cuda_version"] == "", info
    if device.type == "cuda":  # the fixture let a CUDA device through: CUDA kernels are in
        assert info["cuda"] is True, info


def test_every_op_registered_with_its_schema(device, native):
    registered = sorted(n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("wgan_fast::"))
    assert registered == sorted(SCHEMAS)
    cuda_built = bool(ops.BUILD_INFO["cuda"])
    for op, schema in SCHEMAS.items():
        assert str(getattr(torch.ops.wgan_fast, op).default._schema) == schema
        assert _has_kernel(op, "CPU"), f"{op}: no CPU kernel"
        assert _has_kernel(op, "CUDA") == cuda_built, f"{op}: CUDA kernel registered={_has_kernel(op, 'CUDA')}, build cuda={cuda_built}"
        assert _has_kernel(op, "Meta"), f"{op}: no fake kernel (registered by wgan_fast.ops)"
        assert _has_kernel(op, "Autograd") == (op in DIFFERENTIABLE), f"{op}: autograd registration"


def test_every_kernel_runs_on_its_device(device, native):
    # One small call per op through the dispatcher, checked against the reference.
    x, y = torch.randn(3, 4, device=device), torch.randn(3, 4, device=device)
    a = torch.rand(3, device=device)
    torch.testing.assert_close(torch.ops.wgan_fast.interpolate(x, y, a), ops.interpolate_ref(x, y, a))
    gr, gf, ga = torch.ops.wgan_fast.interpolate_backward(y, x, x, a, [True, True, True])
    torch.testing.assert_close(gr, a[:, None] * y)
    torch.testing.assert_close(gf, (1 - a[:, None]) * y)
    assert torch.equal(ga, torch.zeros_like(a))  # real == fake
    p, n = torch.ops.wgan_fast.grad_penalty(x, 1.0, False, 1e-12)
    p_ref, n_ref = ops.grad_penalty_ref(x)
    torch.testing.assert_close((p, n), (p_ref, n_ref))
    d = torch.ops.wgan_fast.grad_penalty_backward(torch.ones_like(n), None, x, n, 1.0, False)
    torch.testing.assert_close(d, (2 * (n - 1) / n)[:, None] * x)
    t = 3 * torch.randn(50, device=device)
    want = t.clamp(-0.5, 0.5)
    torch.ops.wgan_fast.clip_([t], 0.5)
    assert torch.equal(t, want)
    w = torch.randn(1, 5, 4, device=device)
    u, v = torch.randn(5, device=device), torch.randn(4, device=device)
    u_ref, v_ref = u.clone(), v.clone()
    sigma = torch.ops.wgan_fast.spectral_norm_power_iteration_([w], [u], [v], 3, 1e-12)
    sigma_ref = ops.spectral_norm_power_iteration_ref([w], [u_ref], [v_ref], 3, 1e-12)
    torch.testing.assert_close((u, v), (u_ref, v_ref))
    torch.testing.assert_close(sigma, sigma_ref.to(sigma.device))


def test_ci_builds_cuda_for_hopper():
    # .ci/run sets WGAN_FAST_EXPECT_CUDA=1 where the build must have CUDA
    # kernels for sm_90 (the lack of a GPU on the build machine must not let
    # a CPU-only build pass). WGAN_FAST_REQUIRE_NATIVE=1 makes the `native`
    # fixture of every native test fail instead of skip.
    if os.environ.get("WGAN_FAST_EXPECT_CUDA") != "1":
        pytest.skip("WGAN_FAST_EXPECT_CUDA is not 1: no CUDA build is expected here")
    assert ops.native_available("cpu"), ops.why_unavailable("cpu")
    info = wgan_fast._C.build_info()
    assert info["cuda"] is True, info
    archs = info["cuda_archs"].replace(" ", ";").split(";")
    assert any(a.startswith("9.0") for a in archs), info


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present; covered by the CUDA variants of the op tests")
def test_cuda_availability_tells_the_truth():
    why = ops.why_unavailable("cuda")
    assert not ops.native_available("cuda") and why
    if ops.native_available("cpu"):
        assert "not available" in why or "without CUDA" in why
    else:  # no extension at all: the same reason on every device
        assert why == ops.why_unavailable("cpu")
    with pytest.raises(RuntimeError, match="impl='native'"):
        ops.interpolate(torch.zeros(1, 1).to("meta"), torch.zeros(1, 1).to("meta"), torch.zeros(1).to("meta"), impl="native")

