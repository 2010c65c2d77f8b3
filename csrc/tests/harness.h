// A minimal check harness shared by the C++ test executables (CTest runs
// them; each prints "N passed, N failed" and exits non-zero on a failure).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <functional>
#include <iostream>
#include <string>

namespace harness {

inline int& failures() {
  static int n = 0;
  return n;
}
inline int& checks() {
  static int n = 0;
  return n;
}

inline void expect(bool ok, const std::string& what) {
  ++checks();
  if (!ok) {
    ++failures();
    std::cerr << "FAILED: " << what << "\n";
  }
}

inline void expect_close(const at::Tensor& a, const at::Tensor& b, const std::string& what,
                         double rtol = 1e-5, double atol = 1e-6) {
  const bool same_shape = a.sizes() == b.sizes();
  const bool ok = same_shape && at::allclose(a.to(at::kDouble), b.to(at::kDouble), rtol, atol);
  if (!ok && same_shape) {
    std::cerr << "  max abs diff " << (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() << "\n";
  }
  expect(ok, what);
}

inline void expect_throws(const std::function<void()>& f, const std::string& needle,
                          const std::string& what) {
  try {
    f();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    expect(msg.find(needle) != std::string::npos, what + " (message: " + msg + ")");
    return;
  }
  expect(false, what + " (no error raised)");
}

// The closing line CTest logs and CI reads; the exit code of main().
inline int summary() {
  std::cout << (checks() - failures()) << " passed, " << failures() << " failed\n";
  return failures() == 0 ? 0 : 1;
}

}  // namespace harness
