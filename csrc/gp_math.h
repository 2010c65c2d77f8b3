// Per-element and per-row math of the gradient-penalty ops.
//
// This header is the single source of the arithmetic: the CPU kernels
// (csrc/cpu) and the CUDA kernels (csrc/cuda) both call these functions, so
// the CPU tests exercise exactly the formulas the GPU runs. Everything is
// computed in `opmath` precision (float for half/bfloat16/float, double for
// double) and only rounded to the storage type on store.
#pragma once

#include "kernel_common.h"

namespace wgan_fast {
namespace math {

// x_hat = alpha * real + (1 - alpha) * fake. Written this way (not as
// fake + alpha * (real - fake)) so that alpha = 1 gives real and alpha = 0
// gives fake exactly; the kernels are memory-bound, the extra multiply is free.
template <typename T>
WF_HOST_DEVICE T interpolate(T real, T fake, T alpha) {
  return alpha * real + (T(1) - alpha) * fake;
}

// d x_hat / d real = alpha, d x_hat / d fake = 1 - alpha.
template <typename T>
WF_HOST_DEVICE T interpolate_grad_real(T grad, T alpha) {
  return alpha * grad;
}
template <typename T>
WF_HOST_DEVICE T interpolate_grad_fake(T grad, T alpha) {
  return (T(1) - alpha) * grad;
}
// Summed over a sample's elements this is d x_hat / d alpha_b.
template <typename T>
WF_HOST_DEVICE T interpolate_grad_alpha_term(T grad, T real, T fake) {
  return grad * (real - fake);
}

// The epsilon sits inside the square root: a zero row then has norm
// sqrt(eps) and finite derivatives of every order (outside it the double
// backward divides by zero).
template <typename T>
WF_HOST_DEVICE T row_norm(T sum_of_squares, T eps) {
  return opmath_sqrt(sum_of_squares + eps);
}

// ||g|| - center, clamped at 0 from below for the one-sided (WGAN-LP) form.
template <typename T>
WF_HOST_DEVICE T penalty_excess(T norm, T center, bool one_sided) {
  T d = norm - center;
  return (one_sided && d < T(0)) ? T(0) : d;
}

// phi(n) = (n - c)^2, or max(0, n - c)^2 when one-sided.
template <typename T>
WF_HOST_DEVICE T penalty(T norm, T center, bool one_sided) {
  T d = penalty_excess(norm, center, one_sided);
  return d * d;
}

// phi'(n)
template <typename T>
WF_HOST_DEVICE T penalty_dnorm(T norm, T center, bool one_sided) {
  return T(2) * penalty_excess(norm, center, one_sided);
}

// Backward of (penalty_b, norm_b) with respect to the row g_b:
//   dL/dg_b = g_b * (gp_b * phi'(n_b) + gn_b) / n_b.
// A norm of exactly zero (only possible with eps = 0) gets the subgradient 0.
// The backward of this backward (wgan_fast/ops/grad_penalty.py) takes k and
// its derivatives in gp and gn from this function through the op, and adds
// only phi''(n), the one derivative no kernel needs.
template <typename T>
WF_HOST_DEVICE T penalty_row_scale(T grad_penalty, T grad_norm, T norm, T center,
                          bool one_sided) {
  if (!(norm > T(0))) return T(0);
  return (grad_penalty * penalty_dnorm(norm, center, one_sided) + grad_norm) /
         norm;
}

}  // namespace math
}  // namespace wgan_fast
