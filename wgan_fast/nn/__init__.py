"""Modules and module transforms of wgan_fast: spectral normalisation with
native power iterations (see wgan_fast.nn.spectral_norm)."""
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
