// CUDA kernels of the spectral-norm power iteration, batched over layers.
//
// One step, u <- normalize(W v), v <- normalize(W^T u), is three launches for
// ALL the layers of a call (up to kMaxLayers per launch; the layers' pointers,
// shapes and block ranges travel in the kernel arguments, as in clip_'s
// multi-tensor apply), with fixed-order reductions and no atomics, so the
// result is a deterministic function of W, u and v (the DDP guarantee of
// wgan_fast.nn.spectral_norm):
//   rows:   one block per row h of every layer: ur[h] = W_h . v
//   cols:   per layer, (column tiles x row chunks) blocks: each recomputes
//           den_u = max(||ur||, eps) (H values, identical in every block),
//           then part[r, j] = sum_{h in chunk r} W[h, j] * ur[h] / den_u;
//           the first block of a layer also stores u = ur / den_u
//   finish: one block per layer: t_j = sum_r part[r, j] (in order of r),
//           v = t / max(||t||, eps), and after the last step
//           sigma = u^T W v = t . v (written as float64)
// W is read as (A, H, B): W_mat[h, a*B + b] = W[a, h, b] (see ops.h).
// Layers are grouped by opmath type (float for float32/float16/bfloat16,
// double for float64); within a group each layer has its own storage dtype.
// The workspace (ur and part) comes from the caching allocator; nothing
// synchronises with the host.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cuda_utils.cuh"
#include "lipschitz_math.h"
#include "ops.h"

namespace wgan_fast {
namespace {

constexpr int kSnThreads = 256;
constexpr int kSnFinishThreads = 1024;
constexpr int kRowsPerChunk = 32;
constexpr int kMaxRowChunks = 64;
constexpr int kMaxLayers = 24;

struct SnBatch {
  const void* W[kMaxLayers];
  void* u[kMaxLayers];
  void* v[kMaxLayers];
  int64_t A[kMaxLayers], H[kMaxLayers], B[kMaxLayers];
  int64_t ws[kMaxLayers];          // offset of the layer's ur (H) then part (R*C)
  int64_t rows_start[kMaxLayers];  // first block of the layer in the rows launch
  int64_t cols_start[kMaxLayers];  // first block of the layer in the cols launch
  int32_t R[kMaxLayers], rows_per_chunk[kMaxLayers];
  double* sigma[kMaxLayers];       // nullptr except after the last step
  uint8_t tag[kMaxLayers];         // cuda::DtypeTag
  int n;
};
static_assert(sizeof(SnBatch) <= 3900, "kernel arguments must stay under 4 KB");

// The layer whose block range holds block b (ranges are increasing).
__device__ __forceinline__ int find_layer(const int64_t* start, int n, int64_t b) {
  int l = 0;
  while (l + 1 < n && start[l + 1] <= b) ++l;
  return l;
}

template <typename scalar_t, typename opmath_t>
__device__ __forceinline__ opmath_t row_dot(const scalar_t* __restrict__ W,
                                            const scalar_t* __restrict__ v, int64_t A,
                                            int64_t H, int64_t B, int64_t h) {
  opmath_t acc = 0;
  for (int64_t a = 0; a < A; ++a) {
    const scalar_t* row = W + (a * H + h) * B;
    const scalar_t* va = v + a * B;
    for (int64_t b = threadIdx.x; b < B; b += blockDim.x) {
      acc += static_cast<opmath_t>(row[b]) * static_cast<opmath_t>(va[b]);
    }
  }
  return acc;
}

template <typename opmath_t>
__global__ void __launch_bounds__(kSnThreads)
    sn_rows_kernel(const __grid_constant__ SnBatch p, opmath_t* __restrict__ ws) {
  const int l = find_layer(p.rows_start, p.n, blockIdx.x);
  const int64_t h = blockIdx.x - p.rows_start[l];
  const int64_t A = p.A[l], H = p.H[l], B = p.B[l];
  opmath_t acc = 0;
  switch (p.tag[l]) {
    case cuda::kF32:
      acc = row_dot<float, opmath_t>(static_cast<const float*>(p.W[l]),
                                     static_cast<const float*>(p.v[l]), A, H, B, h);
      break;
    case cuda::kF16:
      acc = row_dot<at::Half, opmath_t>(static_cast<const at::Half*>(p.W[l]),
                                        static_cast<const at::Half*>(p.v[l]), A, H, B, h);
      break;
    case cuda::kBF16:
      acc = row_dot<at::BFloat16, opmath_t>(static_cast<const at::BFloat16*>(p.W[l]),
                                            static_cast<const at::BFloat16*>(p.v[l]), A, H,
                                            B, h);
      break;
    case cuda::kF64:
      acc = static_cast<opmath_t>(row_dot<double, double>(
          static_cast<const double*>(p.W[l]), static_cast<const double*>(p.v[l]), A, H, B, h));
      break;
  }
  acc = cuda::block_sum(acc);
  if (threadIdx.x == 0) ws[p.ws[l] + h] = acc;
}

template <typename scalar_t, typename opmath_t>
__device__ __forceinline__ void cols_body(const scalar_t* __restrict__ W,
                                          const opmath_t* __restrict__ ur,
                                          scalar_t* __restrict__ u,
                                          opmath_t* __restrict__ part, int64_t A,
                                          int64_t H, int64_t B, int64_t rows_per_chunk,
                                          int64_t tile, int64_t chunk, opmath_t den) {
  if (tile == 0 && chunk == 0) {
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
      u[h] = static_cast<scalar_t>(ur[h] / den);
    }
  }
  const int64_t C = A * B;
  const int64_t j = tile * blockDim.x + threadIdx.x;
  if (j >= C) return;
  const int64_t a = j / B, b = j - a * B;
  const int64_t h0 = chunk * rows_per_chunk;
  const int64_t h1 = h0 + rows_per_chunk < H ? h0 + rows_per_chunk : H;
  const scalar_t* col = W + a * H * B + b;
  opmath_t acc = 0;
  for (int64_t h = h0; h < h1; ++h) {  // empty when h0 >= H: part = 0
    acc += static_cast<opmath_t>(col[h * B]) * (ur[h] / den);
  }
  part[chunk * C + j] = acc;
}

template <typename opmath_t>
__global__ void __launch_bounds__(kSnThreads)
    sn_cols_kernel(const __grid_constant__ SnBatch p, opmath_t* __restrict__ ws,
                   opmath_t eps) {
  __shared__ opmath_t den_s;
  const int l = find_layer(p.cols_start, p.n, blockIdx.x);
  const int64_t A = p.A[l], H = p.H[l], B = p.B[l];
  const opmath_t* ur = ws + p.ws[l];
  opmath_t* part = ws + p.ws[l] + H;
  opmath_t ss = 0;
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) ss += ur[h] * ur[h];
  ss = cuda::block_sum(ss);
  if (threadIdx.x == 0) den_s = math::normalize_denominator(ss, eps);
  __syncthreads();
  const opmath_t den = den_s;
  const int64_t local = blockIdx.x - p.cols_start[l];
  const int64_t tiles = (A * B + kSnThreads - 1) / kSnThreads;
  const int64_t chunk = local / tiles, tile = local - chunk * tiles;
  const int64_t rpc = p.rows_per_chunk[l];
  switch (p.tag[l]) {
    case cuda::kF32:
      cols_body<float, opmath_t>(static_cast<const float*>(p.W[l]), ur,
                                 static_cast<float*>(p.u[l]), part, A, H, B, rpc, tile,
                                 chunk, den);
      break;
    case cuda::kF16:
      cols_body<at::Half, opmath_t>(static_cast<const at::Half*>(p.W[l]), ur,
                                    static_cast<at::Half*>(p.u[l]), part, A, H, B, rpc,
                                    tile, chunk, den);
      break;
    case cuda::kBF16:
      cols_body<at::BFloat16, opmath_t>(static_cast<const at::BFloat16*>(p.W[l]), ur,
                                        static_cast<at::BFloat16*>(p.u[l]), part, A, H,
                                        B, rpc, tile, chunk, den);
      break;
    case cuda::kF64:
      if constexpr (std::is_same_v<opmath_t, double>) {
        cols_body<double, double>(static_cast<const double*>(p.W[l]), ur,
                                  static_cast<double*>(p.u[l]), part, A, H, B, rpc, tile,
                                  chunk, den);
      }
      break;
  }
}

