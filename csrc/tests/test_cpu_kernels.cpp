// C++ tests of the CPU kernels and the shared math, run by CTest. They call
// the kernels directly (and once through the dispatcher) and compare with
// formulas written in plain ATen, independent of the Python references.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "gp_math.h"
#include "harness.h"
#include "ops.h"

namespace {

const wgan_fast::Kernels& K() { return wgan_fast::cpu_kernels(); }

using harness::expect;
using harness::expect_close;
using harness::expect_throws;

at::Tensor per_sample(const at::Tensor& v, const at::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

at::Tensor layout(const at::Tensor& t, const std::string& kind) {
  if (kind == "channels_last" && t.dim() == 4) return t.contiguous(at::MemoryFormat::ChannelsLast);
  if (kind == "strided") {
    auto sizes = t.sizes().vec();
    sizes.back() *= 2;
    at::Tensor big = at::zeros(sizes, t.options());
    at::Tensor view = big.slice(-1, 0, sizes.back(), 2);
    view.copy_(t);
    return view;
  }
  return t.contiguous();
}

void test_math() {
  using namespace wgan_fast::math;
  const double h = 1e-6;
  for (double c : {0.0, 1.0}) {
    for (bool one : {false, true}) {
      for (double n : {0.3, 0.9, 1.7, 4.0}) {
        const double fd = (penalty(n + h, c, one) - penalty(n - h, c, one)) / (2 * h);
        expect(std::abs(fd - penalty_dnorm(n, c, one)) < 1e-6, "phi' matches finite difference");
        // (phi'' is the Python double backward's: tests/test_grad_penalty.py checks it the same way)
      }
    }
  }
  expect(penalty(0.5, 1.0, true) == 0.0, "one-sided penalty is 0 below the center");
  expect(penalty(0.5, 1.0, false) == 0.25, "two-sided penalty below the center");
  expect(row_norm(0.0f, 1e-12f) > 0.0f, "zero row has a positive norm");
  expect(penalty_row_scale(1.0, 0.0, 0.0, 1.0, false) == 0.0, "zero norm gets subgradient 0");
  expect(interpolate(3.0, 1.0, 0.25) == 1.5, "interpolate formula");
}

void test_interpolate() {
  const std::vector<std::vector<int64_t>> shapes = {{1, 3, 8, 8}, {5, 1, 28, 28}, {3, 3, 7, 5}, {7, 2, 3}, {4, 5}, {6}};
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    const double tol = (dtype == at::kHalf) ? 2e-3 : (dtype == at::kBFloat16 ? 2e-2 : 1e-5);
    for (const auto& shape : shapes) {
      for (const std::string kind : {"contiguous", "channels_last", "strided"}) {
        at::Tensor r = layout(at::randn(shape).to(dtype), kind);
        at::Tensor f = layout(at::randn(shape).to(dtype), kind);
        at::Tensor a = at::rand({shape[0]});
        const std::string tag = std::string(c10::toString(dtype)) + " " + kind;
        at::Tensor out = wgan_fast::interpolate_op(K(), r, f, a);
        at::Tensor aa = per_sample(a, r).to(at::kDouble);
        at::Tensor want = aa * r.to(at::kDouble) + (1 - aa) * f.to(at::kDouble);
        expect_close(out, want, "interpolate " + tag, tol, tol);
        at::Tensor g = layout(at::randn(shape).to(dtype), kind);
        auto [gr, gf, ga] = wgan_fast::interpolate_backward_op(K(), g, r, f, a, {true, true, true});
        at::Tensor gd = g.to(at::kDouble);
        expect_close(gr, aa * gd, "interpolate grad_real " + tag, tol, tol);
        expect_close(gf, (1 - aa) * gd, "interpolate grad_fake " + tag, tol, tol);
        at::Tensor ga_want = (gd * (r.to(at::kDouble) - f.to(at::kDouble))).reshape({shape[0], -1}).sum(1);
        expect_close(ga, ga_want, "interpolate grad_alpha " + tag, 10 * tol, 10 * tol);
        // every subset of outputs: masked ones come back empty, the rest unchanged
        for (int m = 0; m < 8; ++m) {
          const std::array<bool, 3> mask{(m & 4) != 0, (m & 2) != 0, (m & 1) != 0};
          auto [mr, mf, ma] = wgan_fast::interpolate_backward_op(K(), g, r, f, a, mask);
          const std::string mt = tag + " mask " + std::to_string(m);
          expect(mask[0] ? at::equal(mr, gr) : mr.numel() == 0, "masked grad_real " + mt);
          expect(mask[1] ? at::equal(mf, gf) : mf.numel() == 0, "masked grad_fake " + mt);
          expect(mask[2] ? at::allclose(ma, ga) : ma.numel() == 0, "masked grad_alpha " + mt);
        }
      }
    }
  }
  at::Tensor r = at::randn({4, 3, 8, 8}).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = wgan_fast::interpolate_op(K(), r, r, at::rand({4}));
  expect(out.is_contiguous(at::MemoryFormat::ChannelsLast), "interpolate keeps channels_last");
}

void test_grad_penalty() {
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    const double tol = (dtype == at::kHalf) ? 5e-3 : (dtype == at::kBFloat16 ? 3e-2 : 1e-5);
    for (const std::string kind : {"contiguous", "channels_last", "strided"}) {
      for (bool one_sided : {false, true}) {
        for (double center : {0.0, 1.0}) {
          at::Tensor g = at::randn({9, 3, 5, 4}) * at::linspace(0.01, 0.6, 9).reshape({9, 1, 1, 1});
          g[0].zero_();
          g = layout(g.to(dtype), kind);
          const std::string tag = std::string(c10::toString(dtype)) + " " + kind +
                                  (one_sided ? " one-sided" : "") + " c=" + std::to_string(center);
          auto [p, n] = wgan_fast::grad_penalty_op(K(), g, center, one_sided, 1e-12);
          at::Tensor gd = g.to(at::kDouble).reshape({9, -1});
          at::Tensor n_want = (gd.square().sum(1) + 1e-12).sqrt();
          at::Tensor d = n_want - center;
          if (one_sided) d = d.clamp_min(0);
          expect_close(n, n_want, "norm " + tag, tol, tol);
          expect_close(p, d.square(), "penalty " + tag, tol, tol);
          expect(at::isfinite(p).all().item<bool>(), "penalty finite with a zero row " + tag);
          at::Tensor gp = at::randn({9}).to(dtype);
          at::Tensor gn = at::randn({9}).to(dtype);
          at::Tensor back = wgan_fast::grad_penalty_backward_op(K(), gp, gn, g, n, center, one_sided);
          at::Tensor nd = n.to(at::kDouble);
          at::Tensor dd = nd - center;
          if (one_sided) dd = dd.clamp_min(0);
          at::Tensor k = (gp.to(at::kDouble) * 2 * dd + gn.to(at::kDouble)) / nd;
          expect_close(back, per_sample(k, g) * g.to(at::kDouble), "penalty backward " + tag, 2 * tol, 2 * tol);
          // an absent upstream gradient counts as zero; expanded ones are read with stride 0
          at::Tensor only_p = wgan_fast::grad_penalty_backward_op(K(), gp.sum().expand({9}), at::Tensor(), g, n, center, one_sided);
          at::Tensor k2 = (gp.sum().to(at::kDouble) * 2 * dd) / nd;
          expect_close(only_p, per_sample(k2, g) * g.to(at::kDouble), "penalty backward, expanded upstream " + tag, 5 * tol, 5 * tol);
        }
      }
    }
  }
}

