// CPU kernels of the fused interpolate and gradient-penalty ops.
//
// Tensors are walked as row-major (B, D) buffers in storage order (see
// batch_major_dense); other layouts go through a contiguous copy. Work is
// split with at::parallel_for; inner loops are plain loops over the shared
// math of gp_math.h that the compiler vectorises (omp simd, -O3).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../gp_math.h"
#include "../gp_ops.h"

namespace wgan_fast {
namespace {

// Elements per parallel task: below this, threading costs more than it saves.
constexpr int64_t kGrain = 1 << 15;

at::ScalarType opmath_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Whether `t` can be walked as a (B, D) buffer in the storage order of `like`.
bool rows_match(const at::Tensor& t, const at::Tensor& like) {
  return batch_major_dense(like) && same_layout(t, like) &&
         t.is_non_overlapping_and_dense();
}

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

// ---- loop bodies (outside the dispatch macros, so pragmas apply) ------------

template <typename scalar_t, typename opmath_t>
void interpolate_span(const scalar_t* r, const scalar_t* f, opmath_t a,
                      scalar_t* o, int64_t begin, int64_t end) {
#pragma omp simd
  for (int64_t j = begin; j < end; ++j) {
    o[j] = static_cast<scalar_t>(math::interpolate<opmath_t>(
        static_cast<opmath_t>(r[j]), static_cast<opmath_t>(f[j]), a));
  }
}

template <typename scalar_t, typename opmath_t>
opmath_t interpolate_backward_span(const scalar_t* g, const scalar_t* r,
                                   const scalar_t* f, opmath_t a, scalar_t* gr,
                                   scalar_t* gf, int64_t begin, int64_t end) {
  opmath_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = begin; j < end; ++j) {
    const opmath_t gj = static_cast<opmath_t>(g[j]);
    gr[j] = static_cast<scalar_t>(math::interpolate_grad_real(gj, a));
    gf[j] = static_cast<scalar_t>(math::interpolate_grad_fake(gj, a));
    acc += math::interpolate_grad_alpha_term(gj, static_cast<opmath_t>(r[j]),
                                             static_cast<opmath_t>(f[j]));
  }
  return acc;
}

template <typename scalar_t, typename opmath_t>
opmath_t sum_of_squares_span(const scalar_t* g, int64_t begin, int64_t end) {
  opmath_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = begin; j < end; ++j) {
    const opmath_t gj = static_cast<opmath_t>(g[j]);
    acc += gj * gj;
  }
  return acc;
}

template <typename scalar_t, typename opmath_t>
void scale_span(const scalar_t* g, opmath_t k, scalar_t* o, int64_t begin,
                int64_t end) {
#pragma omp simd
  for (int64_t j = begin; j < end; ++j) {
    o[j] = static_cast<scalar_t>(static_cast<opmath_t>(g[j]) * k);
  }
}

// ---- kernels on (B, D) buffers ---------------------------------------------

template <typename scalar_t>
void interpolate_rows(const at::Tensor& real, const at::Tensor& fake,
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

template <typename scalar_t>
void interpolate_backward_rows(const at::Tensor& grad, const at::Tensor& real,
                               const at::Tensor& fake, const at::Tensor& alpha,
                               at::Tensor& grad_real, at::Tensor& grad_fake,
                               at::Tensor& grad_alpha) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t B = grad.size(0), D = row_size(grad);
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  const scalar_t* r = real.const_data_ptr<scalar_t>();
  const scalar_t* f = fake.const_data_ptr<scalar_t>();
  const opmath_t* a = alpha.const_data_ptr<opmath_t>();
  scalar_t* gr = grad_real.mutable_data_ptr<scalar_t>();
  scalar_t* gf = grad_fake.mutable_data_ptr<scalar_t>();
  opmath_t* ga = grad_alpha.mutable_data_ptr<opmath_t>();
  at::parallel_for(0, B, row_grain(D), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      ga[b] = interpolate_backward_span<scalar_t, opmath_t>(g, r, f, a[b], gr, gf,
                                                            b * D, (b + 1) * D);
    }
  });
}