template <typename scalar_t, typename opmath_t>
__device__ __forceinline__ void finish_body(opmath_t* __restrict__ part, int64_t R,
                                            int64_t C, scalar_t* __restrict__ v,
                                            opmath_t eps, double* sigma_out) {
  __shared__ opmath_t den_s;
  opmath_t ss = 0;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    opmath_t t = part[j];
    for (int64_t r = 1; r < R; ++r) t += part[r * C + j];
    part[j] = t;  // owned by this thread: no race
    ss += t * t;
  }
  ss = cuda::block_sum(ss);
  if (threadIdx.x == 0) den_s = math::normalize_denominator(ss, eps);
  __syncthreads();
  const opmath_t den = den_s;
  opmath_t sig = 0;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const scalar_t vj = static_cast<scalar_t>(part[j] / den);
    v[j] = vj;
    sig += part[j] * static_cast<opmath_t>(vj);
  }
  if (sigma_out != nullptr) {  // uniform over the block
    __syncthreads();           // block_sum's shared scratch is reused
    sig = cuda::block_sum(sig);
    if (threadIdx.x == 0) *sigma_out = static_cast<double>(sig);
  }
}

template <typename opmath_t>
__global__ void __launch_bounds__(kSnFinishThreads)
    sn_finish_kernel(const __grid_constant__ SnBatch p, opmath_t* __restrict__ ws,
                     opmath_t eps) {
  const int l = blockIdx.x;
  const int64_t H = p.H[l], C = p.A[l] * p.B[l];
  opmath_t* part = ws + p.ws[l] + H;
  switch (p.tag[l]) {
    case cuda::kF32:
      finish_body<float, opmath_t>(part, p.R[l], C, static_cast<float*>(p.v[l]), eps,
                                   p.sigma[l]);
      break;
    case cuda::kF16:
      finish_body<at::Half, opmath_t>(part, p.R[l], C, static_cast<at::Half*>(p.v[l]), eps,
                                      p.sigma[l]);
      break;
    case cuda::kBF16:
      finish_body<at::BFloat16, opmath_t>(part, p.R[l], C,
                                          static_cast<at::BFloat16*>(p.v[l]), eps,
                                          p.sigma[l]);
      break;
    case cuda::kF64:
      if constexpr (std::is_same_v<opmath_t, double>) {
        finish_body<double, double>(part, p.R[l], C, static_cast<double*>(p.v[l]), eps,
                                    p.sigma[l]);
      }
      break;
  }
}

