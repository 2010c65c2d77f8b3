// Schemas of the critic-Lipschitz ops and their argument checks. Kernels are
// registered in csrc/cpu/{clip,spectral_norm}_cpu.cpp and
// csrc/cuda/{clip,spectral_norm}_cuda.cu; fake kernels from Python
// (wgan_fast/ops/clip.py, wgan_fast/nn/spectral_norm.py).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>

#include "lipschitz_ops.h"

namespace wgan_fast {

namespace {

void check_float_dtype(const at::Tensor& t, const char* what, size_t i) {
  TORCH_CHECK_VALUE(t.defined(), what, "[", i, "] is undefined");
  TORCH_CHECK_VALUE(at::isFloatingType(t.scalar_type()), what, "[", i,
                    "] must be a floating-point tensor (float32, float64, "
                    "float16 or bfloat16), got ",
                    t.scalar_type(), " of shape ", t.sizes());
}

}  // namespace

void check_clip_args(at::TensorList tensors, double bound) {
  TORCH_CHECK_VALUE(std::isfinite(bound) && bound > 0.0,
                    "bound must be a finite number > 0, got ", bound);
  TORCH_CHECK_VALUE(!tensors.empty(),
                    "tensors must be a non-empty list of tensors");
  const auto device = tensors[0].device();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    check_float_dtype(t, "tensors", i);
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
    check_float_dtype(w, "weights", i);
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

TORCH_LIBRARY_FRAGMENT(wgan_fast, m) {
  // Clamps every tensor of the list in place to [-bound, bound] (torch.clamp
  // semantics, NaN propagates). One parallel pass on CPU, one multi-tensor
  // launch per full argument block on CUDA.
  m.def("clip_(Tensor(a!)[] tensors, float bound) -> ()");
  // n_power_iterations steps of u <- normalize(W v), v <- normalize(W^T u)
  // (torch.nn.utils.parametrizations.spectral_norm's order and
  // normalisation, x / max(||x||, eps)) for every (W, u, v) of the lists,
  // updating u and v in place. W is given as (A, H, B), see lipschitz_ops.h.
  // Returns sigma_i = u_i^T W_i v_i with the new u, v, as a float64 (L,)
  // tensor, computed for free from the last step as (W^T u) . v.
  m.def(
      "spectral_norm_power_iteration_(Tensor[] weights, Tensor(a!)[] us, "
      "Tensor(b!)[] vs, int n_power_iterations, float eps) -> Tensor");
}
