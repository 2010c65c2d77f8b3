// The Python module wgan_fast._C: importing it registers the ops (the
// TORCH_LIBRARY blocks are linked into the same library) and exposes the
// facts of the build, so Python can tell what the native code can do.
#include <torch/extension.h>

#include "build_config.h"

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
#ifdef WGAN_FAST_WITH_CUDA
  info["cuda"] = true;
  info["cuda_archs"] = std::string(WGAN_FAST_CUDA_ARCHS);
  info["cuda_version"] = std::string(WGAN_FAST_CUDA_VERSION);
#else
  info["cuda"] = false;
  info["cuda_archs"] = std::string();
  info["cuda_version"] = std::string();
#endif
  info["torch_version"] = std::string(WGAN_FAST_TORCH_VERSION);
  info["cpu_flags"] = std::string(WGAN_FAST_CPU_FLAGS);
  info["cxx_standard"] = static_cast<long>(__cplusplus);
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "wgan_fast native kernels (ops live in torch.ops.wgan_fast)";
  m.def("build_info", &build_info,
        "Whether CUDA was compiled in, for which archs, and the torch version "
        "the extension was built against.");
}
