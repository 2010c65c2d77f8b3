#!/usr/bin/env bash
# wgan_fast developer driver. Each command does its own set-up first, so it
# works from a clean clone on a fresh Debian/Ubuntu machine with Python >= 3.10:
#
#   bash scripts/dev.sh setup          virtual env (.venv), torch, native build
#   bash scripts/dev.sh test           set-up, then the whole suite: pytest,
#                                      a one-shot run of every benchmark, CTest
#   bash scripts/dev.sh bench [args]   set-up, then the benchmarks (timed)
#   bash scripts/dev.sh train [args]   set-up, then python -m wgan_fast.train
#
# Set-up is incremental: the Python packages (torch and pyproject.toml's
# lists) are installed again only when those lists change, the extension is
# rebuilt only when csrc/, setup.py, pyproject.toml or the torch version change.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${WGAN_FAST_VENV:-$ROOT/.venv}
PY=$VENV/bin/python
export MAX_JOBS=${MAX_JOBS:-2}

log() { printf '[wgan_fast] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || return 1
  log "installing system packages: $*"
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq >/dev/null || return 1; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

find_python() {
  for cand in ${PYTHON:-} python3.12 python3.11 python3.10 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

ensure_system() {
  local py
  py=$(find_python) || { apt_install python3 python3-venv python3-dev && py=$(find_python); } ||
    { log "need Python >= 3.10"; exit 1; }
  if ! command -v g++ >/dev/null; then
    apt_install g++ || { log "need a C++ compiler (g++) to build the native kernels"; exit 1; }
  fi
  if [ ! -x "$PY" ]; then
    if ! "$py" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv || true
      "$py" -m venv "$VENV" || { log "cannot create a virtual environment ($py -m venv)"; exit 1; }
    fi
    log "created virtual environment $VENV"
  fi
}

torch_spec() {
  if [ -n "${WGAN_FAST_TORCH_SPEC:-}" ]; then echo "$WGAN_FAST_TORCH_SPEC"
  elif [ "$(uname -m)" = x86_64 ]; then echo "torch==2.14.1 torchvision==0.29.1"
  else echo "torch torchvision"; fi
}

# pyproject.toml is the one list: the build requirements, the package's
# dependencies and its dev extra (test, eval, dali, study, ninja), installed
# without building wgan_fast itself (ensure_build does that, incrementally).
ensure_packages() {
  local want have listed reqs
  listed=$("$PY" scripts/pyproject_requirements.py build core dev)
  mapfile -t reqs <<< "$listed"
  want="$(torch_spec) | $(printf '%s\n' "${reqs[@]}" | sha256sum | cut -c1-16)"
  have=$(cat "$VENV/.wgan_fast_packages" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    log "installing Python packages ($(torch_spec), pyproject.toml's build, core and dev lists) into $VENV"
    "$PY" -m pip install -q --upgrade pip
    # shellcheck disable=SC2046
    "$PY" -m pip install -q $(torch_spec) "${reqs[@]}"
    echo "$want" > "$VENV/.wgan_fast_packages"
  fi
}

# The CUDA toolkit root, as setup.py would find it (empty when none).
cuda_home() {
  if [ -n "${CUDA_HOME:-}" ]; then echo "$CUDA_HOME"; return; fi
  if [ -x /usr/local/cuda/bin/nvcc ]; then echo /usr/local/cuda; return; fi
  if command -v nvcc >/dev/null; then
    local real; real=$(grep -o '/[^ ]*/bin/nvcc' "$(command -v nvcc)" 2>/dev/null | head -1 || true)
    [ -n "$real" ] || real=$(readlink -f "$(command -v nvcc)")
    dirname "$(dirname "$real")"
  fi
}

ensure_build() {
  local cuda_mode=${WGAN_FAST_CUDA:-auto} home torch_cuda
  home=$(cuda_home || true)
  torch_cuda=$("$PY" -c 'import torch; print(int(torch.version.cuda is not None))')
  if [ "$cuda_mode" = auto ] && [ -n "$home" ] && [ "$torch_cuda" = 1 ]; then
    cuda_mode=1  # a toolkit is here: the CUDA kernels must build (compile-only without a GPU)
  fi
  [ "$cuda_mode" = 1 ] && export WGAN_FAST_EXPECT_CUDA=1
  [ -n "$home" ] && export CUDA_HOME="$home"
  local stamp
  stamp="$(find csrc setup.py pyproject.toml -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16) $("$PY" -c 'import torch; print(torch.__version__)') cuda=$cuda_mode arch=${TORCH_CUDA_ARCH_LIST:-default}"
  if [ "$stamp" != "$(cat .wf_build_stamp 2>/dev/null || true)" ] || ! "$PY" -c 'import wgan_fast._C' 2>/dev/null; then
    log "building the native extension (CUDA kernels: $([ "$cuda_mode" = 1 ] && echo yes || echo "$cuda_mode"); MAX_JOBS=$MAX_JOBS)"
    local t0=$SECONDS
    WGAN_FAST_CUDA=$cuda_mode "$PY" -m pip install -q --no-build-isolation --no-deps -e . ||
      { log "native build failed"; exit 1; }
    echo "$stamp" > .wf_build_stamp
    log "native build done in $((SECONDS - t0)) s"
  fi
  "$PY" -c 'import wgan_fast, wgan_fast._C as C; print("[wgan_fast] native build:", C.build_info())' >&2
}

# Best effort, where this machine can install them: the default dataset (the
# trainer also looks in --data-dir and $WGAN_FAST_DATA, and says what to do)
# and PostgreSQL for the study tests.
ensure_optional_system() {
  if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${WGAN_FAST_DATA:-}" ]; then
    apt_install dataset-fashion-mnist 2>/dev/null || log "could not install dataset-fashion-mnist (not Debian/Ubuntu, or no root)"
  fi
  if ! command -v pg_ctl >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
    apt_install postgresql 2>/dev/null || log "could not install postgresql (not Debian/Ubuntu, or no root)"
  fi
}

setup() { ensure_system; ensure_packages; ensure_build; ensure_optional_system; }

cmd=${1:-test}
shift || true
case "$cmd" in
  setup) setup ;;
  test)
    setup
    export WGAN_FAST_REQUIRE_NATIVE=1
    log "pytest: tests/"
    "$PY" -m pytest tests -q "$@"
    log "pytest: benchmarks/ (each benchmark body once, untimed)"
    "$PY" -m pytest benchmarks -q --benchmark-disable -p no:cacheprovider
    log "CMake build + CTest"
    PYTHON="$PY" bash scripts/cmake_build.sh
    ;;
  bench) setup; "$PY" -m pytest benchmarks "$@" ;;
  train) setup; exec "$PY" -m wgan_fast.train "$@" ;;
  *) echo "usage: bash scripts/dev.sh {setup|test|bench|train} [args]" >&2; exit 2 ;;
esac
