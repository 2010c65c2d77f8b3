// The CPU backend: its kernels (gp_cpu.cpp, clip_cpu.cpp,
// spectral_norm_cpu.cpp) in one table, bound to every op's schema.
#include <torch/library.h>

#include "ops.h"

namespace wgan_fast {
namespace {

const Kernels kCpu{cpu::interpolate, cpu::interpolate_backward, cpu::grad_penalty,
                   cpu::grad_penalty_backward, cpu::clip, cpu::power_iteration};

}  // namespace

const Kernels& cpu_kernels() { return kCpu; }

TORCH_LIBRARY_IMPL(wgan_fast, CPU, m) { register_ops<kCpu>(m); }

}  // namespace wgan_fast
