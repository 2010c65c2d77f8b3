// Declarations shared by the schema file, the CPU and CUDA kernels and the
// C++ tests: argument checks, layout helpers and the per-backend kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace wgan_fast {

// ---- argument checks (same messages on every backend) ---------------------
void check_interpolate_args(const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& alpha);
void check_grad_penalty_args(const at::Tensor& grad, double center,
                             double eps);

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
// A (B,) per-sample vector argument (undefined passes through), in grad's
// opmath dtype (float32, or float64 for float64), on grad's device; may be strided (e.g. expanded).
at::Tensor check_per_sample(const at::Tensor& t, const at::Tensor& grad,
                            const char* name);

// ---- CPU kernels -----------------------------------------------------------
at::Tensor interpolate_cpu(const at::Tensor& real, const at::Tensor& fake,
                           const at::Tensor& alpha);
std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_backward_cpu(
    const at::Tensor& grad, const at::Tensor& real, const at::Tensor& fake,
    const at::Tensor& alpha);
std::tuple<at::Tensor, at::Tensor> grad_penalty_cpu(const at::Tensor& grad,
                                                    double center,
                                                    bool one_sided, double eps);
at::Tensor grad_penalty_backward_cpu(const at::Tensor& grad_penalty,
                                     const at::Tensor& grad_norm,
                                     const at::Tensor& grad,
                                     const at::Tensor& norm, double center,
                                     bool one_sided);

}  // namespace wgan_fast
