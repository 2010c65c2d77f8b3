// The backend-independent part of every op: checks, layout handling,
// device guard and allocation, then the backend's kernel (see Kernels in
// ops.h). CPU and CUDA thereby share every rule written here.
#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <c10/util/Exception.h>

#include "ops.h"

namespace wgan_fast {

namespace {

// Whether `t` can be walked as a (B, D) buffer in the storage order of `like`.
bool rows_match(const at::Tensor& t, const at::Tensor& like) {
  return batch_major_dense(like) && same_layout(t, like) &&
         t.is_non_overlapping_and_dense();
}

}  // namespace

bool batch_major_dense(const at::Tensor& t) {
  if (t.dim() == 0 || !t.is_non_overlapping_and_dense()) return false;
  if (t.size(0) <= 1 || t.numel() == 0) return true;
  return t.stride(0) == t.numel() / t.size(0);
}

bool same_layout(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

int64_t row_size(const at::Tensor& t) {
  int64_t n = 1;
  for (int64_t d = 1; d < t.dim(); ++d) n *= t.size(d);
  return n;
}

at::ScalarType opmath_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// ---- gradient penalty ----------------------------------------------------------
//
// Outputs take empty_like(first input)'s layout (so channels_last stays
// channels_last, and fake tensors can predict it). When an input cannot be
// walked in that layout, the kernels run on contiguous copies and the result
// is copied into place.

at::Tensor interpolate_op(const Kernels& k, const at::Tensor& real,
                          const at::Tensor& fake, const at::Tensor& alpha) {
  check_interpolate_args(real, fake, alpha);
  c10::DeviceGuard guard(real.device());
  const at::Tensor a = alpha.to(opmath_dtype(real.scalar_type())).contiguous();
  at::Tensor out = at::empty_like(real);
  if (rows_match(real, out) && rows_match(fake, out)) {
    k.interpolate(real, fake, a, out);
  } else {
    at::Tensor tmp = at::empty(real.sizes(), real.options());
    k.interpolate(real.contiguous(), fake.contiguous(), a, tmp);
    out.copy_(tmp);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_backward_op(
    const Kernels& k, const at::Tensor& grad, const at::Tensor& real,
    const at::Tensor& fake, const at::Tensor& alpha,
    std::array<bool, 3> output_mask) {
  check_interpolate_args(real, fake, alpha);
  TORCH_CHECK_VALUE(grad.sizes() == real.sizes() &&
                        grad.scalar_type() == real.scalar_type() &&
                        grad.device() == real.device(),
                    "grad must match real's shape, dtype and device, got ",
                    grad.sizes(), " ", grad.scalar_type(), " on ", grad.device());
  c10::DeviceGuard guard(grad.device());
  const auto op_t = opmath_dtype(real.scalar_type());
  const at::Tensor a = alpha.to(op_t).contiguous();
  // Unwanted outputs are returned empty (0 elements) and never computed:
  // without grad_alpha, real and fake are not even read.
  const auto [want_real, want_fake, want_alpha] = output_mask;
  at::Tensor grad_real = want_real ? at::empty_like(grad) : at::empty({0}, grad.options());
  at::Tensor grad_fake = want_fake ? at::empty_like(grad) : at::empty({0}, grad.options());
  at::Tensor grad_alpha = want_alpha ? at::empty({grad.size(0)}, alpha.options().dtype(op_t))
                                     : at::empty({0}, alpha.options());
  // empty_like(grad) keeps grad's strides when grad is dense.
  const bool direct = batch_major_dense(grad) && rows_match(real, grad) && rows_match(fake, grad);
  at::Tensor gr, gf, ga = want_alpha ? grad_alpha : at::Tensor();
  if (direct) {
    if (want_real) gr = grad_real;
    if (want_fake) gf = grad_fake;
    k.interpolate_backward(grad, real, fake, a, gr, gf, ga);
  } else {
    if (want_real) gr = at::empty(grad.sizes(), grad.options());
    if (want_fake) gf = at::empty(grad.sizes(), grad.options());
    k.interpolate_backward(grad.contiguous(), real.contiguous(), fake.contiguous(), a, gr, gf, ga);
    if (want_real) grad_real.copy_(gr);
    if (want_fake) grad_fake.copy_(gf);
  }
  return {grad_real, grad_fake, want_alpha ? grad_alpha.to(alpha.scalar_type()) : grad_alpha};
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_op(const Kernels& k,
                                                   const at::Tensor& grad,
                                                   double center,
                                                   bool one_sided, double eps) {
  check_grad_penalty_args(grad, center, eps);
  c10::DeviceGuard guard(grad.device());
  // Per-sample results stay in opmath precision: a float16 penalty of a large
  // norm would overflow, and they cost only B values.
  const auto per_sample = grad.options().dtype(opmath_dtype(grad.scalar_type()));
  at::Tensor penalty = at::empty({grad.size(0)}, per_sample);
  at::Tensor norm = at::empty({grad.size(0)}, per_sample);
  k.grad_penalty(batch_major_dense(grad) ? grad : grad.contiguous(), center,
                 one_sided, eps, penalty, norm);
  return {penalty, norm};
}

at::Tensor grad_penalty_backward_op(const Kernels& k,
                                    const std::optional<at::Tensor>& grad_penalty,
                                    const std::optional<at::Tensor>& grad_norm,
                                    const at::Tensor& grad,
                                    const at::Tensor& norm, double center,
                                    bool one_sided) {
  check_grad_penalty_args(grad, center, 0.0);
  c10::DeviceGuard guard(grad.device());
  const at::Tensor gp = check_per_sample(grad_penalty.value_or(at::Tensor()), grad, "grad_penalty");
  const at::Tensor gn = check_per_sample(grad_norm.value_or(at::Tensor()), grad, "grad_norm");
  TORCH_CHECK_VALUE(norm.defined(), "norm must be given");
  const at::Tensor n = check_per_sample(norm, grad, "norm");
  at::Tensor grad_in = at::empty_like(grad);
  if (rows_match(grad, grad_in)) {
    k.grad_penalty_backward(gp, gn, grad, n, center, one_sided, grad_in);
  } else {
    at::Tensor tmp = at::empty(grad.sizes(), grad.options());
    k.grad_penalty_backward(gp, gn, grad.contiguous(), n, center, one_sided, tmp);
    grad_in.copy_(tmp);
  }
  return grad_in;
}

// ---- critic Lipschitz constraints ----------------------------------------------

void clip_op(const Kernels& k, at::TensorList tensors, double bound) {
  check_clip_args(tensors, bound);
  c10::DeviceGuard guard(tensors[0].device());
  k.clip(tensors, bound);
}

at::Tensor power_iteration_op(const Kernels& k, at::TensorList weights,
                              at::TensorList us, at::TensorList vs,
                              int64_t n_iter, double eps) {
  check_power_iteration_args(weights, us, vs, n_iter, eps);
  // (Only a direct C++ call can pass an empty list: the dispatcher needs a
  // tensor to pick a backend.) As the reference: no layers, no sigmas.
  if (weights.empty()) return at::empty({0}, at::TensorOptions().dtype(at::kDouble));
  c10::DeviceGuard guard(weights[0].device());
  at::Tensor sigmas = at::empty({static_cast<int64_t>(weights.size())},
                                weights[0].options().dtype(at::kDouble));
  k.power_iteration(weights, us, vs, n_iter, eps, sigmas);
  return sigmas;
}

}  // namespace wgan_fast
