"""Smooth critic activations (ELU, GELU, SiLU, tanh) with an exact double backward.

Unlike LeakyReLU, whose second derivative is zero almost everywhere, these
have f'' != 0: the gradient penalty differentiates grad_x = grad_y * f'(x)
again, and the term grad_y * f''(x) reaches every weight below the layer
through the x_hat forward graph. It must be formed, and exactly.

Each activation is one pair of autograd Functions, as in penalty_layers:
`_Smooth` (y = f(x), saving x or y) and `_SmoothGrad` (grad_x = grad_y *
f'(s), s the saved tensor, by ATen's own fused backward kernel). The second
backward of `_SmoothGrad` is grad_y * gg * df'/ds with respect to s, in
differentiable torch ops, and `_SmoothGrad` again (linear) with respect to
grad_y; when s is y, autograd carries the first term on through dy/dx, so
d/dx f'(y(x)) = f'' comes out by the chain rule. Saving y is the cheap
choice where f' is a function of y alone:

    tanh  f' = 1 - y^2                       df'/dy = -2y
    ELU   f' = 1 (y > 0), y + alpha (y <= 0) df'/dy = [y <= 0]
    SiLU  f' = s (1 + x (1 - s)), s = sigmoid(x)
                                             df'/dx = s (1 - s) (2 + x (1 - 2s))
    GELU  f' = Phi(x) + x phi(x)             df'/dx = phi(x) (2 - x^2)

(SiLU and GELU need x.) First derivatives are ATen's kernels (ELU's from y,
as torch's in-place ELU: equal to the stock one up to rounding); the second
and higher are exact (ELU's at 0 is one-sided, a point of measure zero),
checked by gradcheck/gradgradcheck in float64 and against stock torch
critics in tests/test_smooth_activations.py.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ELU", "GELU", "SiLU", "Tanh", "elu", "gelu", "silu", "tanh"]


@dataclass(frozen=True)
class _Math:
    """y = f(x); grad(grad_y, s) = grad_y * f'(s); d_slope(s) = df'/ds; s is y if from_output else x."""
    f: Callable
    grad: Callable
    d_slope: Callable
    from_output: bool


def _silu_d_slope(x):
    s = torch.sigmoid(x)
    return s * (1 - s) * (2 + x * (1 - 2 * s))


def _gelu_d_slope(x):
    phi = torch.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return phi * (2 - x * x)


_TANH = _Math(torch.tanh, torch.ops.aten.tanh_backward, lambda y: -2 * y, True)
_SILU = _Math(F.silu, torch.ops.aten.silu_backward, _silu_d_slope, False)
_GELU = _Math(F.gelu, torch.ops.aten.gelu_backward, _gelu_d_slope, False)


@functools.lru_cache(maxsize=16)
def _elu_math(alpha: float) -> _Math:
    return _Math(lambda x: F.elu(x, alpha), lambda grad_y, y: torch.ops.aten.elu_backward(grad_y, alpha, 1, 1, True, y),
                 lambda y: (y <= 0).to(y.dtype), True)


class _Smooth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec):
        ctx.set_materialize_grads(False)
        y = spec.f(x)
        ctx.save_for_backward(y if spec.from_output else x)
        ctx.spec = spec
        return y

    @staticmethod
    def backward(ctx, grad_y):
        if grad_y is None:
            return None, None
        (s,) = ctx.saved_tensors
        return _SmoothGrad.apply(grad_y, s, ctx.spec), None


class _SmoothGrad(torch.autograd.Function):
    """grad_x = grad_y * f'(s), s the saved x or y of `_Smooth`."""

    @staticmethod
    def forward(ctx, grad_y, s, spec):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(grad_y, s)
        ctx.spec = spec
        return spec.grad(grad_y, s)

    @staticmethod
    def backward(ctx, gg):
        if gg is None:
            return None, None, None
        grad_y, s = ctx.saved_tensors
        d_grad_y = _SmoothGrad.apply(gg, s, ctx.spec) if ctx.needs_input_grad[0] else None
        d_s = gg * grad_y * ctx.spec.d_slope(s) if ctx.needs_input_grad[1] else None
        return d_grad_y, d_s, None


def _apply(x, spec, stock):
    if not torch.is_grad_enabled() or not x.requires_grad:
        return stock(x)
    return _Smooth.apply(x, spec)


def tanh(x):
    """`torch.tanh` with the exact double backward computed from y."""
    return _apply(x, _TANH, torch.tanh)


def elu(x, alpha: float = 1.0):
    """`F.elu` (alpha >= 0) with the exact double backward computed from y."""
    if alpha < 0:  # y <= 0 must mean x <= 0
        raise ValueError(f"elu: alpha must be >= 0, got {alpha}")
    return _apply(x, _elu_math(float(alpha)), lambda t: F.elu(t, alpha))


def silu(x):
    """`F.silu` with the exact double backward."""
    return _apply(x, _SILU, F.silu)


def gelu(x):
    """`F.gelu` (the exact, erf form) with the exact double backward."""
    return _apply(x, _GELU, F.gelu)


class Tanh(nn.Tanh):
    """`nn.Tanh` with the exact double backward of `tanh`."""

    def forward(self, x):
        return tanh(x)


class ELU(nn.ELU):
    """`nn.ELU` (never in place) with the exact double backward of `elu`."""

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha, inplace=False)

    def forward(self, x):
        return elu(x, self.alpha)


class SiLU(nn.SiLU):
    """`nn.SiLU` (never in place) with the exact double backward of `silu`."""

    def __init__(self):
        super().__init__(inplace=False)

    def forward(self, x):
        return silu(x)


class GELU(nn.GELU):
    """`nn.GELU` (erf form) with the exact double backward of `gelu`."""

    def __init__(self):
        super().__init__(approximate="none")

    def forward(self, x):
        return gelu(x)
