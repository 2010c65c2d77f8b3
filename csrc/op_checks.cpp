// Argument checks of every op, shared by all backends: a bad argument gets
// the same message (a ValueError in Python, naming the argument) on CPU and
// CUDA, and the Python wrappers raise the same ones before calling the op.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "ops.h"

namespace wgan_fast {

void check_floating(const at::Tensor& t, const char* name, int64_t index) {
  if (index < 0) {
    TORCH_CHECK_VALUE(at::isFloatingType(t.scalar_type()), name,
                      " must be a floating-point tensor (float32, float64, "
                      "float16 or bfloat16), got ",
                      t.scalar_type());
    return;
  }
  TORCH_CHECK_VALUE(t.defined(), name, "[", index, "] is undefined");
  TORCH_CHECK_VALUE(at::isFloatingType(t.scalar_type()), name, "[", index,
                    "] must be a floating-point tensor (float32, float64, "
                    "float16 or bfloat16), got ",
                    t.scalar_type(), " of shape ", t.sizes());
}

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

at::Tensor check_per_sample(const at::Tensor& t, const at::Tensor& grad,
                            const char* name) {
  if (!t.defined()) return t;
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == grad.size(0), name,
                    " must have shape (B,) = (", grad.size(0), ",), got ",
                    t.sizes());
  TORCH_CHECK_VALUE(t.device() == grad.device(), name, " must be on ",
                    grad.device(), ", got ", t.device());
  return t.to(opmath_dtype(grad.scalar_type()));
}

void check_clip_args(at::TensorList tensors, double bound) {
  TORCH_CHECK_VALUE(std::isfinite(bound) && bound > 0.0,
                    "bound must be a finite number > 0, got ", bound);
  TORCH_CHECK_VALUE(!tensors.empty(),
                    "tensors must be a non-empty list of tensors");
  const auto device = tensors[0].device();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    check_floating(t, "tensors", static_cast<int64_t>(i));
    TORCH_CHECK_VALUE(t.device() == device, "tensors[", i, "] is on ",
                      t.device(), " but tensors[0] is on ", device,
                      ": all tensors must be on one device");
    TORCH_CHECK_VALUE(
        t.numel() == 0 || t.is_non_overlapping_and_dense(), "tensors[", i,
        "] of shape ", t.sizes(), " and strides ", t.strides(),
        " is not dense in memory (a strided view or an overlapping tensor); "
        "clip_ clamps tensors in place in storage order and supports "
        "contiguous, channels_last or permuted tensors only. Clip its base "
        "tensor, or clamp it with torch.clamp_ separately.");
  }
}

void check_power_iteration_args(at::TensorList weights, at::TensorList us,
                                at::TensorList vs, int64_t n_iter, double eps) {
  TORCH_CHECK_VALUE(n_iter >= 1, "n_power_iterations must be >= 1, got ",
                    n_iter);
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps > 0.0,
                    "eps must be a finite number > 0, got ", eps);
  TORCH_CHECK_VALUE(weights.size() == us.size() && weights.size() == vs.size(),
                    "weights, us and vs must have the same length, got ",
                    weights.size(), ", ", us.size(), " and ", vs.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    const at::Tensor& w = weights[i];
    const at::Tensor& u = us[i];
    const at::Tensor& v = vs[i];
    check_floating(w, "weights", static_cast<int64_t>(i));
    TORCH_CHECK_VALUE(w.dim() == 3 && w.is_contiguous(), "weights[", i,
                      "] must be a contiguous (A, H, B) tensor, got shape ",
                      w.sizes(), " and strides ", w.strides());
    const int64_t H = w.size(1), C = w.size(0) * w.size(2);
    TORCH_CHECK_VALUE(u.dim() == 1 && u.size(0) == H && u.is_contiguous(),
                      "us[", i, "] must be a contiguous vector of ", H,
                      " elements, got shape ", u.sizes());
    TORCH_CHECK_VALUE(v.dim() == 1 && v.size(0) == C && v.is_contiguous(),
                      "vs[", i, "] must be a contiguous vector of ", C,
                      " elements, got shape ", v.sizes());
    TORCH_CHECK_VALUE(u.scalar_type() == w.scalar_type() &&
                          v.scalar_type() == w.scalar_type(),
                      "us[", i, "] and vs[", i, "] must have weights[", i,
                      "]'s dtype ", w.scalar_type(), ", got ", u.scalar_type(),
                      " and ", v.scalar_type());
    TORCH_CHECK_VALUE(u.device() == w.device() && v.device() == w.device(),
                      "us[", i, "] and vs[", i, "] must be on weights[", i,
                      "]'s device ", w.device());
    TORCH_CHECK_VALUE(w.device() == weights[0].device(),
                      "all weights must be on one device, got ",
                      weights[0].device(), " and ", w.device());
  }
}

}  // namespace wgan_fast
