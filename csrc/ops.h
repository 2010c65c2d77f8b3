// How every wgan_fast op is put together, for the schemas (ops.cpp), the
// backend-independent code (op_checks.cpp, op_drivers.cpp), the backends
// (csrc/cpu, csrc/cuda) and the C++ tests.
//
// One pattern for every op: a backend supplies only its kernels, as a
// Kernels table; register_ops<table> binds each schema to a driver that
// checks the arguments, handles layouts, device and allocation (once, for
// every backend) and then calls the table's kernel.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <tuple>

namespace wgan_fast {

// ---- argument checks (same messages on every backend) ---------------------
// A floating-point tensor; `index` >= 0 names element `index` of a list
// argument (and reports its shape, to find it).
void check_floating(const at::Tensor& t, const char* name, int64_t index = -1);
void check_interpolate_args(const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& alpha);
void check_grad_penalty_args(const at::Tensor& grad, double center,
                             double eps);
// A (B,) per-sample vector argument (undefined passes through), in grad's
// opmath dtype (float32, or float64 for float64), on grad's device; may be
// strided (e.g. expanded).
at::Tensor check_per_sample(const at::Tensor& t, const at::Tensor& grad,
                            const char* name);
// clip_: a non-empty list of floating-point tensors on one device, each
// non-overlapping and dense (contiguous, channels_last or any permutation:
// the op is element-wise, so storage order is irrelevant), and a finite
// bound > 0. Errors name the offending tensor by index.
void check_clip_args(at::TensorList tensors, double bound);
// The power iteration: weights[i] is (A, H, B) contiguous, the (H, A*B)
// matrix is W_mat[h, a*B + b] = weights[i][a, h, b] (A = 1 for dim = 0; A =
// size of the leading dims for dim > 0, which saves a permuted copy). us[i]
// has H elements, vs[i] A*B, contiguous, W's dtype and device.
void check_power_iteration_args(at::TensorList weights, at::TensorList us,
                                at::TensorList vs, int64_t n_iter, double eps);

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

// ---- kernels: what a backend implements -------------------------------------
// The drivers have checked the arguments and made the backend's device
// current before a kernel runs.
//
// Row kernels work on (B, D) buffers: inputs are batch-major dense with one
// layout and outputs have that layout; alpha, norms and per-sample gradients
// are opmath (B,) vectors.
using InterpolateKernel = void(const at::Tensor& real, const at::Tensor& fake,
                               const at::Tensor& alpha, at::Tensor& out);
// grad_real / grad_fake / grad_alpha may be undefined: not wanted.
using InterpolateBackwardKernel = void(const at::Tensor& grad, const at::Tensor& real,
                                       const at::Tensor& fake, const at::Tensor& alpha,
                                       at::Tensor& grad_real, at::Tensor& grad_fake,
                                       at::Tensor& grad_alpha);
using GradPenaltyKernel = void(const at::Tensor& grad, double center, bool one_sided,
                               double eps, at::Tensor& penalty, at::Tensor& norm);
// grad_penalty / grad_norm may be undefined (zero).
using GradPenaltyBackwardKernel = void(const at::Tensor& grad_penalty,
                                       const at::Tensor& grad_norm, const at::Tensor& grad,
                                       const at::Tensor& norm, double center,
                                       bool one_sided, at::Tensor& grad_in);
// Clamps every tensor of a non-empty list in place to [-bound, bound].
using ClipKernel = void(at::TensorList tensors, double bound);
// n_iter steps for every layer of a non-empty list; writes sigma_i = u_i^T W_i
// v_i of the new u, v into sigmas (float64, (L,), on the weights' device).
using PowerIterationKernel = void(at::TensorList weights, at::TensorList us,
                                  at::TensorList vs, int64_t n_iter, double eps,
                                  at::Tensor& sigmas);

struct Kernels {
  InterpolateKernel* interpolate;
  InterpolateBackwardKernel* interpolate_backward;
  GradPenaltyKernel* grad_penalty;
  GradPenaltyBackwardKernel* grad_penalty_backward;
  ClipKernel* clip;
  PowerIterationKernel* power_iteration;
};

// The kernels of each backend (one list, declared through the entry types,
// so that no backend can drift from the table's signatures).
#define WF_DECLARE_KERNELS                            \
  InterpolateKernel interpolate;                      \
  InterpolateBackwardKernel interpolate_backward;     \
  GradPenaltyKernel grad_penalty;                     \
  GradPenaltyBackwardKernel grad_penalty_backward;    \
  ClipKernel clip;                                    \
  PowerIterationKernel power_iteration;
namespace cpu {
WF_DECLARE_KERNELS
}  // namespace cpu
namespace cuda {
WF_DECLARE_KERNELS
}  // namespace cuda
#undef WF_DECLARE_KERNELS

// The CPU table (csrc/cpu/register_cpu.cpp); the C++ tests call the ops
// through it.
const Kernels& cpu_kernels();

// ---- op drivers: checks, layouts, device, allocation; then the kernel -------
at::Tensor interpolate_op(const Kernels& k, const at::Tensor& real,
                          const at::Tensor& fake, const at::Tensor& alpha);
std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_backward_op(
    const Kernels& k, const at::Tensor& grad, const at::Tensor& real,
    const at::Tensor& fake, const at::Tensor& alpha,
    std::array<bool, 3> output_mask);
std::tuple<at::Tensor, at::Tensor> grad_penalty_op(const Kernels& k,
                                                   const at::Tensor& grad,
                                                   double center,
                                                   bool one_sided, double eps);
at::Tensor grad_penalty_backward_op(const Kernels& k,
                                    const std::optional<at::Tensor>& grad_penalty,
                                    const std::optional<at::Tensor>& grad_norm,
                                    const at::Tensor& grad,
                                    const at::Tensor& norm, double center,
                                    bool one_sided);
void clip_op(const Kernels& k, at::TensorList tensors, double bound);
at::Tensor power_iteration_op(const Kernels& k, at::TensorList weights,
                              at::TensorList us, at::TensorList vs,
                              int64_t n_iter, double eps);

// Binds every schema of ops.cpp to its driver with backend K's kernels
// (inside TORCH_LIBRARY_IMPL(wgan_fast, <backend>, m)).
template <const Kernels& K>
void register_ops(torch::Library& m) {
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
  m.impl("clip_", [](at::TensorList tensors, double bound) {
    clip_op(K, tensors, bound);
  });
  m.impl("spectral_norm_power_iteration_",
         [](at::TensorList weights, at::TensorList us, at::TensorList vs,
            int64_t n_iter, double eps) {
           return power_iteration_op(K, weights, us, vs, n_iter, eps);
         });
}

}  // namespace wgan_fast
