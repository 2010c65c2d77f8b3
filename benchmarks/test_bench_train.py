"""Training throughput: one generator iteration (n_critic = 5 critic steps + one
generator step), stock vs best-stock vs wgan_fast, measured in the same run.

Models (wgan_fast.models, one architecture for every variant):
  dcgan64   the DCGAN-64 pair (batch 64 and 256)
  resnet32  Gulrajani et al.'s CIFAR ResNet pair (128 channels)
  mlp       the four-layer MLP pair of the MNIST reports (28x28)
Algorithms: wgan-gp (also without the penalty: the penalty overhead is
time(with) / time(without) of the same variant), wgan-clip, wgan-sn.

Variants:
  stock       what public WGAN code does: eager fp32, torch's layers,
              separate real and fake critic forwards, alpha*real+(1-alpha)*fake
              and an autograd.grad penalty with grad.reshape(B,-1).norm, a Python
              loop of p.data.clamp_, torch's spectral_norm (iterates on every
              forward), per-parameter Adam/RMSprop, critic weights receive
              gradients in the generator step
  best-stock  stock plus bf16 autocast (where the device has bf16 arithmetic),
              channels_last, fused Adam (foreach RMSprop), foreach clipping,
              one concatenated real+fake forward
  wgan_fast   the trainer's own steps (wgan_fast.step) and models: fused
              interpolate + penalty, critic layers with the cheap double
              backward, native clip and spectral norm (one power iteration
              per critic step), the trainer's default precision (bf16 on CUDA,
              fp32 on CPU), channels_last and fused Adam on CUDA, and on CUDA
              the whole iteration replayed as one CUDA graph, as the trainer
              runs it (extra_info cuda_graph says whether it was captured)
  wgan_fast-bf16  (CPU with native bf16 only) wgan_fast with --precision bf16

extra_info per case: images/s (real images consumed), generator it/s, FLOPs
of one iteration (torch.utils.flop_counter) and the achieved TFLOP/s, the
fraction of the bf16 matmul peak measured in the same session, on CPU the
achieved rate over the fp32 matmul rate (vs_fp32_matmul: oneDNN's convolutions
can beat sgemm, so it can pass 1), and on CUDA the peak memory. Under
--benchmark-disable (the CI smoke run) every case runs once at batch 8: a
check that each path works, not a measurement.
"""
import time
from contextlib import nullcontext

import pytest
import torch
from torch.nn.utils import parametrizations as tp
from torch.utils.flop_counter import FlopCounterMode

from bench_utils import DEVICES, sync
from wgan_fast import config, graphs, models
from wgan_fast import nn as wnn
from wgan_fast.nn import penalty_layers
from wgan_fast.step import Metrics, Parts, critic_step, generator_step
from wgan_fast.train.state import autocast_of, make_optimizer

N_CRITIC = 5
MODELS = {
    "dcgan64": dict(model="dcgan", resolution=64, channels=3, z_dim=128, g_base=64, d_base=64),
    "resnet32": dict(model="resnet", resolution=32, channels=3, z_dim=128, g_base=128, d_base=128),
    "mlp": dict(model="mlp", resolution=28, channels=1, z_dim=100, g_base=64, d_base=64),
}
CASES = [  # (model, batch, algorithm, penalty)
    ("dcgan64", 64, "wgan-gp", True), ("dcgan64", 64, "wgan-gp", False), ("dcgan64", 256, "wgan-gp", True),
    ("dcgan64", 256, "wgan-gp", False), ("dcgan64", 64, "wgan-clip", False), ("dcgan64", 64, "wgan-sn", False),
    ("resnet32", 64, "wgan-gp", True), ("resnet32", 64, "wgan-gp", False), ("resnet32", 64, "wgan-clip", False),
    ("resnet32", 64, "wgan-sn", False),
    ("mlp", 64, "wgan-gp", True), ("mlp", 64, "wgan-gp", False), ("mlp", 64, "wgan-clip", False),
    ("mlp", 64, "wgan-sn", False),
]
VARIANTS = ["stock", "best-stock", "wgan_fast", "wgan_fast-bf16"]


