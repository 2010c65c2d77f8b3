// Declarations shared by the schema file, the CPU and CUDA kernels and the
// C++ tests: argument checks, layout helpers, the backend-independent op
// drivers and the per-backend kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <tuple>

namespace wgan_fast {

// ---- argument checks (same messages on every backend) ---------------------
void check_interpolate_args(const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& alpha);
void check_grad_penalty_args(const at::Tensor& grad, double center,
                             double eps);
// A (B,) per-sample vector argument (undefined passes through), in grad's
// opmath dtype (float32, or float64 for float64), on grad's device; may be
// strided (e.g. expanded).
at::Tensor check_per_sample(const at::Tensor& t, const at::Tensor& grad,
                            const char* name);

// ---- layout ----------------------------------------------------------------
// True when every sample occupies one dense block of memory and the batch
// dimension is outermost (contiguous and channels_last both qualify): the
// kernels can then walk the tensor as a row-major (B, D) buffer in storage
// order, whatever the order of the other dimensions.
bool batch_major_dense(const at::Tensor& t);
// Same strides on every dimension of size > 1.
bool same_layout(const at::Tensor& a, const at::Tensor& b);
// Number of elements per sample.
int64_t row_size(const at::Tensor& t);
// float32 for float32/float16/bfloat16, float64 for float64.
at::ScalarType opmath_dtype(at::ScalarType t);

// ---- row kernels: each backend implements these on (B, D) buffers ----------
// Inputs are batch-major dense with one layout; outputs have that layout.
// alpha, norms and per-sample gradients are opmath (B,) vectors.
struct RowKernels {
  void (*interpolate)(const at::Tensor& real, const at::Tensor& fake,
                      const at::Tensor& alpha, at::Tensor& out);
  // grad_real / grad_fake / grad_alpha may be undefined: not wanted.
  void (*interpolate_backward)(const at::Tensor& grad, const at::Tensor& real,
                               const at::Tensor& fake, const at::Tensor& alpha,
                               at::Tensor& grad_real, at::Tensor& grad_fake,
                               at::Tensor& grad_alpha);
  void (*grad_penalty)(const at::Tensor& grad, double center, bool one_sided,
                       double eps, at::Tensor& penalty, at::Tensor& norm);
  // grad_penalty / grad_norm may be undefined (zero).
  void (*grad_penalty_backward)(const at::Tensor& grad_penalty,
                                const at::Tensor& grad_norm,
                                const at::Tensor& grad, const at::Tensor& norm,
                                double center, bool one_sided,
                                at::Tensor& grad_in);
};

// ---- op drivers: checks, layouts, allocation; then the backend's kernels ---
at::Tensor interpolate_op(const RowKernels& k, const at::Tensor& real,
                          const at::Tensor& fake, const at::Tensor& alpha);
std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_backward_op(
    const RowKernels& k, const at::Tensor& grad, const at::Tensor& real,
    const at::Tensor& fake, const at::Tensor& alpha,
    std::array<bool, 3> output_mask);
std::tuple<at::Tensor, at::Tensor> grad_penalty_op(const RowKernels& k,
                                                   const at::Tensor& grad,
                                                   double center,
                                                   bool one_sided, double eps);
at::Tensor grad_penalty_backward_op(const RowKernels& k,
                                    const std::optional<at::Tensor>& grad_penalty,
                                    const std::optional<at::Tensor>& grad_norm,
                                    const at::Tensor& grad,
                                    const at::Tensor& norm, double center,
                                    bool one_sided);

// The CPU row kernels (the C++ tests call the ops through these).
const RowKernels& cpu_kernels();

// Registers the four ops for one backend (inside TORCH_LIBRARY_IMPL).
template <const RowKernels& K>
void register_gp_ops(torch::Library& m) {
  m.impl("interpolate", [](const at::Tensor& real, const at::Tensor& fake,
                           const at::Tensor& alpha) {
    return interpolate_op(K, real, fake, alpha);
  });
  m.impl("interpolate_backward",
         [](const at::Tensor& grad, const at::Tensor& real, const at::Tensor& fake,
            const at::Tensor& alpha, std::array<bool, 3> output_mask) {
           return interpolate_backward_op(K, grad, real, fake, alpha, output_mask);
         });
  m.impl("grad_penalty", [](const at::Tensor& grad, double center, bool one_sided,
                            double eps) {
    return grad_penalty_op(K, grad, center, one_sided, eps);
  });
  m.impl("grad_penalty_backward",
         [](const std::optional<at::Tensor>& grad_penalty,
            const std::optional<at::Tensor>& grad_norm, const at::Tensor& grad,
            const at::Tensor& norm, double center, bool one_sided) {
           return grad_penalty_backward_op(K, grad_penalty, grad_norm, grad, norm,
                                           center, one_sided);
         });
}

}  // namespace wgan_fast
