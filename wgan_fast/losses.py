"""Losses of WGAN training built on the native ops."""
from __future__ import annotations

import torch

from . import ops
from .nn.penalty_layers import input_grad_only
from .ops._native import opmath_dtype


def gradient_penalty(
    critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    weight: float = 10.0,
    center: float = 1.0,
    one_sided: bool = False,
    alpha: torch.Tensor | None = None,
    scaler=None,
    impl: str = "auto",
    **critic_kwargs,
):
    """The WGAN-GP penalty (Gulrajani et al.), on interpolates of real and fake.

    Draws alpha ~ U[0, 1) per sample unless given, interpolates with the fused
    op, runs `critic(x_hat, **critic_kwargs)`, takes the gradient with respect
    to x_hat only (`create_graph=True`, so `loss.backward()` reaches the
    critic's parameters), and applies the fused penalty. Critics built from
    wgan_fast.nn.penalty_layers (all of wgan_fast.models') get the cheap
    double backward; any other critic works as with stock autograd.

    With an fp16 `torch.amp.GradScaler` as `scaler`, the critic output is
    scaled before the gradient and the gradient unscaled before the penalty,
    so small fp16 gradients do not flush to zero; an overflow shows as a
    non-finite penalty, which the scaler's step then skips.

    Returns (weight * mean penalty, per-sample gradient norms detached).
    """
    if not callable(critic):
        raise ValueError(f"critic must be callable, got {type(critic).__name__}")
    real, fake = real.detach(), fake.detach()
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=opmath_dtype(real.dtype))
    x_hat = ops.interpolate(real, fake, alpha, impl=impl).requires_grad_(True)
    with input_grad_only():  # our critic layers then skip weight gradients the penalty does not use
        out = critic(x_hat, **critic_kwargs)
    target = out.sum()
    scale = None
    if scaler is not None and scaler.is_enabled():
        scale = scaler.get_scale() if not hasattr(scaler, "_scale") or scaler._scale is None else scaler._scale
        target = target * scale
    (grad,) = torch.autograd.grad(target, x_hat, create_graph=True)
    if scale is not None:
        grad = grad / scale
    penalty, norms = ops.grad_penalty_with_norm(grad, center=center, one_sided=one_sided, impl=impl)
    return weight * penalty.mean(), norms.detach()