def bf16_native(device) -> bool:
    """bf16 arithmetic in hardware: CUDA (Ampere+) or a CPU with AVX512-BF16/AMX."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


_PEAK = {}


def matmul_peak_tflops(device, dtype=torch.bfloat16) -> float:
    """Measured matmul TFLOP/s on this device in this dtype (the denominator of a fraction of peak)."""
    key = (device, dtype)
    if key not in _PEAK:
        n = 8192 if torch.device(device).type == "cuda" else 1024
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        sync(device)
        reps, best = 10 if torch.device(device).type == "cuda" else 3, float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            sync(device)
            best = min(best, time.perf_counter() - t0)
        _PEAK[key] = 2 * n ** 3 / best / 1e12
    return _PEAK[key]


def _cfg(model, algorithm, penalty, batch, precision):
    over = dict(MODELS[model], algorithm=algorithm, batch_size=batch, n_critic=N_CRITIC, precision=precision,
                dataset="cifar10" if MODELS[model]["channels"] == 3 else "mnist")
    if algorithm == "wgan-gp" and not penalty:
        over["gp_weight"] = 0.0
    return config.resolve({k: str(v) for k, v in over.items()})


def make_stock(cfg, device, best):
    """One iteration of the stock (best=False) or best-stock (best=True) variant."""
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    G, D = models.build(cfg["model"], resolution=cfg["resolution"], channels=cfg["channels"], z_dim=cfg["z_dim"],
                        g_base=cfg["g_base"], d_base=cfg["d_base"])
    penalty_layers.convert_layers(D, fast=False)  # torch's own layers
    algo, B, Z = cfg["algorithm"], cfg["batch_size"], cfg["z_dim"]
    if algo == "wgan-sn":
        for m in list(D.modules()):
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                tp.spectral_norm(m)
    G, D = G.to(device), D.to(device)
    memory_format = torch.channels_last if best and cfg["model"] != "mlp" else torch.contiguous_format
    G, D = G.to(memory_format=memory_format), D.to(memory_format=memory_format)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if best and bf16_native(device) \
        else nullcontext
    if algo == "wgan-clip":
        opt = lambda ps, lr: torch.optim.RMSprop(ps, lr=lr, foreach=best)  # noqa: E731
    else:
        opt = lambda ps, lr: torch.optim.Adam(ps, lr=lr, betas=(0.0, 0.9), **(  # noqa: E731
            {"fused": True} if best else {"foreach": False}))
    opt_g, opt_d = opt(G.parameters(), cfg["lr_g"]), opt(D.parameters(), cfg["lr_d"])
    params_d = list(D.parameters())
    gp = algo == "wgan-gp" and cfg["gp_weight"] > 0

    def iteration(real):
        for _ in range(N_CRITIC):
            z = torch.randn(B, Z, device=device)
            with autocast():
                fake = G(z).detach()
                if best:
                    scores = D(torch.cat([real, fake])).float()
                    d_real, d_fake = scores[:B], scores[B:]
                else:
                    d_real, d_fake = D(real), D(fake)
                loss = d_fake.mean() - d_real.mean()
                if gp:
                    alpha = torch.rand(B, 1, 1, 1, device=device)
                    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                    (g,) = torch.autograd.grad(D(x_hat).float().sum(), x_hat, create_graph=True)
                    loss = loss + cfg["gp_weight"] * ((g.float().reshape(B, -1).norm(2, dim=1) - 1) ** 2).mean()
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            if algo == "wgan-clip":
                if best:
                    with torch.no_grad():
                        torch._foreach_clamp_min_(params_d, -cfg["clip"])
                        torch._foreach_clamp_max_(params_d, cfg["clip"])
                else:
                    for p in params_d:
                        p.data.clamp_(-cfg["clip"], cfg["clip"])
        z = torch.randn(B, Z, device=device)
        with autocast():
            loss_g = -D(G(z)).float().mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return iteration, memory_format


class WganFastIteration:
    """One iteration of the trainer's own steps, as wgan_fast.train runs them:
    the noise drawn outside the iteration and passed in, and on CUDA (where
    graphs.unsupported_reason allows) the iteration replayed as one CUDA graph."""

    def __init__(self, cfg, device):
        torch.manual_seed(0)
        self.device, self.batch, self.z_dim = device, cfg["batch_size"], cfg["z_dim"]
        G, D = models.from_config(cfg, device)
        precision, autocast = autocast_of(cfg, device)
        self.graph_off = graphs.unsupported_reason(cfg, device, 1, precision) if cfg["cuda_graphs"] \
            else "cuda_graphs=false"
        capturable = self.graph_off is None
        opt_g = make_optimizer(cfg, G.parameters(), cfg["lr_g"], device, capturable=capturable)
        opt_d = make_optimizer(cfg, D.parameters(), cfg["lr_d"], device, capturable=capturable)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        parts = Parts(cfg, G, D, opt_g, opt_d, scaler, scaler, autocast, lambda m: None, Metrics(device))
        sn = cfg["algorithm"] == "wgan-sn"

        def iteration(*inputs):
            reals, zs, alphas = (inputs[k * N_CRITIC:(k + 1) * N_CRITIC] for k in range(3))
            for i in range(N_CRITIC):
                if sn:
                    wnn.power_iteration_(D)
                critic_step(parts, reals[i], None, zs[i], alphas[i], critic_iter=i)
            generator_step(parts, inputs[-1], None)

        self.eager = iteration
        self.graph = graphs.GraphedIteration(iteration) if capturable else None
        self.memory_format = torch.channels_last if device.type == "cuda" and cfg["model"] != "mlp" \
            else torch.contiguous_format

    def _inputs(self, real):
        B, dev = self.batch, self.device
        zs = [torch.randn(B, self.z_dim, device=dev) for _ in range(N_CRITIC)]
        alphas = [torch.rand(B, device=dev) for _ in range(N_CRITIC)]
        return [real] * N_CRITIC + zs + alphas + [torch.randn(B, self.z_dim, device=dev)]

    def __call__(self, real):
        if self.graph is None:
            self.eager(*self._inputs(real))
        else:
            self.graph(self._inputs(real))

    def run_eagerly(self, real):
        self.eager(*self._inputs(real))

    def capture(self, real):
        """Run until the graph is captured (or its capture failed); no-op without a graph."""
        while self.graph is not None and not self.graph.active and self.graph.failure is None:
            self(real)

    def graph_status(self) -> str:
        if self.graph is None:
            return f"off: {self.graph_off}"
        if self.graph.failure is not None:
            return f"capture failed: {self.graph.failure}"
        return "captured" if self.graph.active else "not captured yet"


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker: its per-module backward
    hooks make autograd.grad(create_graph=True) on a leaf x_hat raise
    ("A leaf node was passed to _will_engine_execute_node"), and we only need the total."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn) -> int:
    """FLOPs of one call of fn (torch.utils.flop_counter's formulas, totals only)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def _case_id(case):
    model, batch, algo, penalty = case
    return f"{model}-B{batch}-{algo}" + ("" if penalty or algo != "wgan-gp" else "-no-penalty")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@pytest.mark.parametrize("device", DEVICES)
def test_train_iteration(benchmark, device, case, variant):
    model, batch, algo, penalty = case
    device = torch.device(device)
    if variant == "wgan_fast-bf16" and (device.type == "cuda" or not bf16_native(device)):
        pytest.skip("wgan_fast-bf16 is the CPU's bf16 variant (CUDA's wgan_fast is bf16 already)"
                    if device.type == "cuda" else "this CPU has no native bf16 arithmetic")
    smoke = benchmark.disabled
    if smoke and batch != 64:
        pytest.skip("smoke run: the batch-64 case runs the same code")
    B = 8 if smoke else batch
    precision = "bf16" if variant == "wgan_fast-bf16" else "auto"
    cfg = _cfg(model, algo, penalty, B, precision)
    ours = WganFastIteration(cfg, device) if variant.startswith("wgan_fast") else None
    if ours:
        step, eager_step, fmt = ours, ours.run_eagerly, ours.memory_format
    else:
        step, fmt = make_stock(cfg, device, best=variant == "best-stock")
        eager_step = step
    shape = (B, cfg["channels"], cfg["resolution"], cfg["resolution"])
    real = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=fmt)

    def run():
        step(real)
        sync(device)

    def run_eagerly():  # what the FLOP counter sees: a graph replay dispatches no operators
        eager_step(real)
        sync(device)

    name = _case_id((model, batch, algo, penalty))
    benchmark.group = f"{device.type} train {name}"
    benchmark.extra_info.update(case=f"{device.type} train {name}", variant=variant,
                                baseline="stock" if variant != "stock" else None)
    if smoke:  # the FLOP count too: it runs every path under a dispatch mode
        benchmark(lambda: count_flops(run_eagerly))
        return
    run()  # warm-up: oneDNN/cuDNN plans, allocator
    flop_total = count_flops(run_eagerly)
    if ours:
        ours.capture(real)
        sync(device)
        benchmark.extra_info["cuda_graph"] = ours.graph_status()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rounds = (3 if model != "mlp" else 10) if device.type == "cpu" else 20
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    median = benchmark.stats.stats.median
    tflops = flop_total / median / 1e12
    benchmark.extra_info.update(gen_iters_per_s=1 / median, images_per_s=N_CRITIC * batch / median,
                                gflop_per_iter=flop_total / 1e9, tflops=tflops,
                                frac_bf16_peak=tflops / matmul_peak_tflops(str(device)))
    if device.type == "cpu":  # achieved rate / fp32 matmul rate: the fp32 variants are bound by that ceiling
        benchmark.extra_info["vs_fp32_matmul"] = tflops / matmul_peak_tflops(str(device), torch.float32)
    if device.type == "cuda":
        benchmark.extra_info["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    if algo == "wgan-gp":  # the penalty overhead pairs this case with its no-penalty twin
        benchmark.extra_info["penalty_pair"] = f"{device.type} train {_case_id((model, batch, algo, True))}"

