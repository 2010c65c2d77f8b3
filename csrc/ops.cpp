// Schemas of every wgan_fast op. Each backend binds them to the drivers with
// its kernels in one place (csrc/cpu/register_cpu.cpp,
// csrc/cuda/register_cuda.cu; see register_ops in ops.h); fake (meta)
// kernels and autograd formulas are registered from Python (wgan_fast/ops),
// as torch.library recommends.
#include <torch/library.h>

TORCH_LIBRARY(wgan_fast, m) {
  // ---- gradient penalty (wgan_fast/ops/interpolate.py, grad_penalty.py) ----
  // x_hat = alpha * real + (1 - alpha) * fake, alpha of shape (B,).
  m.def("interpolate(Tensor real, Tensor fake, Tensor alpha) -> Tensor");
  // -> (grad_real, grad_fake, grad_alpha); outputs masked off come back
  // empty (0 elements) and cost nothing.
  m.def(
      "interpolate_backward(Tensor grad, Tensor real, Tensor fake, "
      "Tensor alpha, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  // -> (penalty[B], norm[B]); norm = sqrt(sum(grad_b^2) + eps),
  // penalty = (norm - center)^2, or max(0, norm - center)^2 when one-sided.
  m.def(
      "grad_penalty(Tensor grad, float center, bool one_sided, float eps) "
      "-> (Tensor, Tensor)");
  // d/d grad of (penalty, norm) given their upstream gradients (either may
  // be None) and the forward's norm.
  m.def(
      "grad_penalty_backward(Tensor? grad_penalty, Tensor? grad_norm, "
      "Tensor grad, Tensor norm, float center, bool one_sided) -> Tensor");

  // ---- critic Lipschitz constraints (wgan_fast/ops/clip.py, spectral_norm.py)
  // Clamps every tensor of the list in place to [-bound, bound] (torch.clamp
  // semantics, NaN propagates). One parallel pass on CPU, one multi-tensor
  // launch per full argument block on CUDA.
  m.def("clip_(Tensor(a!)[] tensors, float bound) -> ()");
  // n_power_iterations steps of u <- normalize(W v), v <- normalize(W^T u)
  // (torch.nn.utils.parametrizations.spectral_norm's order and
  // normalisation, x / max(||x||, eps)) for every (W, u, v) of the lists,
  // updating u and v in place. W is given as (A, H, B), see ops.h.
  // Returns sigma_i = u_i^T W_i v_i with the new u, v, as a float64 (L,)
  // tensor, computed for free from the last step as (W^T u) . v.
  m.def(
      "spectral_norm_power_iteration_(Tensor[] weights, Tensor(a!)[] us, "
      "Tensor(b!)[] vs, int n_power_iterations, float eps) -> Tensor");
}
