"""Spectral normalisation (Miyato et al.) with native power iterations.

    critic = wgan_fast.nn.spectral_norm(nn.Conv2d(3, 64, 4, 2, 1))
    ...
    wgan_fast.nn.power_iteration_(critic)   # once per critic step

State and naming
----------------
`spectral_norm` registers a parametrization through
`torch.nn.utils.parametrize`, exactly where torch's
`torch.nn.utils.parametrizations.spectral_norm` puts its own: the raw weight
is `parametrizations.weight.original`, the singular-vector estimates are the
buffers `parametrizations.weight.0._u` (H) and `._v` (C), and `module.weight`
is W / sigma, computed on access. State dicts are therefore interchangeable
with torch's (a checkpoint of either loads into the other), and u, v round
trip through `state_dict`.

The power iteration is torch's: u <- normalize(W v), v <- normalize(W^T u),
normalize(x) = x / max(||x||, eps), with W the (H, C) matrix of the weight
with `dim` moved to the front (dim = 1 for ConvTranspose, 0 otherwise), and
15 iterations at registration. (Miyato's Algorithm 1 writes the same
alternating sequence starting from u; starting from v, as torch does, is what
makes `W / sigma` bit-for-bit comparable with torch given the same u, v.)

    sigma = u^T W v, with u and v treated as constants,

so `weight` is differentiable in `original` exactly like torch's.

When u and v are updated
------------------------
* `power_iteration_(module)` runs `n_power_iterations` steps for every
  spectrally normalised layer of `module` (in training mode) in one native
  call per (device, n_power_iterations, eps) group. The kernels read W once
  per step (both products fused on CPU) and never touch autograd. They also
  return sigma = u^T W v for the new u, v ((W^T u) . v, no extra pass), which
  the following accesses of `weight` use as long as W, u and v are unchanged
  (version counters; in training mode; eval recomputes u^T W v); its
  gradient is the exact u v^T. Changing W through `.data` (own version
  counter) between `power_iteration_` and a training forward is not seen:
  update parameters in place under no_grad (as torch.optim does) instead.
* `iterate_on_forward=True` (the default, torch's behaviour): every access to
  `module.weight` in training mode also runs the iteration, so a WGAN-GP
  critic step that evaluates the critic on real, fake and interpolated
  batches iterates three times and uses three different sigmas.
  `iterate_on_forward=False` (the trainer's mode; also
  `set_iterate_on_forward(net, False)`): only `power_iteration_` iterates,
  so every forward between two calls uses the same u, v and hence one sigma.
* Eval mode never updates u and v, neither on access nor through
  `power_iteration_` (unless `force=True`).

Distributed data parallel
-------------------------
u and v are buffers. The iteration is deterministic given W: the CPU kernel
splits rows into blocks that depend only on W's shape, never on the thread
count, and sums the partial products in a fixed order; the CUDA kernels use
fixed-order block reductions and no atomics. Since DDP keeps W identical on
every rank (all-reduced gradients, same optimizer step), every rank computes
bit-identical u and v by itself, and no communication is needed. We
therefore recommend `DistributedDataParallel(..., broadcast_buffers=False)`:
with the default `broadcast_buffers=True`, DDP copies rank 0's u, v over
every rank's before each forward, which is redundant (the values are the
same) and costs a broadcast per forward; with iterate_on_forward=True it also
lands between the forwards of one step. Either setting gives the same
numbers; the recommendation is about cost. (Ranks on different device types
or kernels, e.g. a CPU rank beside CUDA ranks, would round differently and
are not covered by this guarantee; use the broadcast there.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

# The op and its reference live with the other ops; power_iteration_ref is
# the reference's name here, kept for the callers of wgan_fast.nn.
from ..ops.spectral_norm import spectral_norm_power_iteration_
from ..ops.spectral_norm import spectral_norm_power_iteration_ref as power_iteration_ref

__all__ = [
    "spectral_norm",
    "remove_spectral_norm",
    "power_iteration_",
    "power_iteration_ref",
    "set_iterate_on_forward",
    "spectral_norm_layers",
]

_INIT_ITERATIONS = 15  # as torch.nn.utils.parametrizations.spectral_norm


def _split(shape, dim):
    A = math.prod(shape[:dim])
    return A, shape[dim], math.prod(shape[dim + 1:])


class _CachedSigma(torch.autograd.Function):
    """sigma = u^T W v with its value taken from the power iteration that
    just ran (same W, u, v: checked by the caller through version counters),
    and its true gradient d sigma / dW = u v^T (u, v constants). Saves the
    matrix-vector product that recomputing sigma would cost on every access."""

    @staticmethod
    def forward(ctx, weight, u, v, sigma, A, H, B):
        ctx.save_for_backward(u, v)
        ctx.shape = (A, H, B)
        ctx.weight_shape = weight.shape
        return sigma.to(weight.dtype, copy=True)

    @staticmethod
    def backward(ctx, g):
        u, v = ctx.saved_tensors
        A, H, B = ctx.shape
        outer = u.view(1, H, 1) * v.view(A, 1, B)  # d sigma / d W[a, h, b] = u_h v_(a,b)
        return (g * outer).reshape(ctx.weight_shape), None, None, None, None, None, None


class _SpectralNorm(nn.Module):
    """The parametrization: weight = original / (u^T W v)."""

    def __init__(self, weight, n_power_iterations=1, dim=0, eps=1e-12, iterate_on_forward=True):
        super().__init__()
        ndim = weight.ndim
        if ndim < 2:
            raise ValueError(f"spectral_norm needs a weight of 2 or more dimensions, got shape {tuple(weight.shape)}")
        if not -ndim <= dim < ndim:
            raise IndexError(f"dim must be in [-{ndim}, {ndim - 1}], got {dim}")
        if isinstance(n_power_iterations, bool) or not isinstance(n_power_iterations, int) or n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be an int >= 1, got {n_power_iterations!r}")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        if not weight.is_floating_point():
            raise ValueError(f"spectral_norm needs a floating-point weight, got {weight.dtype}")
        self.dim = dim % ndim
        self.eps = float(eps)
        self.n_power_iterations = n_power_iterations
        self.iterate_on_forward = bool(iterate_on_forward)
        self.A, self.H, self.B = _split(weight.shape, self.dim)
        with torch.no_grad():
            u = weight.new_empty(self.H).normal_(0, 1)
            v = weight.new_empty(self.A * self.B).normal_(0, 1)
            self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
        self._sigma = None  # (key, sigma) of the last power iteration, see sigma()
        self.power_method_(weight, _INIT_ITERATIONS)

    def weight3d(self, weight):
        """(A, H, B) view of the weight (a copy only if it is not contiguous)."""
        return weight.detach().reshape(self.A, self.H, self.B).contiguous()

    def power_method_(self, weight, n_power_iterations=None, impl="auto"):
        sigmas = spectral_norm_power_iteration_(
            [self.weight3d(weight)], [self._u], [self._v], n_power_iterations or self.n_power_iterations, self.eps, impl=impl
        )
        self.remember_sigma_(weight, sigmas[0])

    def _key(self, weight):
        # Changes whenever W, u or v may have changed: in-place updates bump
        # version counters (optimizer steps, load_state_dict, the iteration),
        # new tensors (.to(), .half()) have new storage.
        return (weight.data_ptr(), weight._version, self._u.data_ptr(), self._u._version, self._v._version)

    def remember_sigma_(self, weight, sigma):
        self._sigma = (self._key(weight), sigma)

    def sigma(self, weight):
        """u^T W v, differentiable in W, u and v constants (cloned: a later
        in-place update of the buffers must not invalidate this graph).
        Right after a power iteration on the same W, u, v, its value comes
        from the iteration's kernel (no extra pass over W)."""
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        cached = self._sigma
        # Training mode only (the hot path): eval recomputes, so that eval is
        # exact even after W was changed through `.data`, which has its own
        # version counter and so escapes the key.
        if self.training and cached is not None and cached[0] == self._key(weight) and cached[1].device == weight.device:
            return _CachedSigma.apply(weight, u, v, cached[1], self.A, self.H, self.B)
        if self.A == 1:  # torch's formula, W = weight.flatten(1)
            return torch.vdot(u, torch.mv(weight.reshape(self.H, self.B), v))
        return torch.vdot(torch.matmul(u, weight.reshape(self.A, self.H, self.B)).reshape(-1), v)

    def forward(self, weight):
        if self.training and self.iterate_on_forward:
            self.power_method_(weight)
        return weight / self.sigma(weight)

    def right_inverse(self, value):
        return value

    def extra_repr(self):
        return (
            f"dim={self.dim}, n_power_iterations={self.n_power_iterations}, eps={self.eps}, "
            f"iterate_on_forward={self.iterate_on_forward}"
        )


