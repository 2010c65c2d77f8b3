// Argument checks and layout helpers shared by the CPU and CUDA backends.
#include "gp_ops.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace wgan_fast {

namespace {

void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(at::isFloatingType(t.scalar_type()), name,
                   " must be a floating-point tensor (float32, float64, "
                   "float16 or bfloat16), got ",
                   t.scalar_type());
}

}  // namespace

void check_interpolate_args(const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& alpha) {
  check_floating(real, "real");
  check_floating(fake, "fake");
  check_floating(alpha, "alpha");
  TORCH_CHECK_VALUE(real.dim() >= 1,
                    "real must have a batch dimension, got a 0-dim tensor");
  TORCH_CHECK_VALUE(real.sizes() == fake.sizes(),
                    "real and fake must have the same shape, got real ",
                    real.sizes(), " and fake ", fake.sizes());
  TORCH_CHECK_VALUE(real.scalar_type() == fake.scalar_type(),
                   "real and fake must have the same dtype, got real ",
                   real.scalar_type(), " and fake ", fake.scalar_type());
  TORCH_CHECK_VALUE(alpha.dim() == 1 && alpha.size(0) == real.size(0),
                    "alpha must have shape (B,) = (", real.size(0),
                    ",) with one value per sample, got ", alpha.sizes());
  TORCH_CHECK(real.device() == fake.device() &&
                  real.device() == alpha.device(),
              "real, fake and alpha must be on the same device, got real on ",
              real.device(), ", fake on ", fake.device(), ", alpha on ",
              alpha.device());
}

void check_grad_penalty_args(const at::Tensor& grad, double center,
                             double eps) {
  check_floating(grad, "grad");
  TORCH_CHECK_VALUE(grad.dim() >= 1,
                    "grad must have a batch dimension, got a 0-dim tensor");
  TORCH_CHECK_VALUE(std::isfinite(center) && center >= 0.0,
                    "center must be a finite number >= 0, got ", center);
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0.0,
                    "eps must be a finite number >= 0, got ", eps);
}

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

at::Tensor check_per_sample(const at::Tensor& t, const at::Tensor& grad,
                            const char* name) {
  if (!t.defined()) return t;
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == grad.size(0), name,
                    " must have shape (B,) = (", grad.size(0), ",), got ",
                    t.sizes());
  TORCH_CHECK_VALUE(t.device() == grad.device(), name, " must be on ",
                    grad.device(), ", got ", t.device());
  return t.to(grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
}

}  // namespace wgan_fast
