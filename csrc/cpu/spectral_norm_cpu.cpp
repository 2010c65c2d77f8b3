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
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "lipschitz_math.h"
#include "ops.h"

namespace wgan_fast {
namespace {

// Rows are processed four at a time: four independent accumulator chains
// (one FMA chain alone is latency-bound), v loaded once for four rows, and t
// loaded and stored once per four rows.
template <typename scalar_t, typename opmath_t>
__attribute__((always_inline)) inline void dot4_body(
    const scalar_t* __restrict__ w0, const scalar_t* __restrict__ w1,
    const scalar_t* __restrict__ w2, const scalar_t* __restrict__ w3,
    const opmath_t* __restrict__ v, int64_t n, opmath_t* out) {
  opmath_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t j = 0; j < n; ++j) {
    const opmath_t vj = v[j];
    a0 += static_cast<opmath_t>(w0[j]) * vj;
    a1 += static_cast<opmath_t>(w1[j]) * vj;
    a2 += static_cast<opmath_t>(w2[j]) * vj;
    a3 += static_cast<opmath_t>(w3[j]) * vj;
  }
  out[0] += a0;
  out[1] += a1;
  out[2] += a2;
  out[3] += a3;
}

template <typename scalar_t, typename opmath_t>
__attribute__((always_inline)) inline void axpy4_body(
    opmath_t* __restrict__ t, const opmath_t* s, const scalar_t* __restrict__ w0,
    const scalar_t* __restrict__ w1, const scalar_t* __restrict__ w2,
    const scalar_t* __restrict__ w3, int64_t n) {
  const opmath_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    t[j] += s0 * static_cast<opmath_t>(w0[j]) + s1 * static_cast<opmath_t>(w1[j]) +
            s2 * static_cast<opmath_t>(w2[j]) + s3 * static_cast<opmath_t>(w3[j]);
  }
}

// float32 and float64, the common cases, get the multi-versioned loops.
#define WF_DEFINE_CLONES(T, SUFFIX)                                              \
  WF_CPU_CLONES void dot4_##SUFFIX(const T* w0, const T* w1, const T* w2,        \
                                   const T* w3, const T* v, int64_t n, T* out) { \
    dot4_body<T, T>(w0, w1, w2, w3, v, n, out);                                  \
  }                                                                              \
  WF_CPU_CLONES void axpy4_##SUFFIX(T* t, const T* s, const T* w0, const T* w1,  \
                                    const T* w2, const T* w3, int64_t n) {       \
    axpy4_body<T, T>(t, s, w0, w1, w2, w3, n);                                   \
  }
WF_DEFINE_CLONES(float, f32)
WF_DEFINE_CLONES(double, f64)
#undef WF_DEFINE_CLONES

template <typename scalar_t, typename opmath_t>
void dot4(const scalar_t* const* w, const opmath_t* v, int64_t n, opmath_t* out) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    dot4_f32(w[0], w[1], w[2], w[3], v, n, out);
  } else if constexpr (std::is_same_v<scalar_t, double>) {
    dot4_f64(w[0], w[1], w[2], w[3], v, n, out);
  } else {
    dot4_body<scalar_t, opmath_t>(w[0], w[1], w[2], w[3], v, n, out);
  }
}

template <typename scalar_t, typename opmath_t>
void axpy4(opmath_t* t, const opmath_t* s, const scalar_t* const* w, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    axpy4_f32(t, s, w[0], w[1], w[2], w[3], n);
  } else if constexpr (std::is_same_v<scalar_t, double>) {
    axpy4_f64(t, s, w[0], w[1], w[2], w[3], n);
  } else {
    axpy4_body<scalar_t, opmath_t>(t, s, w[0], w[1], w[2], w[3], n);
  }
}

template <typename scalar_t>
double power_iteration_one(const at::Tensor& weight, const at::Tensor& u_t,
                         const at::Tensor& v_t, int64_t n_iter, double eps_d) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t A = weight.size(0), H = weight.size(1), B = weight.size(2);
  const int64_t C = A * B;
  const scalar_t* W = weight.const_data_ptr<scalar_t>();
  scalar_t* u = u_t.mutable_data_ptr<scalar_t>();
  scalar_t* v = v_t.mutable_data_ptr<scalar_t>();
  const opmath_t eps = static_cast<opmath_t>(eps_d);
  const int64_t blocks = math::power_iteration_row_blocks(H, C);
  std::vector<opmath_t> vf(C), s(H), t(static_cast<size_t>(blocks) * C);
  opmath_t sigma = 0;

  for (int64_t it = 0; it < n_iter; ++it) {
    for (int64_t j = 0; j < C; ++j) vf[j] = static_cast<opmath_t>(v[j]);
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t h0 = H * k / blocks, h1 = H * (k + 1) / blocks;
        opmath_t* tk = t.data() + k * C;
        std::fill(tk, tk + C, opmath_t(0));
        // Groups of four rows; a short last group repeats its last row with
        // a zero coefficient (its products are computed but never used).
        for (int64_t g = h0; g < h1; g += 4) {
          const int64_t nr = std::min<int64_t>(4, h1 - g);
          opmath_t sg[4] = {0, 0, 0, 0};
          const scalar_t* rows[4];
          for (int64_t a = 0; a < A; ++a) {
            for (int r = 0; r < 4; ++r) rows[r] = W + (a * H + g + std::min<int64_t>(r, nr - 1)) * B;
            dot4<scalar_t, opmath_t>(rows, vf.data() + a * B, B, sg);
          }
          for (int r = 0; r < 4; ++r) {
            if (r < nr) s[g + r] = sg[r];
            else sg[r] = 0;
          }
          for (int64_t a = 0; a < A; ++a) {
            for (int r = 0; r < 4; ++r) rows[r] = W + (a * H + g + std::min<int64_t>(r, nr - 1)) * B;
            axpy4<scalar_t, opmath_t>(tk + a * B, sg, rows, B);
          }
        }
      }
    });
    opmath_t ss = 0;
    for (int64_t h = 0; h < H; ++h) ss += s[h] * s[h];
    const opmath_t nu = math::normalize_denominator(ss, eps);
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
    const opmath_t nv = math::normalize_denominator(tt, eps);
    // sigma = u^T W v = (W^T u) . v, with v as stored
    sigma = 0;
    for (int64_t j = 0; j < C; ++j) {
      v[j] = static_cast<scalar_t>(t0[j] / nv);
      sigma += t0[j] * static_cast<opmath_t>(v[j]);
    }
  }
  return static_cast<double>(sigma);
}

}  // namespace

void cpu::power_iteration(at::TensorList weights, at::TensorList us,
                          at::TensorList vs, int64_t n_iter, double eps,
                          at::Tensor& sigmas) {
  double* out = sigmas.mutable_data_ptr<double>();
  for (size_t i = 0; i < weights.size(); ++i) {
    WF_DISPATCH_FLOATING_TYPES(weights[i].scalar_type(), "spectral_norm_power_iteration_cpu", [&] {
      out[i] = power_iteration_one<scalar_t>(weights[i], us[i], vs[i], n_iter, eps);
    });
  }
}

}  // namespace wgan_fast
