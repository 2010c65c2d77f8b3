// Schemas of every wgan_fast op. Backends register their kernels in
// csrc/cpu and csrc/cuda; fake (meta) kernels and autograd formulas are
// registered from Python (wgan_fast/ops), as torch.library recommends.
#include <torch/library.h>

TORCH_LIBRARY(wgan_fast, m) {
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
}
