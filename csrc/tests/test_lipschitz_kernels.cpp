// C++ tests of the critic-Lipschitz CPU kernels (clip_, spectral-norm power
// iteration) and their shared math, run by CTest. Results are compared with
// plain ATen (at::clamp, at::mv, at::linalg_matrix_norm), independent of the
// Python references.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "harness.h"
#include "lipschitz_math.h"
#include "ops.h"

namespace {

const wgan_fast::Kernels& K() { return wgan_fast::cpu_kernels(); }

using harness::expect;
using harness::expect_close;
using harness::expect_throws;

bool same_with_nan(const at::Tensor& a, const at::Tensor& b) {
  return at::equal(a.isnan(), b.isnan()) && at::equal(at::nan_to_num(a), at::nan_to_num(b));
}

void test_math() {
  using namespace wgan_fast::math;
  expect(clamp(2.0f, -1.0f, 1.0f) == 1.0f && clamp(-2.0f, -1.0f, 1.0f) == -1.0f &&
             clamp(0.25f, -1.0f, 1.0f) == 0.25f,
         "clamp inside and outside");
  expect(std::isnan(clamp(std::numeric_limits<float>::quiet_NaN(), -1.0f, 1.0f)),
         "clamp propagates NaN like torch.clamp");
  expect(normalize_denominator(0.0, 1e-12) == 1e-12 && normalize_denominator(4.0, 1e-12) == 2.0,
         "normalize denominator is max(||x||, eps)");
  expect(power_iteration_row_blocks(0, 5) == 1 && power_iteration_row_blocks(3, 1 << 20) == 3 &&
             power_iteration_row_blocks(512, 4096) == 16,
         "row blocks depend on the shape only, in [1, min(H, 16)]");
  expect(kClipChunk % 8 == 0, "clip chunk is a multiple of every vector width");
}

void test_clip() {
  std::vector<at::Tensor> ts;
  std::vector<at::Tensor> want;
  const std::vector<at::ScalarType> dtypes = {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble};
  const std::vector<int64_t> sizes = {1, 7, 16384, 16385, 50000, 0, 3};
  for (size_t i = 0; i < sizes.size() * 2; ++i) {
    at::Tensor t = (at::randn({sizes[i % sizes.size()]}) * 3).to(dtypes[i % dtypes.size()]);
    if (t.numel() > 2) {
      t[0] = std::numeric_limits<double>::quiet_NaN();
      t[1] = 0.5;
    }
    want.push_back(t.clamp(-0.5, 0.5));
    ts.push_back(t);
  }
  ts.push_back(at::randn({2, 8, 5, 3}).contiguous(at::MemoryFormat::ChannelsLast) * 3);
  want.push_back(ts.back().clamp(-0.5, 0.5));
  wgan_fast::clip_op(K(), ts, 0.5);
  bool all = true;
  for (size_t i = 0; i < ts.size(); ++i) all = all && same_with_nan(ts[i], want[i]);
  expect(all, "clip_cpu equals at::clamp on a mixed-dtype list (NaN propagates)");

  // bound rounded to the storage type like at::clamp
  at::Tensor h = at::linspace(0.09, 0.11, 999).to(at::kHalf);
  at::Tensor hw = h.clamp(-0.1, 0.1);
  wgan_fast::clip_op(K(), {h}, 0.1);
  expect(at::equal(h, hw), "clip_cpu rounds the bound like at::clamp (float16)");

  // in place, through the dispatcher
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("wgan_fast::clip_", "")
                .typed<void(at::TensorList, double)>();
  at::Tensor x = at::randn({100, 100}) * 2;
  const void* ptr = x.data_ptr();
  at::Tensor xw = x.clamp(-0.01, 0.01);
  op.call({x}, 0.01);
  expect(x.data_ptr() == ptr && at::equal(x, xw), "clip_ through the dispatcher, in place");
}

void test_power_iteration() {
  // (A, H, B) = (1, 24, 30) with known singular values: sigma -> 3.
  at::Tensor q1 = std::get<0>(at::linalg_qr(at::randn({24, 24}, at::kDouble)));
  at::Tensor q2 = std::get<0>(at::linalg_qr(at::randn({30, 24}, at::kDouble)));
  at::Tensor s = at::linspace(1.5, 0.1, 24, at::kDouble);
  s[0] = 3.0;  // spectral gap 2: the error of sigma shrinks 4x per step
  at::Tensor W = q1.matmul(at::diag(s)).matmul(q2.t()).contiguous();
  at::Tensor u = at::randn({24}, at::kDouble);
  u = u / u.norm();
  at::Tensor v = at::randn({30}, at::kDouble);
  v = v / v.norm();
  // one step equals torch's: u = normalize(W v), v = normalize(W^T u)
  at::Tensor u1 = W.mv(v);
  u1 = u1 / u1.norm();
  at::Tensor v1 = W.t().mv(u1);
  v1 = v1 / v1.norm();
  wgan_fast::power_iteration_op(K(), {W.unsqueeze(0)}, {u}, {v}, 1, 1e-12);
  expect_close(u, u1, "one step: u = normalize(W v)", 1e-12, 1e-14);
  expect_close(v, v1, "one step: v = normalize(W^T u)", 1e-12, 1e-14);
  wgan_fast::power_iteration_op(K(), {W.unsqueeze(0)}, {u}, {v}, 60, 1e-12);
  const double sigma = u.dot(W.mv(v)).item<double>();
  expect(std::abs(sigma - 3.0) < 1e-9, "sigma converges to the largest singular value");

  // (A, H, B) layout (dim = 1 of a transposed conv) equals the permuted matrix
  at::Tensor W3 = at::randn({4, 6, 9});
  at::Tensor mat = W3.permute({1, 0, 2}).reshape({6, 36});
  at::Tensor ua = at::randn({6}), va = at::randn({36});
  va = va / va.norm();
  at::Tensor ub = ua.clone(), vb = va.clone();
  wgan_fast::power_iteration_op(K(), {W3}, {ua}, {va}, 3, 1e-12);
  for (int i = 0; i < 3; ++i) {
    ub = mat.mv(vb);
    ub = ub / ub.norm();
    vb = mat.t().mv(ub);
    vb = vb / vb.norm();
  }
  expect_close(ua, ub, "(A, H, B) weight: u");
  expect_close(va, vb, "(A, H, B) weight: v");

  // through the dispatcher: returns sigma = u^T W v with the new u, v
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("wgan_fast::spectral_norm_power_iteration_", "")
                .typed<at::Tensor(at::TensorList, at::TensorList, at::TensorList, int64_t, double)>();
  at::Tensor Wd = at::randn({1, 7, 5}, at::kDouble);
  at::Tensor ud = at::randn({7}, at::kDouble), vd = at::randn({5}, at::kDouble);
  at::Tensor sig = op.call({Wd}, {ud}, {vd}, 3, 1e-12);
  expect(sig.dim() == 1 && sig.size(0) == 1 && sig.scalar_type() == at::kDouble,
         "power iteration returns one float64 sigma per layer");
  expect(std::abs(sig.item<double>() - ud.dot(Wd[0].mv(vd)).item<double>()) < 1e-12,
         "returned sigma equals u^T W v of the updated u, v");

  // float16 / bfloat16 close to the float32 result
  for (auto dt : {at::kHalf, at::kBFloat16}) {
    at::Tensor Wl = at::randn({1, 32, 40});
    at::Tensor ul = at::randn({32}), vl = at::randn({40});
    vl = vl / vl.norm();
    at::Tensor u16 = ul.to(dt), v16 = vl.to(dt), W16 = Wl.to(dt);
    wgan_fast::power_iteration_op(K(), {Wl}, {ul}, {vl}, 2, 1e-12);
    wgan_fast::power_iteration_op(K(), {W16}, {u16}, {v16}, 2, 1e-12);
    expect_close(u16, ul, "low-precision u close to float32", 3e-2, 3e-2);
  }
}

void test_bad_input() {
  expect_throws([] { wgan_fast::clip_op(K(), {at::zeros({3})}, 0.0); }, "bound must be a finite number > 0",
                "clip_: bound 0");
  expect_throws([] { wgan_fast::clip_op(K(), {at::zeros({3})}, std::nan("")); },
                "bound must be a finite number > 0", "clip_: NaN bound");
  expect_throws([] { wgan_fast::clip_op(K(), {}, 1.0); }, "non-empty", "clip_: empty list");
  expect_throws([] { wgan_fast::clip_op(K(), {at::zeros({3}), at::zeros({3}, at::kInt)}, 1.0); },
                "tensors[1] must be a floating-point tensor", "clip_: int tensor named by index");
  expect_throws([] { wgan_fast::clip_op(K(), {at::zeros({4, 4}).slice(1, 0, 4, 2)}, 1.0); },
                "tensors[0] of shape [4, 2]", "clip_: strided view refused");
  at::Tensor w = at::randn({1, 4, 3});
  expect_throws([&] { wgan_fast::power_iteration_op(K(), {w}, {at::zeros({4})}, {at::zeros({3})}, 0, 1e-12); },
                "n_power_iterations must be >= 1", "power iteration: n_iter 0");
  expect_throws([&] { wgan_fast::power_iteration_op(K(), {w}, {at::zeros({5})}, {at::zeros({3})}, 1, 1e-12); },
                "us[0] must be a contiguous vector of 4", "power iteration: wrong u");
  expect_throws([&] { wgan_fast::power_iteration_op(K(), {w}, {at::zeros({4}, at::kDouble)}, {at::zeros({3})}, 1, 1e-12); },
                "dtype", "power iteration: dtype mismatch");
}

}  // namespace

int main() {
  at::manual_seed(0);
  test_math();
  test_clip();
  test_power_iteration();
  test_bad_input();
  return harness::summary();
}
