// CUDA kernels of the spectral-norm power iteration.
//
// One step, u <- normalize(W v), v <- normalize(W^T u), is three launches per
// layer, all with fixed-order reductions and no atomics, so the result is a
// deterministic function of W, u and v (the DDP guarantee of
// wgan_fast.nn.spectral_norm):
//   rows:   one block per row h: ur[h] = W_h . v
//   cols:   grid (column tiles, row chunks): every block recomputes
//           den_u = max(||ur||, eps) (H values, identical in every block),
//           then part[r, j] = sum_{h in chunk r} W[h, j] * ur[h] / den_u;
//           block (0, 0) also stores u = ur / den_u
//   finish: one block: t_j = sum_r part[r, j] (in order of r),
//           v = t / max(||t||, eps), and after the last step
//           sigma = u^T W v = t . v (written as float64)
// W is read as (A, H, B): W_mat[h, a*B + b] = W[a, h, b] (see lipschitz_ops.h).
// The workspace (ur and part, in opmath precision) comes from the caching
// allocator; nothing synchronises with the host.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include <algorithm>

#include "../lipschitz_math.h"
#include "../lipschitz_ops.h"
#include "cuda_utils.cuh"

namespace wgan_fast {
namespace {

constexpr int kSnThreads = 256;
constexpr int kSnFinishThreads = 1024;
constexpr int kRowsPerChunk = 32;
constexpr int kMaxRowChunks = 64;

template <typename scalar_t, typename opmath_t>
__global__ void __launch_bounds__(kSnThreads)
    sn_rows_kernel(const scalar_t* __restrict__ W, const scalar_t* __restrict__ v,
                   opmath_t* __restrict__ ur, int64_t A, int64_t H, int64_t B) {
  const int64_t h = blockIdx.x;
  opmath_t acc = 0;
  for (int64_t a = 0; a < A; ++a) {
    const scalar_t* row = W + (a * H + h) * B;
    const scalar_t* va = v + a * B;
    for (int64_t b = threadIdx.x; b < B; b += blockDim.x) {
      acc += static_cast<opmath_t>(row[b]) * static_cast<opmath_t>(va[b]);
    }
  }
  acc = cuda::block_sum(acc);
  if (threadIdx.x == 0) ur[h] = acc;
}

template <typename scalar_t, typename opmath_t>
__global__ void __launch_bounds__(kSnThreads)
    sn_cols_kernel(const scalar_t* __restrict__ W, const opmath_t* __restrict__ ur,
                   scalar_t* __restrict__ u, opmath_t* __restrict__ part, int64_t A,
                   int64_t H, int64_t B, int64_t rows_per_chunk, opmath_t eps) {
  __shared__ opmath_t den_s;
  opmath_t ss = 0;
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) ss += ur[h] * ur[h];
  ss = cuda::block_sum(ss);
  if (threadIdx.x == 0) den_s = lipschitz::normalize_denominator(ss, eps);
  __syncthreads();
  const opmath_t den = den_s;
  if (blockIdx.x == 0 && blockIdx.y == 0) {
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
      u[h] = static_cast<scalar_t>(ur[h] / den);
    }
  }
  const int64_t C = A * B;
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= C) return;
  const int64_t a = j / B, b = j - a * B;
  const int64_t h0 = blockIdx.y * rows_per_chunk;
  const int64_t h1 = h0 + rows_per_chunk < H ? h0 + rows_per_chunk : H;
  const scalar_t* col = W + a * H * B + b;
  opmath_t acc = 0;
  for (int64_t h = h0; h < h1; ++h) {
    acc += static_cast<opmath_t>(col[h * B]) * (ur[h] / den);
  }
  part[blockIdx.y * C + j] = acc;
}

