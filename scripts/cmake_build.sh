#!/usr/bin/env bash
# Configure, build and run the CMake build (libtorch + CTest) with the
# project's virtual environment. Usage: scripts/cmake_build.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BUILD=${1:-build-cmake}
prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
args=(-DCMAKE_PREFIX_PATH="$prefix" -DPython3_EXECUTABLE="$(readlink -f "$PY")")
if [ "$("$PY" -c 'import torch; print(torch.version.cuda is not None)')" = True ]; then
  # A CUDA build of torch makes find_package(Torch) look for the toolkit and nvrtc.
  cuda_home=${CUDA_HOME:-/usr/local/cuda}
  if [ -z "${CUDA_HOME:-}" ] && [ ! -x /usr/local/cuda/bin/nvcc ] && command -v nvcc >/dev/null; then
    cuda_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  fi
  args+=(-DCUDA_TOOLKIT_ROOT_DIR="$cuda_home" -DCUDAToolkit_ROOT="$cuda_home")
  nvrtc=$("$PY" - <<'PYEOF'
import glob, os, torch
root = os.path.dirname(os.path.dirname(torch.__file__))
hits = sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so*")))
print(hits[0] if hits else "")
PYEOF
)
  if [ -n "$nvrtc" ] && [ ! -e "$cuda_home/lib64/libnvrtc.so" ]; then
    args+=(-DCUDA_nvrtc_LIBRARY="$nvrtc")
  fi
fi
# Without an arch list, Caffe2's CMake tries to run a GPU-detection program.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
cmake -S . -B "$BUILD" -G Ninja "${args[@]}" > "$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j "${MAX_JOBS:-2}"
ctest --test-dir "$BUILD" --output-on-failure
