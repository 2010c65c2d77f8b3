"""Build of wgan_fast and its native extension wgan_fast._C.

Environment:
  WGAN_FAST_CUDA=auto|0|1   CUDA kernels: auto (default) builds them when a CUDA
                            toolkit and a CUDA build of torch are present; 1
                            requires them (a clear error otherwise); 0 skips them.
  TORCH_CUDA_ARCH_LIST      CUDA archs, default "8.0;9.0" (A100, H100).
  CUDA_HOME                 toolkit root; found from /usr/local/cuda or nvcc
                            on PATH when unset.
  WGAN_FAST_CPU_ARCH=auto|none|"<flags>"
                            extra CPU code-generation flags: auto (default) adds
                            -mavx2 -mfma -mf16c when the build machine has them
                            (x86-64); none adds nothing (portable binary).
  MAX_JOBS                  parallel compile jobs (ninja).
"""
import glob
import os
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _find_cuda_home():
    """The toolkit root: $CUDA_HOME, /usr/local/cuda, or nvcc's (resolved) parent."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    candidates = ["/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        # /usr/local/bin/nvcc may be a wrapper script: look for the real one too.
        real = os.path.realpath(nvcc)
        candidates.append(os.path.dirname(os.path.dirname(real)))
        try:
            with open(nvcc, "rb") as f:
                head = f.read(4096).decode("utf-8", "ignore")
            for tok in head.split():
                if tok.endswith("/bin/nvcc") and os.path.exists(tok):
                    candidates.append(os.path.dirname(os.path.dirname(tok)))
        except OSError:
            pass
    for c in candidates:
        if os.path.exists(os.path.join(c, "bin", "nvcc")) and (
            glob.glob(os.path.join(c, "lib64", "libcudart.so*"))
            or glob.glob(os.path.join(c, "lib", "libcudart.so*"))
            or glob.glob(os.path.join(c, "targets", "*", "lib", "libcudart.so*"))
        ):
            return c
    return None


def _cuda_mode():
    mode = os.environ.get("WGAN_FAST_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"WGAN_FAST_CUDA must be auto, 0 or 1, got {mode!r}")
    return mode


MODE = _cuda_mode()
CUDA_HOME = _find_cuda_home() if MODE != "0" else None
if CUDA_HOME:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported.
    os.environ["CUDA_HOME"] = CUDA_HOME

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

WITH_CUDA = False
if MODE != "0":
    have = CUDA_HOME is not None and torch.version.cuda is not None
    if MODE == "1" and not have:
        why = (
            "no CUDA toolkit found (set CUDA_HOME to the toolkit root, e.g. /usr/local/cuda)"
            if CUDA_HOME is None
            else f"torch {torch.__version__} is not a CUDA build"
        )
        sys.exit(f"WGAN_FAST_CUDA=1 but the CUDA kernels cannot be built: {why}")
    WITH_CUDA = have

ARCHS = os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
if WITH_CUDA:
    os.environ["TORCH_CUDA_ARCH_LIST"] = ARCHS


def _cpu_arch_flags():
    mode = os.environ.get("WGAN_FAST_CPU_ARCH", "auto").strip()
    if mode == "none":
        return []
    if mode != "auto":
        return mode.split()
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return []
    # The extension is compiled on the machine that runs it; these let the
    # compiler vectorise the CPU loops 8 floats wide with fused multiply-adds.
    return ["-mavx2", "-mfma", "-mf16c"] if {"avx2", "fma", "f16c"} <= flags else []


CPU_FLAGS = _cpu_arch_flags()


def _write_build_config():
    gen = os.path.join(ROOT, "build", "generated")
    os.makedirs(gen, exist_ok=True)
    with open(os.path.join(ROOT, "csrc", "build_config.h.in")) as f:
        text = f.read()
    text = (
        text.replace("@WGAN_FAST_TORCH_VERSION@", torch.__version__)
        .replace("@WGAN_FAST_CUDA_ARCHS@", ARCHS if WITH_CUDA else "")
        .replace("@WGAN_FAST_CUDA_VERSION@", (torch.version.cuda or "") if WITH_CUDA else "")
        .replace("@WGAN_FAST_CPU_FLAGS@", " ".join(CPU_FLAGS))
    )
    path = os.path.join(gen, "build_config.h")
    old = open(path).read() if os.path.exists(path) else None
    if old != text:  # keep the mtime when nothing changed: no needless rebuilds
        with open(path, "w") as f:
            f.write(text)
    return gen


def _extension():
    gen = _write_build_config()
    rel = lambda pattern: sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))
    sources = rel("csrc/*.cpp") + rel("csrc/cpu/*.cpp")
    # -fopenmp: at::parallel_for is an inline `#pragma omp parallel` in ATen's
    # headers, so without it every parallel_for of ours runs on one thread.
    # libgomp.so.1 resolves to the copy torch has already loaded.
    cxx = ["-O3", "-fopenmp-simd", "-fopenmp"] + CPU_FLAGS
    link = ["-fopenmp"]
    macros = []
    if WITH_CUDA:
        sources += rel("csrc/cuda/*.cu")
        macros.append(("WGAN_FAST_WITH_CUDA", None))
        nvcc = ["-O3", "-lineinfo"]
        return CUDAExtension(
            "wgan_fast._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc"), gen],
            define_macros=macros,
            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
            extra_link_args=link,
        )
    return CppExtension(
        "wgan_fast._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc"), gen],
        define_macros=macros,
        extra_compile_args={"cxx": cxx},
        extra_link_args=link,
    )


setup(
    packages=find_packages(include=["wgan_fast", "wgan_fast.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
