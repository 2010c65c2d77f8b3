// CUDA row kernels of the fused interpolate and gradient-penalty ops (the
// drivers in op_drivers.cpp handle checks, layouts and allocation).
//
// Kernels run on the current stream, never synchronise with the host and
// allocate nothing (outputs come from the caching allocator in the drivers),
// so they are safe inside CUDA graph capture. Loads and stores are 16 bytes
// wide where the pointers allow, with a scalar tail.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "cuda_utils.cuh"
#include "gp_math.h"
#include "ops.h"

namespace wgan_fast {
namespace {

using cuda::kThreads;
using cuda::Pack;

// ---- interpolate forward: flat, one thread per VEC elements ----------------
template <typename scalar_t, int VEC>
__global__ void interpolate_kernel(const scalar_t* __restrict__ real,
                                   const scalar_t* __restrict__ fake,
                                   const at::opmath_type<scalar_t>* __restrict__ alpha,
                                   scalar_t* __restrict__ out, int64_t n, int64_t D) {
  using opmath_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const int64_t n_vec = n / VEC;
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = tid; i < n_vec; i += stride) {
    const int64_t e = i * VEC;
    const P r = reinterpret_cast<const P*>(real)[i];
    const P f = reinterpret_cast<const P*>(fake)[i];
    P o;
    int64_t b = e / D, row_end = (b + 1) * D;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      if (e + k == row_end) {  // a pack straddles rows when D % VEC != 0
        ++b;
        row_end += D;
      }
      o.v[k] = static_cast<scalar_t>(math::interpolate<opmath_t>(
          static_cast<opmath_t>(r.v[k]), static_cast<opmath_t>(f.v[k]), alpha[b]));
    }
    reinterpret_cast<P*>(out)[i] = o;
  }
  const int64_t t = n_vec * VEC + tid;  // scalar tail
  if (t < n) {
    out[t] = static_cast<scalar_t>(math::interpolate<opmath_t>(
        static_cast<opmath_t>(real[t]), static_cast<opmath_t>(fake[t]), alpha[t / D]));
  }
}

}  // namespace

