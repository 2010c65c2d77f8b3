"""interpolate: x_hat = alpha * real + (1 - alpha) * fake, alpha per sample.

`interpolate_ref` is the specification; the native op
(`torch.ops.wgan_fast.interpolate`) does the same in one memory pass and its
backward (`interpolate_backward`) in one more, with its own differentiable
backward so any order of derivatives works.
"""
from __future__ import annotations

import torch

from . import _native
from ._native import check_floating, opmath_dtype


def _check(real, fake, alpha) -> None:
    check_floating(real, "real")
    check_floating(fake, "fake")
    check_floating(alpha, "alpha")
    if real.dim() < 1:
        raise ValueError("real must have a batch dimension, got a 0-dim tensor")
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got real {tuple(real.shape)} and fake {tuple(fake.shape)}"
        )
    if real.dtype != fake.dtype:
        raise ValueError(f"real and fake must have the same dtype, got real {real.dtype} and fake {fake.dtype}")
    if alpha.dim() != 1 or alpha.shape[0] != real.shape[0]:
        raise ValueError(
            f"alpha must have shape (B,) = ({real.shape[0]},) with one value per sample, got {tuple(alpha.shape)}"
        )
    if not (real.device == fake.device == alpha.device):
        raise ValueError(
            "real, fake and alpha must be on the same device, got "
            f"real on {real.device}, fake on {fake.device}, alpha on {alpha.device}"
        )


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


def interpolate_ref(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Reference: computed in float32 (float64 for float64), rounded once."""
    op = opmath_dtype(real.dtype)
    a = _per_sample(alpha.to(op), real)
    r, f = real.to(op), fake.to(op)
    return (a * r + (1 - a) * f).to(real.dtype)


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """x_hat = alpha * real + (1 - alpha) * fake with alpha of shape (B,).

    Differentiable with respect to all three inputs. `impl` is "auto" (native
    when available), "native" (raises if unavailable) or "reference".
    """
    _check(real, fake, alpha)
    if _native.use_native(impl, real.device):
        return torch.ops.wgan_fast.interpolate(real, fake, alpha)
    return interpolate_ref(real, fake, alpha)


# ---- torch.library registrations of the native op ---------------------------

def _fake(real, fake, alpha):
    return torch.empty_like(real)


def _fake_backward(grad, real, fake, alpha, output_mask):
    want_real, want_fake, want_alpha = output_mask
    return (
        torch.empty_like(grad) if want_real else grad.new_empty((0,)),
        torch.empty_like(grad) if want_fake else grad.new_empty((0,)),
        alpha.new_empty((grad.shape[0],) if want_alpha else (0,)),
    )


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    real, fake, alpha = ctx.saved_tensors
    need = list(ctx.needs_input_grad[:3])
    gr, gf, ga = torch.ops.wgan_fast.interpolate_backward(grad, real, fake, alpha, need)
    return (gr if need[0] else None, gf if need[1] else None, ga if need[2] else None)


def _setup_backward(ctx, inputs, output):
    grad, real, fake, alpha, mask = inputs
    ctx.save_for_backward(grad, real, fake, alpha)
    ctx.mask = mask
    ctx.set_materialize_grads(False)


def _backward_of_backward(ctx, g_real, g_fake, g_alpha):
    # interpolate_backward is linear in grad and in (real - fake):
    #   grad_real = a g, grad_fake = (1 - a) g, grad_alpha = sum(g (real - fake)).
    grad, real, fake, alpha = ctx.saved_tensors
    # outputs that were masked off (returned empty) carry no gradient
    g_real, g_fake, g_alpha = (g if m else None for g, m in zip((g_real, g_fake, g_alpha), ctx.mask))
    need = ctx.needs_input_grad
    a = _per_sample(alpha, grad).to(grad.dtype)
    d_grad = d_real = d_fake = d_alpha = None
    if need[0]:
        d_grad = torch.zeros_like(grad)
        if g_real is not None:
            d_grad = d_grad + a * g_real
        if g_fake is not None:
            d_grad = d_grad + (1 - a) * g_fake
        if g_alpha is not None:
            d_grad = d_grad + _per_sample(g_alpha, grad).to(grad.dtype) * (real - fake)
    if (need[1] or need[2]) and g_alpha is not None:
        ga = _per_sample(g_alpha, grad).to(grad.dtype) * grad
        d_real = ga if need[1] else None
        d_fake = -ga if need[2] else None
    if need[3]:
        diff = (g_real if g_real is not None else 0) - (g_fake if g_fake is not None else 0)
        if isinstance(diff, torch.Tensor):
            d_alpha = (grad * diff).reshape(grad.shape[0], -1).sum(1).to(alpha.dtype)
    return d_grad, d_real, d_fake, d_alpha, None


def _register() -> None:
    lib = "wgan_fast::"
    torch.library.register_fake(lib + "interpolate")(_fake)
    torch.library.register_fake(lib + "interpolate_backward")(_fake_backward)
    torch.library.register_autograd(lib + "interpolate", _backward, setup_context=_setup)
    torch.library.register_autograd(lib + "interpolate_backward", _backward_of_backward,
                                    setup_context=_setup_backward)


if _native._C is not None:
    _register()