template <typename scalar_t>
void grad_penalty_rows(const at::Tensor& grad, double center, bool one_sided,
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
void grad_penalty_backward_rows(const at::Tensor& gp_t, const at::Tensor& gn_t,
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

#define WF_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

}  // namespace

at::Tensor interpolate_cpu(const at::Tensor& real, const at::Tensor& fake,
                           const at::Tensor& alpha) {
  check_interpolate_args(real, fake, alpha);
  const at::Tensor a = alpha.to(opmath_dtype(real.scalar_type())).contiguous();
  at::Tensor out = at::empty_like(real);
  const bool direct = rows_match(real, out) && rows_match(fake, out);
  at::Tensor dst = direct ? out : at::empty(real.sizes(), real.options());
  const at::Tensor r = direct ? real : real.contiguous();
  const at::Tensor f = direct ? fake : fake.contiguous();
  WF_DISPATCH(real.scalar_type(), "interpolate_cpu",
              [&] { interpolate_rows<scalar_t>(r, f, a, dst); });
  if (!direct) out.copy_(dst);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_backward_cpu(
    const at::Tensor& grad, const at::Tensor& real, const at::Tensor& fake,
    const at::Tensor& alpha) {
  check_interpolate_args(real, fake, alpha);
  TORCH_CHECK_VALUE(grad.sizes() == real.sizes() &&
                        grad.scalar_type() == real.scalar_type() &&
                        grad.device() == real.device(),
                    "grad must match real's shape, dtype and device, got ",
                    grad.sizes(), " ", grad.scalar_type(), " on ", grad.device());
  const auto op_t = opmath_dtype(real.scalar_type());
  const at::Tensor a = alpha.to(op_t).contiguous();
  at::Tensor grad_real = at::empty_like(grad);
  at::Tensor grad_fake = at::empty_like(grad);
  at::Tensor grad_alpha = at::empty({grad.size(0)}, alpha.options().dtype(op_t));
  const bool direct = rows_match(grad, grad_real) && rows_match(real, grad_real) &&
                      rows_match(fake, grad_real);
  at::Tensor gr = direct ? grad_real : at::empty(grad.sizes(), grad.options());
  at::Tensor gf = direct ? grad_fake : at::empty(grad.sizes(), grad.options());
  const at::Tensor g = direct ? grad : grad.contiguous();
  const at::Tensor r = direct ? real : real.contiguous();
  const at::Tensor f = direct ? fake : fake.contiguous();
  WF_DISPATCH(grad.scalar_type(), "interpolate_backward_cpu", [&] {
    interpolate_backward_rows<scalar_t>(g, r, f, a, gr, gf, grad_alpha);
  });
  if (!direct) {
    grad_real.copy_(gr);
    grad_fake.copy_(gf);
  }
  return {grad_real, grad_fake, grad_alpha.to(alpha.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_cpu(const at::Tensor& grad,
                                                    double center,
                                                    bool one_sided, double eps) {
  check_grad_penalty_args(grad, center, eps);
  // Per-sample results stay in opmath precision: a float16 penalty of a large
  // norm would overflow, and they cost only B values.
  const auto per_sample = grad.options().dtype(opmath_dtype(grad.scalar_type()));
  at::Tensor penalty = at::empty({grad.size(0)}, per_sample);
  at::Tensor norm = at::empty({grad.size(0)}, per_sample);
  const at::Tensor g = batch_major_dense(grad) ? grad : grad.contiguous();
  WF_DISPATCH(grad.scalar_type(), "grad_penalty_cpu", [&] {
    grad_penalty_rows<scalar_t>(g, center, one_sided, eps, penalty, norm);
  });
  return {penalty, norm};
}

at::Tensor grad_penalty_backward_cpu(const at::Tensor& grad_penalty,
                                     const at::Tensor& grad_norm,
                                     const at::Tensor& grad,
                                     const at::Tensor& norm, double center,
                                     bool one_sided) {
  check_grad_penalty_args(grad, center, 0.0);
  const at::Tensor gp = check_per_sample(grad_penalty, grad, "grad_penalty");
  const at::Tensor gn = check_per_sample(grad_norm, grad, "grad_norm");
  TORCH_CHECK_VALUE(norm.defined(), "norm must be given");
  const at::Tensor n = check_per_sample(norm, grad, "norm");
  at::Tensor grad_in = at::empty_like(grad);
  const bool direct = rows_match(grad, grad_in);
  at::Tensor dst = direct ? grad_in : at::empty(grad.sizes(), grad.options());
  const at::Tensor g = direct ? grad : grad.contiguous();
  WF_DISPATCH(grad.scalar_type(), "grad_penalty_backward_cpu", [&] {
    grad_penalty_backward_rows<scalar_t>(gp, gn, g, n, center, one_sided, dst);
  });
  if (!direct) grad_in.copy_(dst);
  return grad_in;
}

namespace {

at::Tensor grad_penalty_backward_cpu_opt(
    const std::optional<at::Tensor>& grad_penalty,
    const std::optional<at::Tensor>& grad_norm, const at::Tensor& grad,
    const at::Tensor& norm, double center, bool one_sided) {
  return grad_penalty_backward_cpu(grad_penalty.value_or(at::Tensor()),
                                   grad_norm.value_or(at::Tensor()), grad,
                                   norm, center, one_sided);
}

}  // namespace

TORCH_LIBRARY_IMPL(wgan_fast, CPU, m) {
  m.impl("interpolate", &interpolate_cpu);
  m.impl("interpolate_backward", &interpolate_backward_cpu);
  m.impl("grad_penalty", &grad_penalty_cpu);
  m.impl("grad_penalty_backward", &grad_penalty_backward_cpu_opt);
}

}  // namespace wgan_fast