void cuda::interpolate(const at::Tensor& real, const at::Tensor& fake,
                      const at::Tensor& alpha, at::Tensor& out) {
  const int64_t n = real.numel(), D = row_size(real);
  if (n == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  WF_DISPATCH_FLOATING_TYPES(real.scalar_type(), "interpolate_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    constexpr int VEC = cuda::vec_width<scalar_t>();
    const scalar_t* r = real.const_data_ptr<scalar_t>();
    const scalar_t* f = fake.const_data_ptr<scalar_t>();
    const opmath_t* a = alpha.const_data_ptr<opmath_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    if (cuda::aligned16(r) && cuda::aligned16(f) && cuda::aligned16(o)) {
      interpolate_kernel<scalar_t, VEC>
          <<<cuda::grid_for(std::max<int64_t>(n / VEC, 1)), kThreads, 0, stream>>>(r, f, a, o, n, D);
    } else {
      interpolate_kernel<scalar_t, 1><<<cuda::grid_for(n), kThreads, 0, stream>>>(r, f, a, o, n, D);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

namespace {

// ---- interpolate backward: one block per sample (reduces grad_alpha) -------
// Null output pointers are not wanted; without grad_alpha, real and fake are
// not read. The branches are uniform across the block.
template <typename scalar_t, int VEC>
__global__ void interpolate_backward_kernel(
    const scalar_t* __restrict__ grad, const scalar_t* __restrict__ real,
    const scalar_t* __restrict__ fake,
    const at::opmath_type<scalar_t>* __restrict__ alpha,
    scalar_t* __restrict__ grad_real, scalar_t* __restrict__ grad_fake,
    at::opmath_type<scalar_t>* __restrict__ grad_alpha, int64_t D) {
  using opmath_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const int64_t off = blockIdx.x * D;  // VEC > 1 only when D % VEC == 0
  const opmath_t ab = alpha[blockIdx.x];
  opmath_t acc = 0;
  for (int64_t i = threadIdx.x; i < D / VEC; i += blockDim.x) {
    const P g = reinterpret_cast<const P*>(grad + off)[i];
    P gr, gf, r, f;
    if (grad_alpha) {
      r = reinterpret_cast<const P*>(real + off)[i];
      f = reinterpret_cast<const P*>(fake + off)[i];
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const opmath_t gk = static_cast<opmath_t>(g.v[k]);
      gr.v[k] = static_cast<scalar_t>(math::interpolate_grad_real(gk, ab));
      gf.v[k] = static_cast<scalar_t>(math::interpolate_grad_fake(gk, ab));
      if (grad_alpha) {
        acc += math::interpolate_grad_alpha_term(gk, static_cast<opmath_t>(r.v[k]),
                                                 static_cast<opmath_t>(f.v[k]));
      }
    }
    if (grad_real) reinterpret_cast<P*>(grad_real + off)[i] = gr;
    if (grad_fake) reinterpret_cast<P*>(grad_fake + off)[i] = gf;
  }
  if (grad_alpha) {
    acc = cuda::block_sum(acc);
    if (threadIdx.x == 0) grad_alpha[blockIdx.x] = acc;
  }
}

template <typename T>
T* maybe_ptr(at::Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<T>() : nullptr;
}

}  // namespace

void cuda::interpolate_backward(const at::Tensor& grad, const at::Tensor& real,
                               const at::Tensor& fake, const at::Tensor& alpha,
                               at::Tensor& grad_real, at::Tensor& grad_fake,
                               at::Tensor& grad_alpha) {
  const int64_t B = grad.size(0), D = row_size(grad);
  if (B == 0 || (!grad_real.defined() && !grad_fake.defined() && !grad_alpha.defined())) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  WF_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "interpolate_backward_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    constexpr int VEC = cuda::vec_width<scalar_t>();
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* r = real.const_data_ptr<scalar_t>();
    const scalar_t* f = fake.const_data_ptr<scalar_t>();
    const opmath_t* a = alpha.const_data_ptr<opmath_t>();
    scalar_t* gr = maybe_ptr<scalar_t>(grad_real);
    scalar_t* gf = maybe_ptr<scalar_t>(grad_fake);
    opmath_t* ga = maybe_ptr<opmath_t>(grad_alpha);
    const bool vec = D % VEC == 0 && cuda::aligned16(g) && cuda::aligned16(r) &&
                     cuda::aligned16(f) && cuda::aligned16(gr) && cuda::aligned16(gf);
    if (vec) {
      interpolate_backward_kernel<scalar_t, VEC><<<B, kThreads, 0, stream>>>(g, r, f, a, gr, gf, ga, D);
    } else {
      interpolate_backward_kernel<scalar_t, 1><<<B, kThreads, 0, stream>>>(g, r, f, a, gr, gf, ga, D);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

namespace {

// ---- grad_penalty forward: one block per sample -----------------------------
template <typename scalar_t, int VEC>
__global__ void grad_penalty_kernel(const scalar_t* __restrict__ grad,
                                    at::opmath_type<scalar_t>* __restrict__ penalty,
                                    at::opmath_type<scalar_t>* __restrict__ norm,
                                    int64_t D, at::opmath_type<scalar_t> center,
                                    bool one_sided, at::opmath_type<scalar_t> eps) {
  using opmath_t = at::opmath_type<scalar_t>;
  using P = Pack<scalar_t, VEC>;
  const scalar_t* row = grad + blockIdx.x * D;
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
    norm[blockIdx.x] = nb;
    penalty[blockIdx.x] = math::penalty(nb, center, one_sided);
  }
}

}  // namespace

void cuda::grad_penalty(const at::Tensor& grad, double center, bool one_sided,
                       double eps, at::Tensor& penalty, at::Tensor& norm) {
  const int64_t B = grad.size(0), D = row_size(grad);
  if (B == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  WF_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "grad_penalty_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    constexpr int VEC = cuda::vec_width<scalar_t>();
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    opmath_t* p = penalty.mutable_data_ptr<opmath_t>();
    opmath_t* n = norm.mutable_data_ptr<opmath_t>();
    const auto c = static_cast<opmath_t>(center);
    const auto e = static_cast<opmath_t>(eps);
    if (D % VEC == 0 && cuda::aligned16(g)) {
      grad_penalty_kernel<scalar_t, VEC><<<B, kThreads, 0, stream>>>(g, p, n, D, c, one_sided, e);
    } else {
      grad_penalty_kernel<scalar_t, 1><<<B, kThreads, 0, stream>>>(g, p, n, D, c, one_sided, e);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

namespace {

// ---- grad_penalty backward: flat, dL/dg = g * row_scale(b) -----------------
template <typename scalar_t, int VEC>
__global__ void grad_penalty_backward_kernel(
    const at::opmath_type<scalar_t>* __restrict__ grad_penalty, int64_t sp,
    const at::opmath_type<scalar_t>* __restrict__ grad_norm, int64_t sn,
    const scalar_t* __restrict__ grad,
    const at::opmath_type<scalar_t>* __restrict__ norm, int64_t s_norm,
    scalar_t* __restrict__ grad_in, int64_t n, int64_t D,
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
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = tid; i < n_vec; i += stride) {
    const int64_t e = i * VEC;
    int64_t b = e / D, row_end = (b + 1) * D;
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
  const int64_t t = n_vec * VEC + tid;
  if (t < n) grad_in[t] = static_cast<scalar_t>(static_cast<opmath_t>(grad[t]) * scale(t / D));
}

}  // namespace

void cuda::grad_penalty_backward(const at::Tensor& gp, const at::Tensor& gn,
                                const at::Tensor& grad, const at::Tensor& norm,
                                double center, bool one_sided, at::Tensor& grad_in) {
  const int64_t n = grad.numel(), D = row_size(grad);
  if (n == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  WF_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "grad_penalty_backward_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    constexpr int VEC = cuda::vec_width<scalar_t>();
    const opmath_t* gpp = gp.defined() ? gp.const_data_ptr<opmath_t>() : nullptr;
    const opmath_t* gnp = gn.defined() ? gn.const_data_ptr<opmath_t>() : nullptr;
    const int64_t sp = gp.defined() ? gp.stride(0) : 0, sn = gn.defined() ? gn.stride(0) : 0;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const opmath_t* nrm = norm.const_data_ptr<opmath_t>();
    scalar_t* o = grad_in.mutable_data_ptr<scalar_t>();
    const auto c = static_cast<opmath_t>(center);
    if (cuda::aligned16(g) && cuda::aligned16(o)) {
      grad_penalty_backward_kernel<scalar_t, VEC>
          <<<cuda::grid_for(std::max<int64_t>(n / VEC, 1)), kThreads, 0, stream>>>(
              gpp, sp, gnp, sn, g, nrm, norm.stride(0), o, n, D, c, one_sided);
    } else {
      grad_penalty_backward_kernel<scalar_t, 1><<<cuda::grid_for(n), kThreads, 0, stream>>>(
          gpp, sp, gnp, sn, g, nrm, norm.stride(0), o, n, D, c, one_sided);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace wgan_fast
