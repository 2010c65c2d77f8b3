"""Critic layers whose double backward does only the work the gradient penalty needs.

The penalty differentiates the critic twice: `autograd.grad(D(x_hat), x_hat,
create_graph=True)`, then `penalty.backward()` into the weights. Stock autograd
wastes most of the second pass on a DCGAN critic (profiled on CPU, DCGAN-64):

* `leaky_relu_backward`'s derivative with respect to its input is zero almost
  everywhere, but autograd materialises it as a zeros tensor and sends it into
  the forward graph of x_hat: a whole extra backward of the critic (weight,
  bias and input gradients of zeros). `leaky_relu` here returns no gradient
  for that input instead (the fold stylegan2-ada's bias_act makes).
* autograd's convolution double backward takes the weight gradient of the
  penalty as a convolution over batch-transposed tensors, 2-3x slower on
  oneDNN than the dedicated weight-gradient kernel; `conv2d` here uses
  `convolution_backward` (the weight-gradient kernel) and a plain forward
  convolution for the gradient of the incoming gradient.
* in `input_grad_only()` (the penalty's critic forward) the first backward
  computes the input gradient alone: `autograd.grad(..., inputs=x_hat)` needs
  no weight gradients there, and the penalty's own weight gradients come
  from differentiating that input gradient.

Every Function here leaves an undefined incoming gradient undefined
(`set_materialize_grads(False)`): autograd still visits the forward graph of
x_hat after the fold, and would otherwise run it on materialised zeros.

ELU, GELU, SiLU and Tanh (wgan_fast.nn.smooth_activations) have non-zero
second derivatives, which the penalty's weight gradients need: their double
backward forms that term exactly, and the conv layers below them then give
weight gradients in the penalty's second backward as usual.

First derivatives are the stock ones; higher derivatives are exact almost
everywhere (LeakyReLU's kink has measure zero), checked by gradgradcheck
against autograd in tests/test_penalty_layers.py. The kernels are ATen's own
(oneDNN on CPU, cuDNN on CUDA): what changes is which ones run.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .smooth_activations import ELU, GELU, SiLU, Tanh, elu, gelu, silu, tanh

__all__ = ["Conv2d", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "conv2d", "leaky_relu", "elu", "gelu", "silu",
           "tanh", "input_grad_only", "convert_layers"]

_mode = threading.local()


@contextmanager
def input_grad_only():
    """Forwards run inside build graphs whose first backward gives the input
    gradient only: the layers' weights and biases receive none from it.

    For the penalty's `autograd.grad(D(x_hat), x_hat, create_graph=True)`,
    which discards weight gradients anyway; the penalty's backward still
    reaches every weight through the input gradient's graph.
    """
    prev = getattr(_mode, "input_grad_only", False)
    _mode.input_grad_only = True
    try:
        yield
    finally:
        _mode.input_grad_only = prev


def _conv_backward(grad_out, x, weight, geom, mask):
    stride, padding, dilation, groups = geom
    bias_sizes = [weight.shape[0]] if mask[2] else None
    return torch.ops.aten.convolution_backward(grad_out, x, weight, bias_sizes, stride, padding, dilation, False,
                                               [0] * len(stride), groups, list(mask))


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, geom, grad_input_only):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight)
        ctx.geom, ctx.grad_input_only = geom, grad_input_only
        return F.conv2d(x, weight, bias, *geom)

    @staticmethod
    def backward(ctx, grad_out):
        if grad_out is None:
            return None, None, None, None, None
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if ctx.grad_input_only and torch.is_grad_enabled():
            # only the penalty's first backward (create_graph) may skip them: its second reaches this
            # forward graph through any non-zero second derivative (smooth activations, norm layers)
            need_w = need_b = False
        if not torch.is_grad_enabled():  # plain backward: one fused call
            gx, gw, gb = _conv_backward(grad_out, x, weight, ctx.geom, (need_x, need_w, need_b))
            return gx, gw, gb, None, None
        # create_graph: the input gradient must itself be differentiable, cheaply
        gx = _Conv2dGradInput.apply(grad_out, x, weight, ctx.geom) if need_x else None
        gw = gb = None
        if need_w or need_b:
            _, gw, gb = _conv_backward(grad_out, x, weight, ctx.geom, (False, need_w, need_b))
        return gx, gw, gb, None, None


class _Conv2dGradInput(torch.autograd.Function):
    """grad_x = conv2d's input gradient (a transposed convolution of grad_out)."""

    @staticmethod
    def forward(ctx, grad_out, x, weight, geom):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(grad_out, weight)
        ctx.geom = geom
        return _conv_backward(grad_out, x, weight, geom, (True, False, False))[0]

    @staticmethod
    def backward(ctx, gg):
        if gg is None:
            return None, None, None, None
        grad_out, weight = ctx.saved_tensors
        d_grad_out = d_weight = None
        if ctx.needs_input_grad[0]:  # the adjoint of the transposed convolution: a forward convolution
            d_grad_out = F.conv2d(gg, weight, None, *ctx.geom)
        if ctx.needs_input_grad[2]:  # as the weight gradient of a convolution with input gg
            d_weight = _conv_backward(grad_out, gg, weight, ctx.geom, (False, True, False))[1]
        return d_grad_out, None, d_weight, None