template <typename scalar_t, typename opmath_t>
__global__ void __launch_bounds__(kSnFinishThreads)
    sn_finish_kernel(opmath_t* __restrict__ part, int64_t R, int64_t C,
                     scalar_t* __restrict__ v, opmath_t eps,
                     double* __restrict__ sigma_out) {
  __shared__ opmath_t den_s;
  opmath_t ss = 0;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    opmath_t t = part[j];
    for (int64_t r = 1; r < R; ++r) t += part[r * C + j];
    part[j] = t;  // owned by this thread: no race
    ss += t * t;
  }
  ss = cuda::block_sum(ss);
  if (threadIdx.x == 0) den_s = lipschitz::normalize_denominator(ss, eps);
  __syncthreads();
  const opmath_t den = den_s;
  opmath_t sig = 0;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const scalar_t vj = static_cast<scalar_t>(part[j] / den);
    v[j] = vj;
    sig += part[j] * static_cast<opmath_t>(vj);
  }
  if (sigma_out != nullptr) {
    __syncthreads();  // block_sum's shared scratch is reused
    sig = cuda::block_sum(sig);
    if (threadIdx.x == 0) *sigma_out = static_cast<double>(sig);
  }
}

template <typename scalar_t>
void power_iteration_layer(const at::Tensor& weight, const at::Tensor& u_t,
                           const at::Tensor& v_t, int64_t n_iter, double eps_d,
                           double* sigma_out, cudaStream_t stream) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t A = weight.size(0), H = weight.size(1), B = weight.size(2);
  const int64_t C = A * B;
  if (H == 0 || C == 0) {  // torch: mv of an empty matrix is zeros
    if (H > 0) u_t.zero_();
    if (C > 0) v_t.zero_();
    C10_CUDA_CHECK(cudaMemsetAsync(sigma_out, 0, sizeof(double), stream));
    return;
  }
  const int64_t R = std::min<int64_t>((H + kRowsPerChunk - 1) / kRowsPerChunk, kMaxRowChunks);
  const int64_t rows_per_chunk = (H + R - 1) / R;
  const auto op_type = weight.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor ws = at::empty({H + R * C}, weight.options().dtype(op_type));
  opmath_t* ur = ws.mutable_data_ptr<opmath_t>();
  opmath_t* part = ur + H;
  const scalar_t* W = weight.const_data_ptr<scalar_t>();
  scalar_t* u = u_t.mutable_data_ptr<scalar_t>();
  scalar_t* v = v_t.mutable_data_ptr<scalar_t>();
  const opmath_t eps = static_cast<opmath_t>(eps_d);
  const dim3 cols_grid(static_cast<unsigned>((C + kSnThreads - 1) / kSnThreads),
                       static_cast<unsigned>(R));
  TORCH_CHECK(H <= INT32_MAX && cols_grid.x <= INT32_MAX,
              "spectral_norm_power_iteration_: weight too large");
  for (int64_t it = 0; it < n_iter; ++it) {
    sn_rows_kernel<scalar_t, opmath_t>
        <<<static_cast<unsigned>(H), kSnThreads, 0, stream>>>(W, v, ur, A, H, B);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    sn_cols_kernel<scalar_t, opmath_t><<<cols_grid, kSnThreads, 0, stream>>>(
        W, ur, u, part, A, H, B, rows_per_chunk, eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    sn_finish_kernel<scalar_t, opmath_t>
        <<<1, kSnFinishThreads, 0, stream>>>(part, R, C, v, eps,
                                             it == n_iter - 1 ? sigma_out : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace

at::Tensor power_iteration_cuda(at::TensorList weights, at::TensorList us,
                                at::TensorList vs, int64_t n_iter, double eps) {
  check_power_iteration_args(weights, us, vs, n_iter, eps);
  TORCH_CHECK_VALUE(!weights.empty(), "weights must be a non-empty list");
  c10::cuda::CUDAGuard guard(weights[0].device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t L = static_cast<int64_t>(weights.size());
  at::Tensor sigmas = at::empty({L}, weights[0].options().dtype(at::kDouble));
  double* out = sigmas.mutable_data_ptr<double>();
  for (int64_t i = 0; i < L; ++i) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, weights[i].scalar_type(),
        "spectral_norm_power_iteration_cuda", [&] {
          power_iteration_layer<scalar_t>(weights[i], us[i], vs[i], n_iter, eps,
                                          out + i, stream);
        });
  }
  return sigmas;
}

namespace {
at::Tensor power_iteration_cuda_op(at::TensorList weights, at::TensorList us,
                                   at::TensorList vs, int64_t n_iter, double eps) {
  return power_iteration_cuda(weights, us, vs, n_iter, eps);
}
}  // namespace

TORCH_LIBRARY_IMPL(wgan_fast, CUDA, m) {
  m.impl("spectral_norm_power_iteration_", &power_iteration_cuda_op);
}

}  // namespace wgan_fast
