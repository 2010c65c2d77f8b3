"""wgan_fast: fast, correct Wasserstein GAN training for PyTorch.

The hot steps (interpolation + gradient penalty, weight clipping, spectral
norm) run in native C++/CUDA kernels (`wgan_fast._C`), each with a pure-PyTorch
reference that is its specification. Without the native extension everything
still works on the references (a warning says why once).
"""
__version__ = "0.1.0"

from . import ops, losses  # noqa: E402,F401
from . import nn  # noqa: E402,F401

__all__ = ["ops", "losses", "nn", "__version__"]
