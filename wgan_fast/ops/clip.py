"""clip_: weight clipping of a WGAN critic (Arjovsky et al.), in place.

`clip_(tensors, bound)` clamps every tensor of the list in place to
[-bound, bound], with torch.clamp's semantics: the bound is rounded to each
tensor's dtype, NaN stays NaN. The list may mix float32, float64, float16 and
bfloat16 tensors; all must be on one device.

Native path: CPU, one parallel pass over (tensor, chunk) work items; CUDA, one
multi-tensor launch per full kernel-argument block (up to 110 tensors and 320
chunks of 16384 elements, in the manner of apex's multi_tensor_apply), with
no host synchronisation and no allocation, so it may be captured in a CUDA
graph.

Layouts: a tensor must be dense in memory (contiguous, channels_last, any
permutation; parameters always are). A strided view with gaps, or an
overlapping (expanded) tensor, is refused with an error that names its index
in the list, rather than silently skipped or clamped through a copy: clamp
its base tensor instead. The reference path accepts any layout.

`clip_ref` is the specification: a Python loop of torch.clamp_.
"""
from __future__ import annotations

import math

import torch

from . import _native


def _check(tensors, bound):
    if isinstance(tensors, torch.Tensor):
        raise ValueError("tensors must be a list of tensors, got a single Tensor; wrap it in a list")
    tensors = list(tensors)  # accepts generators such as module.parameters()
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound) or bound <= 0:
        raise ValueError(f"bound must be a finite number > 0, got {bound!r}")
    if not tensors:
        raise ValueError("tensors must be a non-empty list of tensors")
    device = None
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"tensors[{i}] must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(
                f"tensors[{i}] must be a floating-point tensor (float32, float64, float16 or bfloat16), "
                f"got {t.dtype} of shape {tuple(t.shape)}"
            )
        if device is None:
            device = t.device
        elif t.device != device:
            raise ValueError(f"tensors[{i}] is on {t.device} but tensors[0] is on {device}: all tensors must be on one device")
    return tensors, device


def clip_ref(tensors, bound):
    """Reference: `for t in tensors: t.clamp_(-bound, bound)`."""
    tensors, _ = _check(tensors, bound)
    with torch.no_grad():
        for t in tensors:
            t.clamp_(-bound, bound)


def clip_(tensors, bound, *, impl="auto"):
    """Clamp every tensor of `tensors` in place to [-bound, bound]; returns None.

    `tensors` is a list (or any iterable, e.g. `critic.parameters()`) of
    floating-point tensors on one device. Runs under no_grad: it is an update
    of parameters, like an optimizer step, not part of the graph.
    """
    tensors, device = _check(tensors, bound)
    if not _native.use_native(impl, device):
        return clip_ref(tensors, bound)
    # Layouts are checked by the op itself (all tensors before any write):
    # a tensor that is not dense raises ValueError naming its index.
    with torch.no_grad():
        torch.ops.wgan_fast.clip_(tensors, float(bound))
    # The dispatcher does not bump version counters for a custom op's mutated
    # arguments: do it, so that autograd detects use of a clipped tensor saved
    # for backward, as it would after torch.clamp_.
    torch.autograd.graph.increment_version(tensors)


def _register() -> None:
    @torch.library.register_fake("wgan_fast::clip_")
    def _(tensors, bound):
        return None


if _native._C is not None:
    _register()
