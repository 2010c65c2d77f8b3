// CUDA kernel of clip_: one multi-tensor launch for the whole list.
//
// In the manner of apex's multi_tensor_apply, the tensors' pointers, sizes
// and dtypes and a block -> (tensor, chunk) table travel in the kernel
// arguments (under the classic 4 KB limit), so a launch needs no device
// metadata: no allocation, no host-to-device copy, no synchronisation, and
// the op can be captured in a CUDA graph. A new launch is made only when the
// argument block fills (110 tensors or 320 chunks of 16384 elements); a
// tensor cut by a full block continues in the next one. Each tensor has its
// own dtype (float32, float64, float16, bfloat16), so mixed lists need no
// grouping. Loads and stores are 16 bytes wide for 16-byte-aligned tensors.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>

#include <cstdint>

#include "cuda_utils.cuh"
#include "lipschitz_math.h"
#include "ops.h"

namespace wgan_fast {
namespace {

using cuda::Pack;
using math::kClipChunk;

constexpr int kMaxTensors = 110;
constexpr int kMaxBlocks = 320;
constexpr int kClipThreads = 512;

// A tensor's tag is its cuda::DtypeTag, or'ed with kAligned when its data is
// 16-byte aligned.
constexpr uint8_t kAligned = 0x10;

struct ClipArgs {
  void* ptr[kMaxTensors];
  int64_t numel[kMaxTensors];
  uint8_t tag[kMaxTensors];  // DtypeTag | kAligned
  uint8_t block_tensor[kMaxBlocks];
  int32_t block_chunk[kMaxBlocks];
};
static_assert(kMaxTensors < 256, "block_tensor is a uint8_t");

// The upper bound rounded to each storage type (the lower one is its
// negation: rounding to nearest is symmetric), as torch.clamp rounds it.
struct ClipBounds {
  float f32, f16, bf16;
  double f64;
};
static_assert(sizeof(ClipArgs) + sizeof(ClipBounds) <= 4000,
              "kernel arguments must stay under the 4 KB limit");

template <typename scalar_t>
__device__ __forceinline__ void clip_chunk(scalar_t* __restrict__ p, int64_t n,
                                           at::opmath_type<scalar_t> hi,
                                           bool aligned) {
  using opmath_t = at::opmath_type<scalar_t>;
  constexpr int VEC = cuda::vec_width<scalar_t>();
  using P = Pack<scalar_t, VEC>;
  const opmath_t lo = -hi;
  int64_t done = 0;
  if (aligned) {
    const int64_t nv = n / VEC;
    P* pv = reinterpret_cast<P*>(p);
    for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
      P x = pv[i];
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        x.v[k] = static_cast<scalar_t>(
            math::clamp<opmath_t>(static_cast<opmath_t>(x.v[k]), lo, hi));
      }
      pv[i] = x;
    }
    done = nv * VEC;
  }
  for (int64_t i = done + threadIdx.x; i < n; i += blockDim.x) {
    p[i] = static_cast<scalar_t>(
        math::clamp<opmath_t>(static_cast<opmath_t>(p[i]), lo, hi));
  }
}

__global__ void __launch_bounds__(kClipThreads)
    clip_multi_tensor_kernel(const __grid_constant__ ClipArgs args, ClipBounds b) {
  const int t = args.block_tensor[blockIdx.x];
  const int64_t start = static_cast<int64_t>(args.block_chunk[blockIdx.x]) * kClipChunk;
  const int64_t left = args.numel[t] - start;
  const int64_t n = left < kClipChunk ? left : kClipChunk;
  const uint8_t tag = args.tag[t];
  const bool aligned = (tag & kAligned) != 0;
  switch (tag & 0x0f) {
    case cuda::kF32:
      clip_chunk<float>(static_cast<float*>(args.ptr[t]) + start, n, b.f32, aligned);
      break;
    case cuda::kF16:
      clip_chunk<at::Half>(static_cast<at::Half*>(args.ptr[t]) + start, n, b.f16, aligned);
      break;
    case cuda::kBF16:
      clip_chunk<at::BFloat16>(static_cast<at::BFloat16*>(args.ptr[t]) + start, n, b.bf16,
                               aligned);
      break;
    case cuda::kF64:
      clip_chunk<double>(static_cast<double*>(args.ptr[t]) + start, n, b.f64, aligned);
      break;
  }
}

}  // namespace

void cuda::clip(at::TensorList tensors, double bound) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  const float bf = static_cast<float>(bound);
  const ClipBounds bounds{bf, static_cast<float>(static_cast<at::Half>(bf)),
                          static_cast<float>(static_cast<at::BFloat16>(bf)), bound};
  ClipArgs args;
  int nt = 0, nb = 0;
  auto launch = [&] {
    clip_multi_tensor_kernel<<<nb, kClipThreads, 0, stream>>>(args, bounds);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    nb = 0;
  };
  for (const at::Tensor& t : tensors) {
    const int64_t n = t.numel();
    if (n == 0) continue;
    // Dense (checked): the storage span [data, data + numel) is the tensor.
    args.ptr[nt] = t.data_ptr();
    args.numel[nt] = n;
    args.tag[nt] = dtype_tag(t.scalar_type(), "clip_") | (cuda::aligned16(t.data_ptr()) ? kAligned : 0);
    ++nt;
    const int64_t chunks = (n + kClipChunk - 1) / kClipChunk;
    TORCH_CHECK(chunks <= INT32_MAX, "clip_: tensor of ", n, " elements is too large");
    for (int64_t c = 0; c < chunks; ++c) {
      args.block_tensor[nb] = static_cast<uint8_t>(nt - 1);
      args.block_chunk[nb] = static_cast<int32_t>(c);
      ++nb;
      const bool last_chunk = c == chunks - 1;
      if (nb == kMaxBlocks || (nt == kMaxTensors && last_chunk)) {
        launch();
        if (last_chunk) {
          nt = 0;
        } else {  // the current tensor continues in the next argument block
          args.ptr[0] = args.ptr[nt - 1];
          args.numel[0] = args.numel[nt - 1];
          args.tag[0] = args.tag[nt - 1];
          nt = 1;
        }
      }
    }
  }
  if (nb > 0) launch();
}

}  // namespace wgan_fast
