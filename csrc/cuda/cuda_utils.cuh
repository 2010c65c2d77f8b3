// Small CUDA helpers shared by the wgan_fast kernels.
#pragma once

// Only c10/cuda: ATen/cuda/CUDAContext.h would pull cuBLAS/cuSPARSE headers
// that a bare toolkit (compile-only CI) may not ship.
#include <c10/core/ScalarType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace wgan_fast {
namespace cuda {

constexpr int kThreads = 256;

// VEC elements loaded or stored with one 16-byte transaction.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename T>
constexpr int vec_width() {
  return 16 / sizeof(T) > 0 ? static_cast<int>(16 / sizeof(T)) : 1;
}

inline bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// SM count of the current device, queried once per device (no stream work,
// so it is safe during graph capture).
inline int multiprocessor_count() {
  static int counts[64] = {0};
  const int dev = c10::cuda::current_device();
  if (dev < 64 && counts[dev] > 0) return counts[dev];
  int n = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  if (dev < 64) counts[dev] = n;
  return n;
}

// Enough blocks to fill the device for a grid-stride loop over n items.
inline int64_t grid_for(int64_t n, int threads = kThreads) {
  const int64_t want = (n + threads - 1) / threads;
  const int64_t sms = multiprocessor_count();
  return std::max<int64_t>(1, std::min<int64_t>(want, sms * 16));
}

// The storage dtype of a tensor in the arguments of a multi-tensor kernel
// (clip_, the power iteration), where each tensor of a launch has its own.
enum DtypeTag : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kF64 = 3 };

inline uint8_t dtype_tag(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kFloat: return kF32;
    case at::kHalf: return kF16;
    case at::kBFloat16: return kBF16;
    case at::kDouble: return kF64;
    default: TORCH_CHECK(false, op, ": unsupported dtype ", t);
  }
  return kF32;
}

// Sum over the block; the result is valid in thread 0. blockDim.x must be a
// multiple of 32 and at most 1024.
template <typename T>
__device__ __forceinline__ T block_sum(T v) {
  __shared__ T warp_sums[32];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = (threadIdx.x < (blockDim.x >> 5)) ? warp_sums[lane] : T(0);
  if (warp == 0) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  return v;
}

}  // namespace cuda
}  // namespace wgan_fast
