// CPU row kernels of the fused interpolate and gradient-penalty ops (the
// drivers in op_drivers.cpp handle checks, layouts and allocation).
//
// Work is split with at::parallel_for; inner loops are plain loops over the
// shared math of gp_math.h, in templated helpers outside the dispatch macros
// so that `omp simd` applies, and the compiler vectorises them (-O3).
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "gp_math.h"
#include "ops.h"

namespace wgan_fast {
namespace {

// Elements per parallel task: below this, threading costs more than it saves.
constexpr int64_t kGrain = 1 << 15;

int64_t row_grain(int64_t D) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(D, 1));
}

// Calls f(b, begin, end) for the pieces of rows that [0, B*D) splits into.
template <typename F>
void for_each_row_piece(int64_t B, int64_t D, const F& f) {
  if (B * D == 0) return;
  at::parallel_for(0, B * D, kGrain, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    while (i < end) {
      const int64_t b = i / D;
      const int64_t stop = std::min(end, (b + 1) * D);
      f(b, i, stop);
      i = stop;
    }
  });
}

// Sum of term(j) over [begin, end) kept in kLanes independent partial sums:
// the vectorised loop is then bound by memory, not by the latency of a single
// accumulator (4x+ faster than one `omp simd reduction` accumulator).
constexpr int kLanes = 32;

template <typename opmath_t, typename F>
opmath_t lane_sum(int64_t begin, int64_t end, const F& term) {
  opmath_t acc[kLanes] = {};
  int64_t j = begin;
  for (; j + kLanes <= end; j += kLanes) {
#pragma omp simd
    for (int k = 0; k < kLanes; ++k) acc[k] += term(j + k);
  }
  opmath_t total = 0;
  for (; j < end; ++j) total += term(j);
  for (int k = 0; k < kLanes; ++k) total += acc[k];
  return total;
}

template <typename scalar_t, typename opmath_t>
void interpolate_span(const scalar_t* r, const scalar_t* f, opmath_t a,
                      scalar_t* o, int64_t begin, int64_t end) {
#pragma omp simd
  for (int64_t j = begin; j < end; ++j) {
    o[j] = static_cast<scalar_t>(math::interpolate<opmath_t>(
        static_cast<opmath_t>(r[j]), static_cast<opmath_t>(f[j]), a));
  }
}

// One row of interpolate's backward; WANT_* select the outputs at compile
// time so every variant stays a straight vectorisable loop.
template <bool WANT_REAL, bool WANT_FAKE, bool WANT_ALPHA, typename scalar_t,
          typename opmath_t>
opmath_t interpolate_backward_span(const scalar_t* g, const scalar_t* r,
                                   const scalar_t* f, opmath_t a, scalar_t* gr,
                                   scalar_t* gf, int64_t begin, int64_t end) {
  return lane_sum<opmath_t>(begin, end, [&](int64_t j) {
    const opmath_t gj = static_cast<opmath_t>(g[j]);
    if constexpr (WANT_REAL) gr[j] = static_cast<scalar_t>(math::interpolate_grad_real(gj, a));
    if constexpr (WANT_FAKE) gf[j] = static_cast<scalar_t>(math::interpolate_grad_fake(gj, a));
    if constexpr (WANT_ALPHA) {
      return math::interpolate_grad_alpha_term(gj, static_cast<opmath_t>(r[j]),
                                               static_cast<opmath_t>(f[j]));
    } else {
      return opmath_t(0);
    }
  });
}

template <typename scalar_t, typename opmath_t>
opmath_t sum_of_squares_span(const scalar_t* g, int64_t begin, int64_t end) {
  return lane_sum<opmath_t>(begin, end, [&](int64_t j) {
    const opmath_t gj = static_cast<opmath_t>(g[j]);
    return gj * gj;
  });
}

template <typename scalar_t, typename opmath_t>
void scale_span(const scalar_t* g, opmath_t k, scalar_t* o, int64_t begin,
                int64_t end) {
#pragma omp simd
  for (int64_t j = begin; j < end; ++j) {
    o[j] = static_cast<scalar_t>(static_cast<opmath_t>(g[j]) * k);
  }
}

// ---- typed row kernels -------------------------------------------------------

template <typename scalar_t>
void interpolate_typed(const at::Tensor& real, const at::Tensor& fake,
                       const at::Tensor& alpha, at::Tensor& out) {
  using opmath_t = at::opmath_type<scalar_t>;
  const scalar_t* r = real.const_data_ptr<scalar_t>();
  const scalar_t* f = fake.const_data_ptr<scalar_t>();
  const opmath_t* a = alpha.const_data_ptr<opmath_t>();
  scalar_t* o = out.mutable_data_ptr<scalar_t>();
  for_each_row_piece(real.size(0), row_size(real),
                     [&](int64_t b, int64_t begin, int64_t end) {
                       interpolate_span<scalar_t, opmath_t>(r, f, a[b], o, begin, end);
                     });
}

