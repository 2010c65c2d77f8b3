"""grad_penalty: per-sample (||g_b||_2 - center)^2 over all non-batch dims.

With `one_sided` it is max(0, ||g_b|| - center)^2 (WGAN-LP, Petzka et al.);
`center=0` gives the zero-centred (R1-style) penalty. The norm is
sqrt(sum(g_b^2) + eps), with eps inside the root so that a zero row has finite
values and derivatives of every order. Sums run in float32 (float64 for
float64) whatever the storage type, so half-precision gradients cannot
overflow in the square, and the per-sample penalty and norm are returned in
that precision (a float16 penalty of a large norm would overflow).

`grad_penalty_ref` is the specification. The native op returns (penalty,
norm) in one pass; its backward is one more pass and has its own backward,
so the trainer can differentiate through it into the critic's parameters.
"""
from __future__ import annotations

import math

import torch

from . import _native
from ._native import check_floating, opmath_dtype

DEFAULT_EPS = 1e-12


def _check(grad, center, eps) -> None:
    check_floating(grad, "grad")
    if grad.dim() < 1:
        raise ValueError("grad must have a batch dimension, got a 0-dim tensor")
    if not (isinstance(center, (int, float)) and math.isfinite(center) and center >= 0):
        raise ValueError(f"center must be a finite number >= 0, got {center!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))


def grad_penalty_ref(grad, center=1.0, one_sided=False, eps=DEFAULT_EPS):
    """Reference: returns (penalty[B], norm[B]) in float32 (float64 for float64)."""
    g = _rows(grad.to(opmath_dtype(grad.dtype)))
    norm = torch.sqrt(g.square().sum(1) + eps)
    excess = norm - center
    if one_sided:
        excess = excess.clamp_min(0)
    return excess.square(), norm


def grad_penalty_with_norm(grad, *, center=1.0, one_sided=False, eps=DEFAULT_EPS, impl="auto"):
    """(penalty[B], norm[B]); both differentiable to any order."""
    _check(grad, center, eps)
    if _native.use_native(impl, grad.device):
        return torch.ops.wgan_fast.grad_penalty(grad, float(center), bool(one_sided), float(eps))
    return grad_penalty_ref(grad, float(center), bool(one_sided), float(eps))


def grad_penalty(grad, *, center=1.0, one_sided=False, eps=DEFAULT_EPS, impl="auto"):
    """Per-sample penalty Tensor[B]; see the module docstring."""
    return grad_penalty_with_norm(grad, center=center, one_sided=one_sided, eps=eps, impl=impl)[0]


# ---- torch.library registrations of the native op ---------------------------

def _register() -> None:
    lib = "wgan_fast::"

    @torch.library.register_fake(lib + "grad_penalty")
    def _(grad, center, one_sided, eps):
        b, dtype = grad.shape[0], opmath_dtype(grad.dtype)
        return grad.new_empty((b,), dtype=dtype), grad.new_empty((b,), dtype=dtype)

    @torch.library.register_fake(lib + "grad_penalty_backward")
    def _(grad_penalty, grad_norm, grad, norm, center, one_sided):
        return torch.empty_like(grad)

    def setup(ctx, inputs, output):
        grad, center, one_sided, _eps = inputs
        ctx.save_for_backward(grad, output[1])
        ctx.center, ctx.one_sided = center, one_sided
        ctx.set_materialize_grads(False)  # an unused output costs nothing

    def backward(ctx, g_penalty, g_norm):
        grad, norm = ctx.saved_tensors
        if g_penalty is None and g_norm is None:
            return None, None, None, None
        d = torch.ops.wgan_fast.grad_penalty_backward(g_penalty, g_norm, grad, norm, ctx.center, ctx.one_sided)
        return d, None, None, None

    torch.library.register_autograd(lib + "grad_penalty", backward, setup_context=setup)

    def setup_bwd(ctx, inputs, output):
        g_penalty, g_norm, grad, norm, center, one_sided = inputs
        ctx.save_for_backward(g_penalty, g_norm, grad, norm)
        ctx.center, ctx.one_sided = center, one_sided
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, G):
        # out = grad * k(n), k = (gp phi'(n) + gn) / n; see csrc/gp_math.h.
        g_penalty, g_norm, grad, norm = ctx.saved_tensors
        none = (None,) * 6
        if G is None:
            return none
        c, one_sided = ctx.center, ctx.one_sided
        op = opmath_dtype(grad.dtype)
        n = norm.to(op)
        valid = n > 0
        safe_n = torch.where(valid, n, torch.ones_like(n))
        excess = n - c
        if one_sided:
            excess = excess.clamp_min(0)
        d1 = 2 * excess
        d2 = 2 * (n > c).to(op) if one_sided else torch.full_like(n, 2.0)
        gp = g_penalty.to(op) if g_penalty is not None else torch.zeros_like(n)
        gn = g_norm.to(op) if g_norm is not None else torch.zeros_like(n)
        k = (gp * d1 + gn) / safe_n
        dot = (_rows(G).to(op) * _rows(grad).to(op)).sum(1)
        zero = torch.zeros_like(n)
        need = ctx.needs_input_grad
        d_gp = torch.where(valid, dot * d1 / safe_n, zero) if need[0] else None
        d_gn = torch.where(valid, dot / safe_n, zero) if need[1] else None
        d_grad = (
            torch.ops.wgan_fast.grad_penalty_backward(g_penalty, g_norm, G, norm, c, one_sided)
            if need[2]
            else None
        )
        d_norm = torch.where(valid, dot * (gp * d2 - k) / safe_n, zero) if need[3] else None
        return d_gp, d_gn, d_grad, d_norm, None, None

    torch.library.register_autograd(lib + "grad_penalty_backward", backward_bwd, setup_context=setup_bwd)


if _native._C is not None:
    _register()
