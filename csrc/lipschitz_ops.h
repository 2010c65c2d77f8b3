// Declarations of the critic-Lipschitz ops (weight clipping, spectral-norm
// power iteration): argument checks shared by every backend and the CPU
// kernels (called directly by the C++ tests).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace wgan_fast {

// Checks of clip_'s arguments: a non-empty list of floating-point tensors on
// one device, each non-overlapping and dense (contiguous, channels_last or
// any permutation: the op is element-wise, so storage order is irrelevant),
// and a finite bound > 0. Errors name the offending tensor by index.
void check_clip_args(at::TensorList tensors, double bound);

// Checks of the power iteration's arguments; weights[i] is (A, H, B)
// contiguous, the (H, A*B) matrix is W_mat[h, a*B + b] = weights[i][a, h, b]
// (A = 1 for dim = 0; A = size of the leading dims for dim > 0, which saves a
// permuted copy). us[i] has H elements, vs[i] A*B, contiguous, W's dtype and
// device.
void check_power_iteration_args(at::TensorList weights, at::TensorList us,
                                at::TensorList vs, int64_t n_iter, double eps);

// ---- CPU kernels -----------------------------------------------------------
void clip_cpu(at::TensorList tensors, double bound);
// Returns sigma_i = u_i^T W_i v_i (float64, (L,)) after the last step.
at::Tensor power_iteration_cpu(at::TensorList weights, at::TensorList us,
                               at::TensorList vs, int64_t n_iter, double eps);

}  // namespace wgan_fast
