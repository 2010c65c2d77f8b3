"""spectral_norm_power_iteration_: the power iteration of spectral normalisation.

`spectral_norm_power_iteration_(weights, us, vs, n_power_iterations, eps)`
runs n_power_iterations steps of u <- normalize(W v), v <- normalize(W^T u)
(torch.nn.utils.parametrizations.spectral_norm's order and normalisation,
x / max(||x||, eps)) for every (W, u, v) of the lists, updating u and v in
place, and returns sigma_i = u_i^T W_i v_i of the new u, v as a float64 (L,)
tensor.

weights[i] is (A, H, B), contiguous; its matrix is
W[h, a*B + b] = weights[i][a, h, b] (A = 1 for dim = 0; for dim > 0 the
leading dims, which saves a permuted copy). us[i] has H elements, vs[i] A*B,
contiguous, with W's dtype and device.

Native path: CPU, both products in one pass over W with a row split that
depends only on W's shape (bit-identical for any thread count); CUDA, three
launches per step for all the layers of a call, fixed-order reductions, no
atomics (a deterministic function of W, u, v). sigma comes for free from the
last step as (W^T u) . v. The module transform built on this op, and why the
determinism matters under DDP, is wgan_fast.nn.spectral_norm.

`spectral_norm_power_iteration_ref` is the specification: torch's
_power_method per layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _native


def spectral_norm_power_iteration_ref(weights, us, vs, n_power_iterations, eps):
    """Reference: updates us, vs in place; returns sigma_i = u_i^T W_i v_i (float64, (L,))."""
    sigmas = []
    with torch.no_grad():
        for w, u, v in zip(weights, us, vs):
            A, H, B = w.shape
            mat = w.permute(1, 0, 2).reshape(H, A * B)
            for _ in range(n_power_iterations):
                F.normalize(torch.mv(mat, v), dim=0, eps=eps, out=u)
                F.normalize(torch.mv(mat.H, u), dim=0, eps=eps, out=v)
            sigmas.append(torch.vdot(u, torch.mv(mat, v)).double())
    return torch.stack(sigmas) if sigmas else torch.empty(0, dtype=torch.float64)


def spectral_norm_power_iteration_(weights, us, vs, n_power_iterations, eps, *, impl="auto"):
    """Power iteration of every (W, u, v) in place; returns sigmas (float64, (L,))."""
    if _native.use_native(impl, weights[0].device):
        sigmas = torch.ops.wgan_fast.spectral_norm_power_iteration_(weights, us, vs, int(n_power_iterations), float(eps))
        # The dispatcher does not bump version counters for a custom op's
        # mutated arguments: do it, so autograd (and the sigma cache of
        # wgan_fast.nn.spectral_norm) see it.
        torch.autograd.graph.increment_version(list(us) + list(vs))
        return sigmas
    return spectral_norm_power_iteration_ref(weights, us, vs, n_power_iterations, eps)


def _register() -> None:
    @torch.library.register_fake("wgan_fast::spectral_norm_power_iteration_")
    def _(weights, us, vs, n_power_iterations, eps):
        return weights[0].new_empty((len(weights),), dtype=torch.float64)


if _native._C is not None:
    _register()
