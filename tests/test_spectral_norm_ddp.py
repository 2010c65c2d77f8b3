"""The DDP claim of wgan_fast.nn.spectral_norm: with broadcast_buffers=False,
u and v stay bit-identical on every rank (two CPU processes, gloo, with
different thread counts and different data)."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import wgan_fast
from wgan_fast import train

from helpers import distributed_threads  # noqa: E402


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1 + rank)  # the iteration must not depend on it
    train.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)  # same initial model (and u, v) on both ranks
    critic = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 4, 2, 1),
                           nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(32 * 4 * 4, 1))
    for m in critic.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            wgan_fast.nn.spectral_norm(m, iterate_on_forward=False)
    ddp = nn.parallel.DistributedDataParallel(critic, broadcast_buffers=False)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    torch.manual_seed(100 + rank)  # different data per rank
    for _ in range(4):
        wgan_fast.nn.power_iteration_(critic)
        real, fake = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
        loss = ddp(fake).mean() - ddp(real).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = {k: v for k, v in critic.state_dict().items() if k.endswith(("._u", "._v", "original"))}
    torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
    del ddp, opt  # DDP's reducer holds the group
    train.teardown_distributed()
    left = distributed_threads()
    assert not left, f"rank {rank}: still running after teardown: {left}"


@pytest.mark.parametrize("device", ["cpu"], indirect=True)
def test_ranks_keep_identical_u_v(tmp_path, device, native):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    s0, s1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert set(s0) == set(s1) and len(s0) == 9  # 3 layers x (original, _u, _v)
    for k in s0:
        assert torch.equal(s0[k], s1[k]), f"{k} differs between ranks"
