"""Whole-iteration CUDA graphs: capture one training iteration (n_critic
critic steps with the penalty's double backward, optimiser steps, clipping or
spectral-norm updates, the generator step, the EMA) once, then replay it.

A replay launches the whole iteration with one call: at DCGAN sizes a WGAN-GP
iteration is hundreds of small kernels, and launching them one by one from
Python costs more than running them. The iteration's inputs (real batches,
labels, noise, penalty alphas, the EMA weight) are copied into static buffers
before each replay, so any loader (resident tensors, DALI) and the seeded
noise stream stay exactly as in eager mode: eager and graphed runs draw the
same numbers and, in fp32, end with the same parameters (a GPU test).

What must hold for capture (the trainer checks and says which failed):
CUDA, one process (NCCL collectives are not captured), no fp16 GradScaler
(its step reads the overflow flag on the host), optimisers created with
`capturable=True` and tensor learning rates (the LR schedule fills them in
place), penalties every k-th critic step only when k divides n_critic (the
captured pattern must repeat). A capture that fails anyway falls back to
eager with a warning saying why; an input of another shape (e.g. a partial
last batch) runs that iteration eagerly, never a stale graph.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch


def unsupported_reason(cfg: dict, device: torch.device, world: int, precision: str) -> str | None:
    """Why CUDA graphs cannot be used for this run, or None."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if world > 1:
        return "several processes: the gradient all-reduce (NCCL) is not captured"
    if precision == "fp16":
        return "fp16: the GradScaler's step reads the overflow flag on the host"
    if cfg["n_critic"] % cfg["lazy_reg"] != 0:
        return f"lazy_reg={cfg['lazy_reg']} does not divide n_critic={cfg['n_critic']} (the pattern would change)"
    return None


class GraphedIteration:
    """Run `fn(*tensors)` eagerly for `warmup` calls (on a side stream, as
    capture requires), then capture it as a CUDA graph and replay it.

    `tensors` is a flat sequence of tensors or None; each call copies them
    into the static buffers the graph reads. `fn` must do all its work on the
    device, with no host synchronisation and no Python state that changes
    between iterations (everything that varies is an input tensor).
    """

    def __init__(self, fn: Callable, warmup: int = 3, graph_factory: Callable = None):
        self.fn, self.warmup = fn, warmup
        self.graph_factory = graph_factory or torch.cuda.CUDAGraph
        self.graph, self.static, self.calls = None, None, 0
        self.failure: str | None = None
        self._warned_shape = False

    @property
    def active(self) -> bool:
        return self.graph is not None

    def _signature(self, tensors):
        return [None if t is None else (t.shape, t.dtype, t.device) for t in tensors]

    def _eager_on_side_stream(self, tensors):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.fn(*tensors)
        torch.cuda.current_stream().wait_stream(side)

    def _capture(self, tensors) -> bool:
        self.static = [None if t is None else t.clone() for t in tensors]
        graph = self.graph_factory()
        try:
            torch.cuda.synchronize()
            with torch.cuda.graph(graph):
                self.fn(*self.static)
        except Exception as exc:  # noqa: BLE001 - any capture failure: continue eagerly, say why
            self.failure = f"{type(exc).__name__}: {exc}"
            self.static = None
            torch.cuda.synchronize()
            warnings.warn(f"CUDA graph capture of the training iteration failed ({self.failure}); "
                          "training continues eagerly", RuntimeWarning, stacklevel=3)
            return False
        self.graph = graph
        return True

    def __call__(self, tensors: Sequence):
        tensors = list(tensors)
        if self.failure is not None:
            return self.fn(*tensors)
        if self.graph is None:
            if self.calls < self.warmup:
                self.calls += 1
                return self._eager_on_side_stream(tensors)
            if not self._capture(tensors):
                return self.fn(*tensors)
            self.graph.replay()  # capture records without running: this replay is the iteration
            return None
        if self._signature(tensors) != self._signature(self.static):
            if not self._warned_shape:
                warnings.warn("training iteration inputs changed shape (e.g. a partial batch): that iteration runs "
                              "eagerly, the graph is kept for the usual shape", RuntimeWarning, stacklevel=2)
                self._warned_shape = True
            return self.fn(*tensors)
        for s, t in zip(self.static, tensors):
            if s is not None:
                s.copy_(t, non_blocking=True)
        self.graph.replay()
        return None
