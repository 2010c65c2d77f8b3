"""Native ops of wgan_fast, each with a pure-PyTorch reference (its spec).

Every op takes `impl="auto"|"native"|"reference"`: auto uses the native kernel
when `native_available(device)`, native insists on it, reference runs the
PyTorch specification.
"""
from ._native import BUILD_INFO, native_available, why_unavailable
from .clip import clip_, clip_ref
from .grad_penalty import grad_penalty, grad_penalty_ref, grad_penalty_with_norm
from .interpolate import interpolate, interpolate_ref
from .spectral_norm import spectral_norm_power_iteration_, spectral_norm_power_iteration_ref

__all__ = [
    "BUILD_INFO",
    "clip_",
    "clip_ref",
    "grad_penalty",
    "grad_penalty_ref",
    "grad_penalty_with_norm",
    "interpolate",
    "interpolate_ref",
    "native_available",
    "spectral_norm_power_iteration_",
    "spectral_norm_power_iteration_ref",
    "why_unavailable",
]
