"""Modules and module transforms of wgan_fast: spectral normalisation built on
the native power iteration of wgan_fast.ops (see wgan_fast.nn.spectral_norm)
and the critic layers of wgan_fast.nn.penalty_layers."""
from .spectral_norm import (
    power_iteration_,
    power_iteration_ref,
    remove_spectral_norm,
    set_iterate_on_forward,
    spectral_norm,
    spectral_norm_layers,
)

__all__ = [
    "power_iteration_",
    "power_iteration_ref",
    "remove_spectral_norm",
    "set_iterate_on_forward",
    "spectral_norm",
    "spectral_norm_layers",
]