class _LeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.set_materialize_grads(False)
        y = F.leaky_relu(x, slope)
        ctx.save_for_backward(y)  # the sign of y is the sign of x (slope >= 0): no mask tensor
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx, grad_y):
        if grad_y is None:
            return None, None
        (y,) = ctx.saved_tensors
        return _LeakyReLUGrad.apply(grad_y, y, ctx.slope), None


class _LeakyReLUGrad(torch.autograd.Function):
    """grad_x = grad_y * (1 if y > 0 else slope): linear in grad_y; its
    derivative with respect to y is zero almost everywhere and is not formed."""

    @staticmethod
    def forward(ctx, grad_y, y, slope):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(y)
        ctx.slope = slope
        return torch.ops.aten.leaky_relu_backward(grad_y, y, slope, True)

    @staticmethod
    def backward(ctx, gg):
        if gg is None:
            return None, None, None
        (y,) = ctx.saved_tensors
        return _LeakyReLUGrad.apply(gg, y, ctx.slope), None, None


def _autocast_inputs(*tensors):
    """Cast as autocast would cast a convolution's inputs; the Function then
    runs with autocast off, so its backward sees one dtype throughout."""
    device = tensors[0].device.type
    if not torch.is_autocast_enabled(device):
        return tensors, False
    dtype = torch.get_autocast_dtype(device)
    return tuple(t.to(dtype) if t is not None and t.is_floating_point() else t for t in tensors), True


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """`F.conv2d` with the cheap double backward (numerical padding only)."""
    if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    geom = (_pair(stride), _pair(padding), _pair(dilation), groups)
    (x, weight, bias), cast = _autocast_inputs(x, weight, bias)
    only = getattr(_mode, "input_grad_only", False)
    if cast:
        with torch.autocast(x.device.type, enabled=False):
            return _Conv2d.apply(x, weight, bias, geom, only)
    return _Conv2d.apply(x, weight, bias, geom, only)


def leaky_relu(x, negative_slope=0.01):
    """`F.leaky_relu` (slope >= 0; 0 is ReLU) without the zero second-order term."""
    if negative_slope < 0:
        raise ValueError(f"leaky_relu: negative_slope must be >= 0, got {negative_slope}")
    if not torch.is_grad_enabled() or not x.requires_grad:
        return F.leaky_relu(x, negative_slope)
    return _LeakyReLU.apply(x, float(negative_slope))


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters, same state dict) with the cheap double backward."""

    def _conv_forward(self, x, weight, bias):
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(x, weight, bias)
        return conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class LeakyReLU(nn.LeakyReLU):
    """`nn.LeakyReLU` (never in place) with the cheap double backward; slope 0 is ReLU."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__(negative_slope, inplace=False)

    def forward(self, x):
        return leaky_relu(x, self.negative_slope)


def _ours(m: nn.Module) -> nn.Module | None:
    """Our layer for a stock activation module, or None."""
    kind = type(m)
    if kind in (nn.LeakyReLU, nn.ReLU):
        return LeakyReLU(getattr(m, "negative_slope", 0.0))
    if kind is nn.ELU and m.alpha >= 0:
        return ELU(m.alpha)
    if kind is nn.GELU and m.approximate == "none":
        return GELU()
    cls = {nn.SiLU: SiLU, nn.Tanh: Tanh}.get(kind)
    return cls() if cls else None


def _stock(m: nn.Module) -> nn.Module | None:
    """Torch's activation module for one of ours, or None."""
    kind = type(m)
    if kind is LeakyReLU:
        return nn.LeakyReLU(m.negative_slope)
    if kind is ELU:
        return nn.ELU(m.alpha)
    cls = {GELU: nn.GELU, SiLU: nn.SiLU, Tanh: nn.Tanh}.get(kind)
    return cls() if cls else None


def convert_layers(module: nn.Module, fast: bool = True) -> nn.Module:
    """Swap a module's Conv2d and activation layers (ReLU, LeakyReLU, ELU,
    GELU, SiLU, Tanh) in place, weights kept: to ours (`fast=True`) or back to
    torch's (`fast=False`, the stock layers the tests and benchmarks compare
    against). Spectrally normalised convs (parametrized) are left as they are.
    Returns `module`."""
    for name, m in module.named_children():
        act = _ours(m) if fast else _stock(m)
        if isinstance(m, nn.Conv2d) and type(m) in ((nn.Conv2d,) if fast else (Conv2d,)):
            new = (Conv2d if fast else nn.Conv2d)(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                                  m.dilation, m.groups, m.bias is not None, m.padding_mode,
                                                  device=m.weight.device, dtype=m.weight.dtype)
            new.load_state_dict(m.state_dict())
            setattr(module, name, new.to(memory_format=_memory_format(m.weight)))
        elif act is not None:
            setattr(module, name, act)
        else:
            convert_layers(m, fast)
    return module


def _memory_format(w):
    return torch.channels_last if w.dim() == 4 and w.is_contiguous(memory_format=torch.channels_last) \
        and not w.is_contiguous() else torch.contiguous_format
