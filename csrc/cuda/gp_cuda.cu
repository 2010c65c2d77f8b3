// CUDA kernels of the fused interpolate and gradient-penalty ops.
//
// Layout handling mirrors csrc/cpu/gp_cpu.cpp: tensors are walked as (B, D)
// buffers in storage order. Kernels run on the current stream, never
// synchronise with the host and allocate only through the caching allocator,
// so they are safe inside CUDA graph capture. Loads and stores are 16 bytes
// wide where the pointers allow, with a scalar tail.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include "../gp_math.h"
#include "../gp_ops.h"
#include "cuda_utils.cuh"

namespace wgan_fast {
namespace {

using cuda::Pack;
using cuda::kThreads;

at::ScalarType opmath_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

bool rows_match(const at::Tensor& t, const at::Tensor& like) {
  return batch_major_dense(like) && same_layout(t, like) &&
         t.is_non_overlapping_and_dense();
}

// ---- interpolate forward: flat, one thread per VEC elements ----------------
template <typename scalar_t, int VEC>
__global__ void interpolate_kernel(const scalar_t* __restrict__ real,
                                   const scalar_t* __restrict__ fake,
                                   const at::opmath_type<scalar_t>* __restrict__ alpha,
                                   scalar_t* __restrict__ out, int64_t n,
                                   int64_t D) {
  using opmath_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const int64_t n_vec = n / VEC;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n_vec; i += stride) {
    const int64_t e = i * VEC;
    const P r = reinterpret_cast<const P*>(real)[i];
    const P f = reinterpret_cast<const P*>(fake)[i];
    P o;
    int64_t b = e / D;
    int64_t row_end = (b + 1) * D;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      if (e + k == row_end) {  // a pack can straddle rows when D % VEC != 0
        ++b;
        row_end += D;
      }
      o.v[k] = static_cast<scalar_t>(math::interpolate<opmath_t>(
          static_cast<opmath_t>(r.v[k]), static_cast<opmath_t>(f.v[k]), alpha[b]));
    }
    reinterpret_cast<P*>(out)[i] = o;
  }
  // scalar tail
  const int64_t tail = n_vec * VEC;
  const int64_t t = tail + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < n) {
    out[t] = static_cast<scalar_t>(math::interpolate<opmath_t>(
        static_cast<opmath_t>(real[t]), static_cast<opmath_t>(fake[t]), alpha[t / D]));
  }
}

