// CPU kernel of clip_: one at::parallel_for over the whole list, split into
// (tensor, chunk) work items so that many small tensors and a few big ones
// spread evenly over the threads, with no per-tensor dispatch.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "lipschitz_math.h"
#include "ops.h"

namespace wgan_fast {
namespace {

using math::kClipChunk;

// Loop bodies live outside the dispatch macros so that the pragmas apply.
template <typename scalar_t>
__attribute__((always_inline)) inline void clamp_body(scalar_t* __restrict__ p,
                                                      int64_t n, double bound) {
  using opmath_t = at::opmath_type<scalar_t>;
  // Bounds rounded to the storage type first: equals torch.clamp on scalar_t.
  const opmath_t hi = static_cast<opmath_t>(static_cast<scalar_t>(bound));
  const opmath_t lo = static_cast<opmath_t>(static_cast<scalar_t>(-bound));
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    p[j] = static_cast<scalar_t>(
        math::clamp<opmath_t>(static_cast<opmath_t>(p[j]), lo, hi));
  }
}

WF_CPU_CLONES void clamp_f32(float* p, int64_t n, double bound) { clamp_body(p, n, bound); }
WF_CPU_CLONES void clamp_f64(double* p, int64_t n, double bound) { clamp_body(p, n, bound); }
WF_CPU_CLONES void clamp_f16(at::Half* p, int64_t n, double bound) { clamp_body(p, n, bound); }
WF_CPU_CLONES void clamp_bf16(at::BFloat16* p, int64_t n, double bound) {
  clamp_body(p, n, bound);
}

struct Item {
  void* data;
  int64_t n;
  at::ScalarType dtype;
};

void clamp_item(const Item& it, double bound) {
  switch (it.dtype) {
    case at::kFloat: clamp_f32(static_cast<float*>(it.data), it.n, bound); break;
    case at::kDouble: clamp_f64(static_cast<double*>(it.data), it.n, bound); break;
    case at::kHalf: clamp_f16(static_cast<at::Half*>(it.data), it.n, bound); break;
    case at::kBFloat16: clamp_bf16(static_cast<at::BFloat16*>(it.data), it.n, bound); break;
    default:
      TORCH_CHECK(false, "clip_: unsupported dtype ", it.dtype);
  }
}

}  // namespace

void cpu::clip(at::TensorList tensors, double bound) {
  std::vector<Item> items;
  int64_t total = 0;
  for (const at::Tensor& t : tensors) total += t.numel();
  items.reserve(tensors.size() + total / kClipChunk);
  for (const at::Tensor& t : tensors) {
    const int64_t n = t.numel();
    if (n == 0) continue;
    // Dense (checked): the storage span [data, data + numel) is the tensor.
    char* base = static_cast<char*>(t.data_ptr());
    const int64_t es = t.element_size();
    for (int64_t off = 0; off < n; off += kClipChunk) {
      items.push_back({base + off * es, std::min(kClipChunk, n - off), t.scalar_type()});
    }
  }
  const int64_t n_items = static_cast<int64_t>(items.size());
  // Below ~128K elements in all, threading costs more than it saves.
  const int64_t grain = total < (int64_t{1} << 17) ? std::max<int64_t>(n_items, 1) : 1;
  at::parallel_for(0, n_items, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) clamp_item(items[i], bound);
  });
}

}  // namespace wgan_fast
