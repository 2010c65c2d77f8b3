"""Weight clipping of all critic parameters, in place.

Variants:
  native   wgan_fast.ops.clip_ (one parallel pass / one multi-tensor launch)
  foreach  torch._foreach_clamp_min_ + torch._foreach_clamp_max_
  loop     `for p in critic.parameters(): p.data.clamp_(-c, c)` (public trainers)
Ratios are printed against foreach (native's baseline) and loop (foreach's);
native vs loop is their product, see docs/performance_lipschitz.md.
"""
import pytest
import torch

from bench_utils import DEVICES, sync
from critics import CRITICS
from wgan_fast import ops

BOUND = 0.01


def _step(variant, params, device):
    if variant == "native":
        def step():
            ops.clip_(params, BOUND, impl="native")
            sync(device)
    elif variant == "foreach":
        def step():
            torch._foreach_clamp_min_(params, -BOUND)
            torch._foreach_clamp_max_(params, BOUND)
            sync(device)
    else:
        def step():
            for p in params:
                p.clamp_(-BOUND, BOUND)
            sync(device)
    return step


@pytest.mark.parametrize("variant", ["native", "foreach", "loop"])
@pytest.mark.parametrize("critic", list(CRITICS))
@pytest.mark.parametrize("device", DEVICES)
def test_clip(benchmark, device, critic, variant):
    if variant == "native" and not ops.native_available(device):
        pytest.skip(f"native kernels unavailable: {ops.why_unavailable(device)}")
    net = CRITICS[critic]().to(device)
    params = [p.detach() for p in net.parameters()]
    with torch.no_grad():
        for p in params:
            p.mul_(100)  # most values outside the bound: every store is a real clamp
    step = _step(variant, params, device)
    step()
    n = sum(p.numel() for p in params)
    benchmark.group = f"{device} clip {critic} ({n / 1e6:.2f}M params, {len(params)} tensors)"
    baseline = {"native": "foreach", "foreach": "loop", "loop": None}[variant]
    benchmark.extra_info.update(case=benchmark.group, variant=variant, baseline=baseline)
    benchmark(step)