// All iterations of up to kMaxLayers layers of one opmath type.
template <typename opmath_t>
void run_batch(at::TensorList weights, at::TensorList us, at::TensorList vs,
               const std::vector<int64_t>& idx, int64_t n_iter, double eps_d,
               double* sigmas, cudaStream_t stream) {
  SnBatch p{};
  p.n = static_cast<int>(idx.size());
  int64_t ws_size = 0, rows_blocks = 0, cols_blocks = 0;
  for (int k = 0; k < p.n; ++k) {
    const int64_t i = idx[k];
    const int64_t A = weights[i].size(0), H = weights[i].size(1), B = weights[i].size(2);
    const int64_t C = A * B;
    const int64_t R = std::min<int64_t>((H + kRowsPerChunk - 1) / kRowsPerChunk, kMaxRowChunks);
    p.W[k] = weights[i].const_data_ptr();
    p.u[k] = us[i].data_ptr();
    p.v[k] = vs[i].data_ptr();
    p.A[k] = A;
    p.H[k] = H;
    p.B[k] = B;
    p.R[k] = static_cast<int32_t>(R);
    p.rows_per_chunk[k] = static_cast<int32_t>((H + R - 1) / R);
    p.tag[k] = cuda::dtype_tag(weights[i].scalar_type(), "spectral_norm_power_iteration_");
    p.ws[k] = ws_size;
    ws_size += H + R * C;
    p.rows_start[k] = rows_blocks;
    rows_blocks += H;
    p.cols_start[k] = cols_blocks;
    cols_blocks += R * ((C + kSnThreads - 1) / kSnThreads);
  }
  TORCH_CHECK(rows_blocks <= INT32_MAX && cols_blocks <= INT32_MAX,
              "spectral_norm_power_iteration_: weights too large");
  const auto op_type = std::is_same_v<opmath_t, double> ? at::kDouble : at::kFloat;
  at::Tensor ws = at::empty({ws_size}, weights[idx[0]].options().dtype(op_type));
  opmath_t* w = ws.mutable_data_ptr<opmath_t>();
  const opmath_t eps = static_cast<opmath_t>(eps_d);
  for (int64_t it = 0; it < n_iter; ++it) {
    for (int k = 0; k < p.n; ++k) p.sigma[k] = it == n_iter - 1 ? sigmas + idx[k] : nullptr;
    sn_rows_kernel<opmath_t><<<static_cast<unsigned>(rows_blocks), kSnThreads, 0, stream>>>(p, w);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    sn_cols_kernel<opmath_t><<<static_cast<unsigned>(cols_blocks), kSnThreads, 0, stream>>>(p, w, eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    sn_finish_kernel<opmath_t><<<static_cast<unsigned>(p.n), kSnFinishThreads, 0, stream>>>(p, w, eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace

void cuda::power_iteration(at::TensorList weights, at::TensorList us,
                           at::TensorList vs, int64_t n_iter, double eps,
                           at::Tensor& sigmas) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t L = static_cast<int64_t>(weights.size());
  double* out = sigmas.mutable_data_ptr<double>();
  std::vector<int64_t> f32, f64;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t H = weights[i].size(1), C = weights[i].size(0) * weights[i].size(2);
    if (H == 0 || C == 0) {  // torch: mv of an empty matrix is zeros
      if (H > 0) us[i].zero_();
      if (C > 0) vs[i].zero_();
      C10_CUDA_CHECK(cudaMemsetAsync(out + i, 0, sizeof(double), stream));
      continue;
    }
    (weights[i].scalar_type() == at::kDouble ? f64 : f32).push_back(i);
  }
  auto run = [&](const std::vector<int64_t>& group, bool dbl) {
    for (size_t s = 0; s < group.size(); s += kMaxLayers) {
      const std::vector<int64_t> part(group.begin() + s,
                                      group.begin() + std::min(group.size(), s + kMaxLayers));
      if (dbl) {
        run_batch<double>(weights, us, vs, part, n_iter, eps, out, stream);
      } else {
        run_batch<float>(weights, us, vs, part, n_iter, eps, out, stream);
      }
    }
  };
  run(f32, false);
  run(f64, true);
}

}  // namespace wgan_fast