template <bool WR, bool WF, bool WA, typename scalar_t>
void interpolate_backward_typed(const at::Tensor& grad, const at::Tensor& real,
                                const at::Tensor& fake, const at::Tensor& alpha,
                                at::Tensor& grad_real, at::Tensor& grad_fake,
                                at::Tensor& grad_alpha) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t B = grad.size(0), D = row_size(grad);
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  const scalar_t* r = real.const_data_ptr<scalar_t>();
  const scalar_t* f = fake.const_data_ptr<scalar_t>();
  const opmath_t* a = alpha.const_data_ptr<opmath_t>();
  scalar_t* gr = WR ? grad_real.mutable_data_ptr<scalar_t>() : nullptr;
  scalar_t* gf = WF ? grad_fake.mutable_data_ptr<scalar_t>() : nullptr;
  opmath_t* ga = WA ? grad_alpha.mutable_data_ptr<opmath_t>() : nullptr;
  at::parallel_for(0, B, row_grain(D), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const opmath_t s = interpolate_backward_span<WR, WF, WA, scalar_t, opmath_t>(
          g, r, f, a[b], gr, gf, b * D, (b + 1) * D);
      if constexpr (WA) ga[b] = s;
    }
  });
}

template <typename scalar_t>
void interpolate_backward_masked(const at::Tensor& grad, const at::Tensor& real,
                                 const at::Tensor& fake, const at::Tensor& alpha,
                                 at::Tensor& gr, at::Tensor& gf, at::Tensor& ga) {
  const int mask = (gr.defined() ? 4 : 0) | (gf.defined() ? 2 : 0) | (ga.defined() ? 1 : 0);
  switch (mask) {
#define WF_CASE(M, R, F, A) \
  case M: return interpolate_backward_typed<R, F, A, scalar_t>(grad, real, fake, alpha, gr, gf, ga);
    WF_CASE(1, false, false, true)
    WF_CASE(2, false, true, false)
    WF_CASE(3, false, true, true)
    WF_CASE(4, true, false, false)
    WF_CASE(5, true, false, true)
    WF_CASE(6, true, true, false)
    WF_CASE(7, true, true, true)
#undef WF_CASE
    default: return;  // nothing wanted
  }
}

template <typename scalar_t>
void grad_penalty_typed(const at::Tensor& grad, double center, bool one_sided,
                        double eps, at::Tensor& penalty, at::Tensor& norm) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t B = grad.size(0), D = row_size(grad);
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  opmath_t* p = penalty.mutable_data_ptr<opmath_t>();
  opmath_t* n = norm.mutable_data_ptr<opmath_t>();
  const opmath_t c = static_cast<opmath_t>(center);
  const opmath_t e = static_cast<opmath_t>(eps);
  at::parallel_for(0, B, row_grain(D), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const opmath_t nb = math::row_norm(
          sum_of_squares_span<scalar_t, opmath_t>(g, b * D, (b + 1) * D), e);
      n[b] = nb;
      p[b] = math::penalty(nb, c, one_sided);
    }
  });
}

template <typename scalar_t>
void grad_penalty_backward_typed(const at::Tensor& gp_t, const at::Tensor& gn_t,
                                 const at::Tensor& grad, const at::Tensor& norm,
                                 double center, bool one_sided,
                                 at::Tensor& grad_in) {
  using opmath_t = at::opmath_type<scalar_t>;
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  const opmath_t* n = norm.const_data_ptr<opmath_t>();
  // Upstream gradients are (B,) and may be expanded (stride 0) or absent.
  const opmath_t* gp = gp_t.defined() ? gp_t.const_data_ptr<opmath_t>() : nullptr;
  const opmath_t* gn = gn_t.defined() ? gn_t.const_data_ptr<opmath_t>() : nullptr;
  const int64_t sp = gp ? gp_t.stride(0) : 0, sn = gn ? gn_t.stride(0) : 0;
  const int64_t s_norm = norm.stride(0);
  scalar_t* o = grad_in.mutable_data_ptr<scalar_t>();
  const opmath_t c = static_cast<opmath_t>(center);
  for_each_row_piece(grad.size(0), row_size(grad),
                     [&](int64_t b, int64_t begin, int64_t end) {
                       const opmath_t k = math::penalty_row_scale<opmath_t>(
                           gp ? gp[b * sp] : opmath_t(0), gn ? gn[b * sn] : opmath_t(0),
                           n[b * s_norm], c, one_sided);
                       scale_span<scalar_t, opmath_t>(g, k, o, begin, end);
                     });
}

}  // namespace

// ---- the kernels of the CPU table (register_cpu.cpp) -----------------------------

void cpu::interpolate(const at::Tensor& real, const at::Tensor& fake,
                      const at::Tensor& alpha, at::Tensor& out) {
  WF_DISPATCH_FLOATING_TYPES(real.scalar_type(), "interpolate_cpu", [&] {
    interpolate_typed<scalar_t>(real, fake, alpha, out);
  });
}

void cpu::interpolate_backward(const at::Tensor& grad, const at::Tensor& real,
                               const at::Tensor& fake, const at::Tensor& alpha,
                               at::Tensor& gr, at::Tensor& gf, at::Tensor& ga) {
  WF_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "interpolate_backward_cpu", [&] {
    interpolate_backward_masked<scalar_t>(grad, real, fake, alpha, gr, gf, ga);
  });
}

void cpu::grad_penalty(const at::Tensor& grad, double center, bool one_sided,
                       double eps, at::Tensor& penalty, at::Tensor& norm) {
  WF_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "grad_penalty_cpu", [&] {
    grad_penalty_typed<scalar_t>(grad, center, one_sided, eps, penalty, norm);
  });
}

void cpu::grad_penalty_backward(const at::Tensor& gp, const at::Tensor& gn,
                                const at::Tensor& grad, const at::Tensor& norm,
                                double center, bool one_sided, at::Tensor& grad_in) {
  WF_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "grad_penalty_backward_cpu", [&] {
    grad_penalty_backward_typed<scalar_t>(gp, gn, grad, norm, center, one_sided, grad_in);
  });
}

}  // namespace wgan_fast
