"""Helpers shared by the tests (importable; fixtures live in conftest.py)."""
import gzip
import os
import time

import numpy as np
import pytest
import torch

from wgan_fast import config, ops

# CUDA variants of every test run when a GPU is present. Native-kernel tests
# additionally need the kernels (the `native` fixture says why not).
CUDA_SKIP_REASON = None if torch.cuda.is_available() else "no CUDA device on this machine: CUDA variants skipped"

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(CUDA_SKIP_REASON is not None, reason=str(CUDA_SKIP_REASON))),
]


def make_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as t, stored in the named layout."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        assert t.dim() == 4
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other element of a wider buffer
        big = torch.empty(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype, device=t.device)
        view = big[..., ::2]
        view.copy_(t)
        return view
    if layout == "batch_inner":  # batch dimension not outermost in memory
        perm = list(range(1, t.dim())) + [0]
        inv = [perm.index(i) for i in range(t.dim())]
        return t.permute(*perm).contiguous().permute(*inv)
    raise ValueError(layout)


LAYOUTS = ["contiguous", "channels_last", "strided", "batch_inner"]


# ---- tiny training runs -------------------------------------------------------------

class TinyImages:
    """A seeded stream of small random 'images' in [-1, 1] with labels.

    Batch k depends only on (seed, k), like the real data streams, so a resumed
    run sees the same batches.
    """

    def __init__(self, shape=(1, 28, 28), batch=8, seed=0, nan_after=None):
        self.shape, self.batch, self.seed, self.k, self.nan_after = shape, batch, seed, 0, nan_after

    def next(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.k)
        x = torch.rand((self.batch,) + self.shape, generator=g) * 2 - 1
        y = torch.randint(0, 10, (self.batch,), generator=g)
        if self.nan_after is not None and self.k >= self.nan_after:
            x = x * float("nan")
        self.k += 1
        return x, y

    def state_dict(self):
        return {"k": self.k}

    def load_state_dict(self, s):
        self.k = s["k"]


def tiny_cfg(tmp_path, **kw):
    base = dict(dataset="mnist", model="dcgan", resolution=28, channels=1, z_dim=16, g_base=8, d_base=8,
                batch_size=8, steps=3, n_critic=2, log_every=1, sample_every=2, ckpt_every=2, n_samples=4,
                out_dir=str(tmp_path), tensorboard=False, name="run", device="cpu")
    base.update(kw)
    return config.resolve({k: v for k, v in base.items()})


def write_idx(path, array, compress):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


def distributed_threads(wait_s=5.0):
    """Names of this process's threads that belong to a torch.distributed group: the gloo backend's
    workers and transport loop, the TCP store's server (Linux: read from /proc).

    A joined thread's /proc entry can outlast pthread_join by a moment (the kernel wakes the joiner
    before it reaps the thread), so leftovers get up to `wait_s` to go; a live group's threads never do.
    """
    deadline = time.monotonic() + wait_s
    while True:
        names = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    names.append(f.read().strip())
            except FileNotFoundError:  # the thread ended since listdir
                pass
        left = sorted(n for n in names if n.startswith(("pt_gloo", "gloo_", "pt_tcpstore")))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
