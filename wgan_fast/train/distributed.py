"""Processes: this process's device and rank, the process group's life, and
the few collectives training needs (torchrun sets the environment)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..errors import DeviceError
from ..runtime import resolve_device


def setup(cfg) -> tuple[int, int, torch.device]:
    """(rank, world_size, device). torchrun's env selects DDP: NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = resolve_device(cfg["device"])  # DeviceError when CUDA is asked for and absent
    use_cuda = want.type == "cuda"
    device = torch.device("cuda", local if cfg["device"] in ("auto", "cuda") else want.index or 0) if use_cuda \
        else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if cfg["sync_bn"] and world > 1 and not use_cuda:
        raise DeviceError("sync_bn: torch's SyncBatchNorm synchronises CUDA tensors only (NCCL); on the CPU (gloo) "
                          "each process normalises its own shard: set --sync-bn false")
    if world > 1 and not dist.is_initialized():
        init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, device


def init_process_group(backend, **kwargs) -> None:
    """dist.init_process_group, such that teardown() frees the group.

    torch.distributed.nn.functional binds `group=group.WORLD` as default
    arguments when first imported, and torch imports it lazily (torch.optim ->
    torch._dynamo), i.e. after the group exists: those defaults then keep the
    group alive past destroy_process_group(), its gloo threads run on into
    interpreter shutdown, and one ended there inside a noexcept destructor
    aborts the process (SIGABRT, "terminate called without an active
    exception"). Imported before the group exists, the defaults are None.
    """
    import torch.distributed.nn  # noqa: F401, PLC0415

    dist.init_process_group(backend, **kwargs)


def teardown() -> None:
    """Free the process group (each rank, after its last collective): its
    backend threads are joined while the interpreter is whole."""
    if dist.is_initialized():
        dist.destroy_process_group()


def flat_all_reduce(world):
    """Average a module's gradients over ranks with one flat all-reduce.

    Used instead of a DDP wrapper: the penalty's create_graph gradient and the
    several critic forwards per step are then no concern of DDP's reducer, and
    every gradient (penalty's included) is reduced exactly once.
    """
    if world == 1:
        return lambda module: None

    def sync(module):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    return sync


def broadcast_from_rank0(modules, world) -> None:
    """Rank 0's parameters and buffers on every rank: an identical start."""
    if world == 1:
        return
    for module in modules:
        for t in module.state_dict().values():
            dist.broadcast(t, 0)


def gather_to_all(obj, world) -> list:
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, world: int, device) -> bool:
    """True on every rank when `flag` is true on any (one all-reduce)."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