def _default_dim(module):
    return 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None, *, iterate_on_forward=True):
    """Spectrally normalise `module.<name>` (Linear, Conv*d, ConvTranspose*d, ...).

    Same arguments and defaults as torch.nn.utils.parametrizations.spectral_norm,
    plus `iterate_on_forward` (see the module docstring). Returns `module`.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    if parametrize.is_parametrized(module, name):
        kinds = [type(p).__name__ for p in module.parametrizations[name]]
        raise RuntimeError(
            f"{type(module).__name__}.{name} is already parametrized ({', '.join(kinds)}): spectral norm applied "
            "twice? Call remove_spectral_norm(module) first."
        )
    for hook in module._forward_pre_hooks.values():
        if type(hook).__name__ == "SpectralNorm" and getattr(hook, "name", None) == name:
            raise RuntimeError(
                f"{type(module).__name__}.{name} already has torch.nn.utils.spectral_norm applied: spectral norm "
                "applied twice? Remove it with torch.nn.utils.remove_spectral_norm first."
            )
    weight = module._parameters.get(name) if hasattr(module, "_parameters") else None
    if not isinstance(weight, torch.Tensor):
        raise ValueError(
            f"{type(module).__name__} has no parameter named {name!r} (parameters: {[n for n, _ in module.named_parameters(recurse=False)]})"
        )
    if dim is None:
        dim = _default_dim(module)
    sn = _SpectralNorm(weight, n_power_iterations, dim, eps, iterate_on_forward)
    parametrize.register_parametrization(module, name, sn)
    return module


def _sn_of(module, name):
    if not parametrize.is_parametrized(module, name):
        return None
    for p in module.parametrizations[name]:
        if isinstance(p, _SpectralNorm):
            return p
    return None


def remove_spectral_norm(module, name="weight"):
    """Undo spectral_norm: `module.<name>` becomes a plain parameter holding the
    current W / sigma (u, v are dropped). Returns `module`."""
    if _sn_of(module, name) is None:
        raise ValueError(f"spectral_norm of {name!r} not found in {type(module).__name__}")
    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return module


def spectral_norm_layers(module):
    """[(submodule, name, parametrization, original weight)] for every
    wgan_fast spectral norm inside `module` (itself included)."""
    out = []
    for m in module.modules():
        if not parametrize.is_parametrized(m):
            continue
        for name, plist in m.parametrizations.items():
            for p in plist:
                if isinstance(p, _SpectralNorm):
                    if plist[0] is not p:
                        raise RuntimeError(f"spectral norm of {type(m).__name__}.{name} must be its first parametrization")
                    out.append((m, name, p, plist.original))
    return out


def set_iterate_on_forward(module, flag):
    """Set iterate_on_forward on every spectral norm inside `module`; returns it."""
    for _, _, p, _ in spectral_norm_layers(module):
        p.iterate_on_forward = bool(flag)
    return module


def power_iteration_(module, *, force=False, impl="auto"):
    """One update of u, v (n_power_iterations steps each) for every spectrally
    normalised layer of `module` in training mode (all of them with
    force=True). Layers are grouped by device, n_power_iterations and eps;
    each group is one native call. Returns the number of layers updated."""
    groups = {}
    for _, _, p, w in spectral_norm_layers(module):
        if not (p.training or force):
            continue
        key = (w.device, p.n_power_iterations, p.eps)
        g = groups.setdefault(key, ([], [], [], []))
        g[0].append(p.weight3d(w))
        g[1].append(p._u)
        g[2].append(p._v)
        g[3].append((p, w))
    n = 0
    for (_, n_iter, eps), (ws, us, vs, owners) in groups.items():
        sigmas = spectral_norm_power_iteration_(ws, us, vs, n_iter, eps, impl=impl)
        for (p, w), sigma in zip(owners, sigmas.unbind(0)):
            p.remember_sigma_(w, sigma)
        n += len(ws)
    return n

