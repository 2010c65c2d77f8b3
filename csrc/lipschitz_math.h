// Per-element math of the critic-Lipschitz ops (weight clipping, spectral
// normalisation), shared by the CPU kernels (csrc/cpu) and the CUDA kernels
// (csrc/cuda) so the CPU tests exercise the formulas the GPU runs.
#pragma once

#include <cstdint>

#include "kernel_common.h"

namespace wgan_fast {
namespace math {

// torch.clamp(x, lo, hi) semantics: NaN propagates (both comparisons are
// false for NaN, so x itself is returned), lo wins over hi if lo > hi (never
// the case here: lo = -hi with hi > 0). lo and hi are the bounds already
// rounded to the storage type, compared in opmath precision; this equals
// torch.clamp on the storage type.
//
// Written as max then min with the operand order of the x86 max/min
// instructions (which return their second operand when either is NaN), so
// the compiler emits two vector instructions per vector instead of compares
// and blends: lo > x ? lo : x is x for NaN, hi < t ? hi : t is t for NaN.
template <typename T>
WF_HOST_DEVICE T clamp(T x, T lo, T hi) {
  const T t = lo > x ? lo : x;
  return hi < t ? hi : t;
}

// F.normalize's denominator: max(||x||, eps).
template <typename T>
WF_HOST_DEVICE T normalize_denominator(T sum_of_squares, T eps) {
  const T n = opmath_sqrt(sum_of_squares);
  return n > eps ? n : eps;
}

// Elements per chunk of the clip kernels (CPU task / CUDA block). A multiple
// of every vector width, so every chunk of an aligned tensor starts aligned.
constexpr int64_t kClipChunk = 16384;

// Deterministic split of the rows of an (H, W) matrix for the CPU power
// iteration: depends only on the shape (never on the thread count), so every
// process computes bit-identical u, v from the same W (see the DDP notes in
// wgan_fast/nn/spectral_norm.py).
inline int64_t power_iteration_row_blocks(int64_t H, int64_t W) {
  int64_t blocks = (H * W) / 65536;
  if (blocks > 16) blocks = 16;
  if (blocks > H) blocks = H;
  return blocks < 1 ? 1 : blocks;  // >= 1 even for H = 0 (then v becomes 0)
}

}  // namespace math
}  // namespace wgan_fast
