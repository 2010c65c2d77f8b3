// The CUDA backend: its kernels (gp_cuda.cu, clip_cuda.cu,
// spectral_norm_cuda.cu) in one table, bound to every op's schema.
#include <torch/library.h>

#include "ops.h"

namespace wgan_fast {
namespace {

const Kernels kCuda{cuda::interpolate, cuda::interpolate_backward, cuda::grad_penalty,
                    cuda::grad_penalty_backward, cuda::clip, cuda::power_iteration};

}  // namespace

TORCH_LIBRARY_IMPL(wgan_fast, CUDA, m) { register_ops<kCuda>(m); }

}  // namespace wgan_fast