void test_bad_input() {
  at::Tensor x = at::randn({4, 3});
  expect_throws([&] { wgan_fast::interpolate_op(K(), x, at::randn({4, 2}), at::rand({4})); }, "same shape", "shape mismatch");
  expect_throws([&] { wgan_fast::interpolate_op(K(), x, x, at::rand({3})); }, "alpha must have shape", "alpha length");
  expect_throws([&] { wgan_fast::interpolate_op(K(), x.to(at::kLong), x.to(at::kLong), at::rand({4})); }, "real must be a floating-point", "integer real");
  expect_throws([&] { wgan_fast::grad_penalty_op(K(), at::scalar_tensor(1.0), 1.0, false, 1e-12); }, "0-dim", "0-dim grad");
  expect_throws([&] { wgan_fast::grad_penalty_op(K(), x, -1.0, false, 1e-12); }, "center must be", "negative center");
}

void test_dispatcher() {
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("wgan_fast::grad_penalty", "")
                .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, double, bool, double)>();
  at::Tensor g = at::randn({3, 4});
  auto [p, n] = op.call(g, 1.0, false, 1e-12);
  expect_close(n, (g.square().sum(1) + 1e-12).sqrt(), "grad_penalty through the dispatcher");
}

}  // namespace

int main() {
  at::manual_seed(0);
  test_math();
  test_interpolate();
  test_grad_penalty();
  test_bad_input();
  test_dispatcher();
  return harness::summary();
}
