// What every kernel file shares: the qualifier of the functions both the CPU
// and the CUDA kernels call, the dtype dispatch of the ops, CPU function
// multi-versioning, and the scalar helpers the math headers build on.
#pragma once

#include <ATen/Dispatch.h>

#include <cmath>

// Inline functions compiled for the host and, under nvcc, for the device:
// the CPU tests then exercise exactly the formulas the GPU runs.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define WF_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define WF_HOST_DEVICE inline
#endif

// The dtypes of every op: float32, float64, float16, bfloat16. Kernels
// compute in at::opmath_type<scalar_t> (float, or double for float64).
#define WF_DISPATCH_FLOATING_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

// CPU loops marked with this are compiled twice (AVX2+FMA and baseline
// x86-64) and picked at load time by the CPU's capabilities (GCC function
// multi-versioning), as ATen's own CPU kernels are; the build flags can then
// stay baseline and the extension run on any x86-64.
#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__) && \
    defined(__x86_64__) && defined(__linux__)
#define WF_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WF_CPU_CLONES
#endif

namespace wgan_fast {
namespace math {

// sqrt in the opmath precision itself (sqrtf for float: no detour through
// double on the device).
WF_HOST_DEVICE float opmath_sqrt(float x) { return sqrtf(x); }
WF_HOST_DEVICE double opmath_sqrt(double x) { return sqrt(x); }

}  // namespace math
}  // namespace wgan_fast
