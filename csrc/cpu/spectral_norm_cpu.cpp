// CPU kernel of the spectral-norm power iteration.
//
// One step is u <- normalize(W v), v <- normalize(W^T u). Both products are
// computed in ONE pass over W: for each row h, s_h = W_h . v, then
// t += s_h * W_h while the row is still in cache, and W^T u = t / ||s||
// (normalisation is a scalar). Rows are split into a fixed number of blocks
// that depends only on W's shape, each block accumulates its own t, and the
// partial t are summed in block order: the result is bit-identical for any
// number of threads (the DDP guarantee of wgan_fast.nn.spectral_norm).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "../lipschitz_math.h"
#include "../lipschitz_ops.h"

namespace wgan_fast {
namespace {

template <typename scalar_t, typename opmath_t>
__attribute__((always_inline)) inline opmath_t dot_body(
    const scalar_t* __restrict__ w, const opmath_t* __restrict__ v, int64_t n) {
  opmath_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < n; ++j) acc += static_cast<opmath_t>(w[j]) * v[j];
  return acc;
}

template <typename scalar_t, typename opmath_t>
__attribute__((always_inline)) inline void axpy_body(opmath_t* __restrict__ t, opmath_t s,
                                                     const scalar_t* __restrict__ w,
                                                     int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) t[j] += s * static_cast<opmath_t>(w[j]);
}

// float32 and float64, the common cases, get the multi-versioned loops.
WF_CPU_CLONES float dot_f32(const float* w, const float* v, int64_t n) {
  return dot_body<float, float>(w, v, n);
}
WF_CPU_CLONES double dot_f64(const double* w, const double* v, int64_t n) {
  return dot_body<double, double>(w, v, n);
}
WF_CPU_CLONES void axpy_f32(float* t, float s, const float* w, int64_t n) {
  axpy_body<float, float>(t, s, w, n);
}
WF_CPU_CLONES void axpy_f64(double* t, double s, const double* w, int64_t n) {
  axpy_body<double, double>(t, s, w, n);
}

template <typename scalar_t, typename opmath_t>
opmath_t dot_span(const scalar_t* w, const opmath_t* v, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    return dot_f32(w, v, n);
  } else if constexpr (std::is_same_v<scalar_t, double>) {
    return dot_f64(w, v, n);
  } else {
    return dot_body<scalar_t, opmath_t>(w, v, n);
  }
}

template <typename scalar_t, typename opmath_t>
void axpy_span(opmath_t* t, opmath_t s, const scalar_t* w, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    axpy_f32(t, s, w, n);
  } else if constexpr (std::is_same_v<scalar_t, double>) {
    axpy_f64(t, s, w, n);
  } else {
    axpy_body<scalar_t, opmath_t>(t, s, w, n);
  }
}

template <typename scalar_t>
void power_iteration_one(const at::Tensor& weight, const at::Tensor& u_t,
                         const at::Tensor& v_t, int64_t n_iter, double eps_d) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t A = weight.size(0), H = weight.size(1), B = weight.size(2);
  const int64_t C = A * B;
  const scalar_t* W = weight.const_data_ptr<scalar_t>();
  scalar_t* u = u_t.mutable_data_ptr<scalar_t>();
  scalar_t* v = v_t.mutable_data_ptr<scalar_t>();
  const opmath_t eps = static_cast<opmath_t>(eps_d);
  const int64_t blocks = lipschitz::power_iteration_row_blocks(H, C);
  std::vector<opmath_t> vf(C), s(H), t(static_cast<size_t>(blocks) * C);

  for (int64_t it = 0; it < n_iter; ++it) {
    for (int64_t j = 0; j < C; ++j) vf[j] = static_cast<opmath_t>(v[j]);
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t h0 = H * k / blocks, h1 = H * (k + 1) / blocks;
        opmath_t* tk = t.data() + k * C;
        std::fill(tk, tk + C, opmath_t(0));
        for (int64_t h = h0; h < h1; ++h) {
          opmath_t sh = 0;
          for (int64_t a = 0; a < A; ++a) {
            sh += dot_span<scalar_t, opmath_t>(W + (a * H + h) * B, vf.data() + a * B, B);
          }
          s[h] = sh;
          for (int64_t a = 0; a < A; ++a) {
            axpy_span<scalar_t, opmath_t>(tk + a * B, sh, W + (a * H + h) * B, B);
          }
        }
      }
    });
    opmath_t ss = 0;
    for (int64_t h = 0; h < H; ++h) ss += s[h] * s[h];
    const opmath_t nu = lipschitz::normalize_denominator(ss, eps);
    for (int64_t h = 0; h < H; ++h) u[h] = static_cast<scalar_t>(s[h] / nu);
    // W^T u = (sum_k t_k) / nu, summed in block order.
    opmath_t* t0 = t.data();
    for (int64_t k = 1; k < blocks; ++k) {
      const opmath_t* tk = t.data() + k * C;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) t0[j] += tk[j];
    }
    opmath_t tt = 0;
    for (int64_t j = 0; j < C; ++j) {
      t0[j] /= nu;
      tt += t0[j] * t0[j];
    }
    const opmath_t nv = lipschitz::normalize_denominator(tt, eps);
    for (int64_t j = 0; j < C; ++j) v[j] = static_cast<scalar_t>(t0[j] / nv);
  }
}

}  // namespace

void power_iteration_cpu(at::TensorList weights, at::TensorList us,
                         at::TensorList vs, int64_t n_iter, double eps) {
  check_power_iteration_args(weights, us, vs, n_iter, eps);
  for (size_t i = 0; i < weights.size(); ++i) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, weights[i].scalar_type(),
        "spectral_norm_power_iteration_cpu", [&] {
          power_iteration_one<scalar_t>(weights[i], us[i], vs[i], n_iter, eps);
        });
  }
}

namespace {
void power_iteration_cpu_op(at::TensorList weights, at::TensorList us,
                            at::TensorList vs, int64_t n_iter, double eps) {
  power_iteration_cpu(weights, us, vs, n_iter, eps);
}
}  // namespace

TORCH_LIBRARY_IMPL(wgan_fast, CPU, m) {
  m.impl("spectral_norm_power_iteration_", &power_iteration_cpu_op);
}

}  // namespace wgan_fast
