"""Fused interpolate + gradient penalty against the eager PyTorch ways.

Variants, all forward + backward:
  native     wgan_fast's kernels
  reference  the ops' PyTorch references (the spec; what impl="reference" runs)
  stock      how public WGAN-GP code writes it: alpha*real + (1-alpha)*fake and
             ((grad.view(B, -1).norm(2, dim=1) - 1) ** 2)
"""
import pytest
import torch

from bench_utils import DEVICES, sync
from wgan_fast import ops


def _stock_interpolate(real, fake, alpha):
    a = alpha.view(-1, *([1] * (real.dim() - 1)))
    return a * real + (1 - a) * fake


def _stock_penalty(grad):
    return (grad.reshape(grad.shape[0], -1).norm(2, dim=1) - 1) ** 2


def _make(device, B, shape):
    real = torch.randn((B,) + shape, device=device, requires_grad=True)
    fake = torch.randn((B,) + shape, device=device, requires_grad=True)
    alpha = torch.rand(B, device=device, requires_grad=True)
    grad = torch.randn((B,) + shape, device=device, requires_grad=True)
    return real, fake, alpha, grad


def _step_fn(op, variant, real, fake, alpha, grad):
    if variant == "stock":
        interp, pen = _stock_interpolate, _stock_penalty
    else:
        impl = variant
        interp = lambda r, f, a: ops.interpolate(r, f, a, impl=impl)  # noqa: E731
        pen = lambda g: ops.grad_penalty(g, impl=impl)  # noqa: E731
    g_out = torch.ones_like(real)
    g_pen = torch.full((real.shape[0],), 1.0 / real.shape[0], device=real.device)

    def step():
        # autograd.grad, not backward: no accumulation into .grad is timed.
        outs, grads, inputs = [], [], []
        if op in ("interpolate", "both"):
            outs.append(interp(real, fake, alpha))
            grads.append(g_out)
            inputs += [real, fake, alpha]
        if op in ("grad_penalty", "both"):
            outs.append(pen(grad))
            grads.append(g_pen)
            inputs.append(grad)
        torch.autograd.grad(outs, inputs, grads)
        sync(real.device)

    return step


@pytest.mark.parametrize("variant", ["native", "reference", "stock"])
@pytest.mark.parametrize("op", ["interpolate", "grad_penalty", "both"])
@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 28, 28)], ids=["3x64x64", "1x28x28"])
@pytest.mark.parametrize("B", [64, 256])
@pytest.mark.parametrize("device", DEVICES)
def test_fwd_bwd(benchmark, device, B, shape, op, variant):
    if variant == "native" and not ops.native_available(device):
        pytest.skip(f"native kernels unavailable: {ops.why_unavailable(device)}")
    tensors = _make(device, B, shape)
    step = _step_fn(op, variant, *tensors)
    step()  # warm-up (allocator, first-call costs)
    benchmark.group = f"{device} {op} B={B} {'x'.join(map(str, shape))}"
    benchmark.extra_info.update(case=benchmark.group, variant=variant, baseline="reference" if variant != "reference" else None)
    benchmark(step)


@pytest.mark.parametrize("variant", ["native", "reference"])
@pytest.mark.parametrize("device", [p for p in DEVICES if not isinstance(p, str)])
def test_bandwidth_b1024(benchmark, device, variant):
    """Both ops fwd + bwd at B=1024, 3x64x64: achieved bytes/s vs a device copy."""
    if variant == "native" and not ops.native_available(device):
        pytest.skip(f"native kernels unavailable: {ops.why_unavailable(device)}")
    B, shape = 1024, (3, 64, 64)
    tensors = _make(device, B, shape)
    step = _step_fn("both", variant, *tensors)
    step()
    n = B * 3 * 64 * 64
    # interpolate fwd 3N, bwd 5N; grad_penalty fwd 1N, bwd 2N (elements of 4 bytes)
    bytes_moved = 11 * n * 4
    src = torch.empty(4 * n, device=device)
    dst = torch.empty_like(src)
    copy_times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        copy_times.append(start.elapsed_time(end) / 1e3)
    copy_bw = 2 * src.numel() * 4 / sorted(copy_times)[len(copy_times) // 2]
    benchmark.group = f"{device} both B=1024 3x64x64"
    benchmark.extra_info.update(case=benchmark.group, variant=variant, baseline="reference" if variant != "reference" else None)
    benchmark(step)
    if benchmark.stats is None:  # --benchmark-disable
        return
    achieved = bytes_moved / benchmark.stats.stats.median
    benchmark.extra_info.update(achieved_GBps=achieved / 1e9, copy_GBps=copy_bw / 1e9, fraction_of_copy_bw=achieved / copy_bw)
