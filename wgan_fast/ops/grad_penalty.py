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
Each derivative is written once: phi, phi' and the backward's row scale in
the kernels' math (csrc/gp_math.h); the backward's backward calls the op for
those and adds only phi'' (`_penalty_d2norm`), in differentiable torch ops,
so every higher order works too.
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


def _penalty_d2norm(norm, center, one_sided):
    """phi''(n) of phi(n) = (n - c)^2: 2, or 2 [n > c] when one-sided."""
    if one_sided:
        return 2 * (norm > center).to(norm.dtype)
    return torch.full_like(norm, 2.0)


# ---- torch.library registrations of the native op ---------------------------

def _fake(grad, center, one_sided, eps):
    b, dtype = grad.shape[0], opmath_dtype(grad.dtype)
    return grad.new_empty((b,), dtype=dtype), grad.new_empty((b,), dtype=dtype)


def _fake_backward(grad_penalty, grad_norm, grad, norm, center, one_sided):
    return torch.empty_like(grad)


def _setup(ctx, inputs, output):
    grad, center, one_sided, _eps = inputs
    ctx.save_for_backward(grad, output[1])
    ctx.center, ctx.one_sided = center, one_sided
    ctx.set_materialize_grads(False)  # an unused output costs nothing


def _backward(ctx, g_penalty, g_norm):
    grad, norm = ctx.saved_tensors
    if g_penalty is None and g_norm is None:
        return None, None, None, None
    d = torch.ops.wgan_fast.grad_penalty_backward(g_penalty, g_norm, grad, norm, ctx.center, ctx.one_sided)
    return d, None, None, None


def _setup_backward(ctx, inputs, output):
    g_penalty, g_norm, grad, norm, center, one_sided = inputs
    ctx.save_for_backward(g_penalty, g_norm, grad, norm)
    ctx.center, ctx.one_sided = center, one_sided
    ctx.set_materialize_grads(False)


def _backward_of_backward(ctx, G):
    # grad_penalty_backward is out_b = k_b grad_b with the row scale
    # k(gp, gn, n) = (gp phi'(n) + gn) / n (0 where n = 0) of the kernels
    # (penalty_row_scale, csrc/gp_math.h). With dot_b = <G_b, grad_b>:
    #   d/d grad = k G                      (the native op on G)
    #   d/d gp   = dot k(1, 0, n)           (k is linear in gp and gn,
    #   d/d gn   = dot k(0, 1, n)            so the native op gives these)
    #   d/d n    = dot (gp phi''(n) - k) / n
    # phi, phi' and k are computed by the kernels only; phi'' is the one
    # derivative written here (_penalty_d2norm). Every term is built from
    # differentiable ops, so higher orders work too.
    g_penalty, g_norm, grad, norm = ctx.saved_tensors
    if G is None:
        return (None,) * 6
    c, one_sided = ctx.center, ctx.one_sided
    bwd = torch.ops.wgan_fast.grad_penalty_backward
    n = norm.to(opmath_dtype(grad.dtype))
    ones = n.new_ones((n.shape[0], 1))  # on a (B, 1) column of ones the op returns k itself

    def row_scale(gp, gn):
        return bwd(gp, gn, ones, n, c, one_sided).reshape(-1)

    dot = (_rows(G).to(n.dtype) * _rows(grad).to(n.dtype)).sum(1)
    need = ctx.needs_input_grad
    d_gp = dot * row_scale(torch.ones_like(n), None) if need[0] else None
    d_gn = dot * row_scale(None, torch.ones_like(n)) if need[1] else None
    d_grad = bwd(g_penalty, g_norm, G, norm, c, one_sided) if need[2] else None
    d_norm = None
    if need[3]:
        gp = g_penalty.to(n.dtype) if g_penalty is not None else torch.zeros_like(n)
        valid = n > 0
        safe_n = torch.where(valid, n, torch.ones_like(n))
        dk_dn = (gp * _penalty_d2norm(n, c, one_sided) - row_scale(g_penalty, g_norm)) / safe_n
        d_norm = torch.where(valid, dot * dk_dn, torch.zeros_like(n))
    return d_gp, d_gn, d_grad, d_norm, None, None


def _register() -> None:
    lib = "wgan_fast::"
    torch.library.register_fake(lib + "grad_penalty")(_fake)
    torch.library.register_fake(lib + "grad_penalty_backward")(_fake_backward)
    torch.library.register_autograd(lib + "grad_penalty", _backward, setup_context=_setup)
    torch.library.register_autograd(lib + "grad_penalty_backward", _backward_of_backward,
                                    setup_context=_setup_backward)


if _native._C is not None:
    _register()