void interpolate_rows(const at::Tensor& real, const at::Tensor& fake,
                      const at::Tensor& alpha, at::Tensor& out) {
  const int64_t B = real.size(0), D = row_size(real), n = B * D;
  if (n == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, real.scalar_type(), "interpolate_cuda", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        constexpr int VEC = cuda::vec_width<scalar_t>();
        const scalar_t* r = real.const_data_ptr<scalar_t>();
        const scalar_t* f = fake.const_data_ptr<scalar_t>();
        const opmath_t* a = alpha.const_data_ptr<opmath_t>();
        scalar_t* o = out.mutable_data_ptr<scalar_t>();
        if (cuda::aligned16(r) && cuda::aligned16(f) && cuda::aligned16(o)) {
          interpolate_kernel<scalar_t, VEC>
              <<<cuda::grid_for(std::max<int64_t>(n / VEC, 1)), kThreads, 0, stream>>>(
                  r, f, a, o, n, D);
        } else {
          interpolate_kernel<scalar_t, 1>
              <<<cuda::grid_for(n), kThreads, 0, stream>>>(r, f, a, o, n, D);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

// ---- interpolate backward: one block per sample (reduces grad_alpha) -------
template <typename scalar_t, int VEC>
__global__ void interpolate_backward_kernel(
    const scalar_t* __restrict__ grad, const scalar_t* __restrict__ real,
    const scalar_t* __restrict__ fake,
    const at::opmath_type<scalar_t>* __restrict__ alpha,
    scalar_t* __restrict__ grad_real, scalar_t* __restrict__ grad_fake,
    at::opmath_type<scalar_t>* __restrict__ grad_alpha, int64_t D) {
  using opmath_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const int64_t b = blockIdx.x;
  const int64_t off = b * D;  // VEC > 1 only when D % VEC == 0
  const opmath_t ab = alpha[b];
  opmath_t acc = 0;
  for (int64_t i = threadIdx.x; i < D / VEC; i += blockDim.x) {
    const P g = reinterpret_cast<const P*>(grad + off)[i];
    const P r = reinterpret_cast<const P*>(real + off)[i];
    const P f = reinterpret_cast<const P*>(fake + off)[i];
    P gr, gf;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const opmath_t gk = static_cast<opmath_t>(g.v[k]);
      gr.v[k] = static_cast<scalar_t>(math::interpolate_grad_real(gk, ab));
      gf.v[k] = static_cast<scalar_t>(math::interpolate_grad_fake(gk, ab));
      acc += math::interpolate_grad_alpha_term(gk, static_cast<opmath_t>(r.v[k]),
                                               static_cast<opmath_t>(f.v[k]));
    }
    reinterpret_cast<P*>(grad_real + off)[i] = gr;
    reinterpret_cast<P*>(grad_fake + off)[i] = gf;
  }
  acc = cuda::block_sum(acc);
  if (threadIdx.x == 0) grad_alpha[b] = acc;
}

void interpolate_backward_rows(const at::Tensor& grad, const at::Tensor& real,
                               const at::Tensor& fake, const at::Tensor& alpha,
                               at::Tensor& grad_real, at::Tensor& grad_fake,
                               at::Tensor& grad_alpha) {
  const int64_t B = grad.size(0), D = row_size(grad);
  if (B == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "interpolate_backward_cuda",
      [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        constexpr int VEC = cuda::vec_width<scalar_t>();
        const scalar_t* g = grad.const_data_ptr<scalar_t>();
        const scalar_t* r = real.const_data_ptr<scalar_t>();
        const scalar_t* f = fake.const_data_ptr<scalar_t>();
        const opmath_t* a = alpha.const_data_ptr<opmath_t>();
        scalar_t* gr = grad_real.mutable_data_ptr<scalar_t>();
        scalar_t* gf = grad_fake.mutable_data_ptr<scalar_t>();
        opmath_t* ga = grad_alpha.mutable_data_ptr<opmath_t>();
        const bool vec = D % VEC == 0 && cuda::aligned16(g) && cuda::aligned16(r) &&
                         cuda::aligned16(f) && cuda::aligned16(gr) &&
                         cuda::aligned16(gf);
        if (vec) {
          interpolate_backward_kernel<scalar_t, VEC>
              <<<B, kThreads, 0, stream>>>(g, r, f, a, gr, gf, ga, D);
        } else {
          interpolate_backward_kernel<scalar_t, 1>
              <<<B, kThreads, 0, stream>>>(g, r, f, a, gr, gf, ga, D);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

// ---- grad_penalty forward: one block per sample -----------------------------
template <typename scalar_t, int VEC>
__global__ void grad_penalty_kernel(const scalar_t* __restrict__ grad,
                                    at::opmath_type<scalar_t>* __restrict__ penalty,
                                    at::opmath_type<scalar_t>* __restrict__ norm, int64_t D,
                                    at::opmath_type<scalar_t> center,
                                    bool one_sided,
                                    at::opmath_type<scalar_t> eps) {
  using opmath_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const int64_t b = blockIdx.x;
  const scalar_t* row = grad + b * D;
  opmath_t acc = 0;
  for (int64_t i = threadIdx.x; i < D / VEC; i += blockDim.x) {
    const P g = reinterpret_cast<const P*>(row)[i];
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const opmath_t gk = static_cast<opmath_t>(g.v[k]);
      acc += gk * gk;
    }
  }
  acc = cuda::block_sum(acc);
  if (threadIdx.x == 0) {
    const opmath_t nb = math::row_norm(acc, eps);
    norm[b] = nb;
    penalty[b] = math::penalty(nb, center, one_sided);
  }
}

// ---- grad_penalty backward: flat, dL/dg = g * row_scale(b) -----------------
template <typename scalar_t, int VEC>
__global__ void grad_penalty_backward_kernel(
    const at::opmath_type<scalar_t>* __restrict__ grad_penalty, int64_t sp,
    const at::opmath_type<scalar_t>* __restrict__ grad_norm, int64_t sn,
    const scalar_t* __restrict__ grad,
    const at::opmath_type<scalar_t>* __restrict__ norm,
    int64_t s_norm, scalar_t* __restrict__ grad_in, int64_t n, int64_t D,
    at::opmath_type<scalar_t> center, bool one_sided) {
  using opmath_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  auto scale = [&](int64_t b) {
    return math::penalty_row_scale<opmath_t>(
        grad_penalty ? grad_penalty[b * sp] : opmath_t(0),
        grad_norm ? grad_norm[b * sn] : opmath_t(0), norm[b * s_norm], center,
        one_sided);
  };
  const int64_t n_vec = n / VEC;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n_vec; i += stride) {
    const int64_t e = i * VEC;
    int64_t b = e / D;
    int64_t row_end = (b + 1) * D;
    opmath_t k_b = scale(b);
    const P g = reinterpret_cast<const P*>(grad)[i];
    P o;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      if (e + k == row_end) {
        ++b;
        row_end += D;
        k_b = scale(b);
      }
      o.v[k] = static_cast<scalar_t>(static_cast<opmath_t>(g.v[k]) * k_b);
    }
    reinterpret_cast<P*>(grad_in)[i] = o;
  }
  const int64_t t = n_vec * VEC + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < n) {
    grad_in[t] = static_cast<scalar_t>(static_cast<opmath_t>(grad[t]) * scale(t / D));
  }
}

}  // namespace

at::Tensor interpolate_cuda(const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& alpha) {
  check_interpolate_args(real, fake, alpha);
  c10::cuda::CUDAGuard guard(real.device());
  at::Tensor a = alpha.to(opmath_dtype(real.scalar_type())).contiguous();
  at::Tensor out = at::empty_like(real);
  if (rows_match(real, out) && rows_match(fake, out)) {
    interpolate_rows(real, fake, a, out);
  } else {
    at::Tensor tmp = at::empty(real.sizes(), real.options());
    interpolate_rows(real.contiguous(), fake.contiguous(), a, tmp);
    out.copy_(tmp);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_backward_cuda(
    const at::Tensor& grad, const at::Tensor& real, const at::Tensor& fake,
    const at::Tensor& alpha) {
  check_interpolate_args(real, fake, alpha);
  TORCH_CHECK_VALUE(grad.sizes() == real.sizes() &&
                        grad.scalar_type() == real.scalar_type() &&
                        grad.device() == real.device(),
                    "grad must match real's shape, dtype and device, got ",
                    grad.sizes(), " ", grad.scalar_type(), " on ", grad.device());
  c10::cuda::CUDAGuard guard(grad.device());
  const auto op_t = opmath_dtype(real.scalar_type());
  at::Tensor a = alpha.to(op_t).contiguous();
  at::Tensor grad_real = at::empty_like(grad);
  at::Tensor grad_fake = at::empty_like(grad);
  at::Tensor grad_alpha = at::empty({grad.size(0)}, alpha.options().dtype(op_t));
  if (rows_match(grad, grad_real) && rows_match(real, grad_real) &&
      rows_match(fake, grad_real)) {
    interpolate_backward_rows(grad, real, fake, a, grad_real, grad_fake, grad_alpha);
  } else {
    at::Tensor tr = at::empty(grad.sizes(), grad.options());
    at::Tensor tf = at::empty(grad.sizes(), grad.options());
    interpolate_backward_rows(grad.contiguous(), real.contiguous(),
                              fake.contiguous(), a, tr, tf, grad_alpha);
    grad_real.copy_(tr);
    grad_fake.copy_(tf);
  }
  return {grad_real, grad_fake, grad_alpha.to(alpha.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_cuda(const at::Tensor& grad,
                                                     double center,
                                                     bool one_sided, double eps) {
  check_grad_penalty_args(grad, center, eps);
  c10::cuda::CUDAGuard guard(grad.device());
  const auto per_sample = grad.options().dtype(opmath_dtype(grad.scalar_type()));
  at::Tensor penalty = at::empty({grad.size(0)}, per_sample);
  at::Tensor norm = at::empty({grad.size(0)}, per_sample);
  const at::Tensor g = batch_major_dense(grad) ? grad : grad.contiguous();
  const int64_t B = g.size(0), D = row_size(g);
  if (B == 0) return {penalty, norm};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, g.scalar_type(), "grad_penalty_cuda", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        constexpr int VEC = cuda::vec_width<scalar_t>();
        const scalar_t* gp = g.const_data_ptr<scalar_t>();
        opmath_t* p = penalty.mutable_data_ptr<opmath_t>();
        opmath_t* nrm = norm.mutable_data_ptr<opmath_t>();
        const opmath_t c = static_cast<opmath_t>(center);
        const opmath_t e = static_cast<opmath_t>(eps);
        if (D % VEC == 0 && cuda::aligned16(gp)) {
          grad_penalty_kernel<scalar_t, VEC>
              <<<B, kThreads, 0, stream>>>(gp, p, nrm, D, c, one_sided, e);
        } else {
          grad_penalty_kernel<scalar_t, 1>
              <<<B, kThreads, 0, stream>>>(gp, p, nrm, D, c, one_sided, e);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {penalty, norm};
}

at::Tensor grad_penalty_backward_cuda(
    const std::optional<at::Tensor>& grad_penalty_opt,
    const std::optional<at::Tensor>& grad_norm_opt, const at::Tensor& grad,
    const at::Tensor& norm, double center, bool one_sided) {
  check_grad_penalty_args(grad, center, 0.0);
  c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor gp = check_per_sample(grad_penalty_opt.value_or(at::Tensor()), grad, "grad_penalty");
  const at::Tensor gn = check_per_sample(grad_norm_opt.value_or(at::Tensor()), grad, "grad_norm");
  TORCH_CHECK_VALUE(norm.defined(), "norm must be given");
  const at::Tensor nrm = check_per_sample(norm, grad, "norm");
  at::Tensor grad_in = at::empty_like(grad);
  const bool direct = rows_match(grad, grad_in);
  const at::Tensor g = direct ? grad : grad.contiguous();
  at::Tensor out = direct ? grad_in : at::empty(grad.sizes(), grad.options());
  const int64_t B = g.size(0), D = row_size(g), n = B * D;
  if (n > 0) {
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, g.scalar_type(), "grad_penalty_backward_cuda",
        [&] {
          using opmath_t = at::opmath_type<scalar_t>;
          constexpr int VEC = cuda::vec_width<scalar_t>();
          const opmath_t* gpp = gp.defined() ? gp.const_data_ptr<opmath_t>() : nullptr;
          const opmath_t* gnp = gn.defined() ? gn.const_data_ptr<opmath_t>() : nullptr;
          const int64_t sp = gp.defined() ? gp.stride(0) : 0;
          const int64_t sn = gn.defined() ? gn.stride(0) : 0;
          const scalar_t* gg = g.const_data_ptr<scalar_t>();
          scalar_t* o = out.mutable_data_ptr<scalar_t>();
          const opmath_t c = static_cast<opmath_t>(center);
          if (cuda::aligned16(gg) && cuda::aligned16(o)) {
            grad_penalty_backward_kernel<scalar_t, VEC>
                <<<cuda::grid_for(std::max<int64_t>(n / VEC, 1)), kThreads, 0, stream>>>(
                    gpp, sp, gnp, sn, gg, nrm.const_data_ptr<opmath_t>(),
                    nrm.stride(0), o, n, D, c, one_sided);
          } else {
            grad_penalty_backward_kernel<scalar_t, 1>
                <<<cuda::grid_for(n), kThreads, 0, stream>>>(
                    gpp, sp, gnp, sn, gg, nrm.const_data_ptr<opmath_t>(),
                    nrm.stride(0), o, n, D, c, one_sided);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  if (!direct) grad_in.copy_(out);
  return grad_in;
}

TORCH_LIBRARY_IMPL(wgan_fast, CUDA, m) {
  m.impl("interpolate", &interpolate_cuda);
  m.impl("interpolate_backward", &interpolate_backward_cuda);
  m.impl("grad_penalty", &grad_penalty_cuda);
  m.impl("grad_penalty_backward", &grad_penalty_backward_cuda);
}

}  // namespace wgan_fast
