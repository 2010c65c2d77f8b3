#!/usr/bin/env bash
# One-shot GPU validation: build, every test (CUDA variants must run, not
# skip), compute-sanitizer over the native ops' CUDA tests, every benchmark,
# and one table. Meant for the lent GPU machines (torch + nvcc preinstalled):
#   bash benchmarks/gpu_suite.sh [OUT_DIR]
# Results (logs, JSON, table.md) go to OUT_DIR (default $OUT or ./gpu_results).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_results}}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export MAX_JOBS=${MAX_JOBS:-16} WGAN_FAST_CUDA=1 WGAN_FAST_REQUIRE_NATIVE=1
[ -n "${CUDA_HOME:-}" ] || { [ -x /usr/local/cuda/bin/nvcc ] && export CUDA_HOME=/usr/local/cuda; }
status=0
step() { echo "== $*" | tee -a "$OUT/suite.log"; }

step "environment"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; nvcc --version | tail -1; date -u; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step "build"
$PY -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
$PY -c 'import wgan_fast._C as C; print(C.build_info())' | tee -a "$OUT/suite.log"

step "pytest (all tests; CUDA variants must run)"
$PY -m pytest tests -q -rs > "$OUT/pytest.log" 2>&1 || status=1
tail -3 "$OUT/pytest.log"
if grep -q "no CUDA device" "$OUT/pytest.log"; then echo "CUDA tests were skipped!"; status=1; fi

if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool (native op CUDA tests)"
    compute-sanitizer --tool "$tool" --error-exitcode 9 $PY -m pytest tests/test_interpolate.py tests/test_grad_penalty.py -q -k cuda -x > "$OUT/sanitizer_$tool.log" 2>&1 || status=1
    tail -2 "$OUT/sanitizer_$tool.log"
  done
fi

step "benchmarks"
$PY -m pytest benchmarks -q --benchmark-json="$OUT/benchmarks.json" > "$OUT/benchmarks.log" 2>&1 || status=1
cp benchmarks/results/latest.json "$OUT/ratios.json" 2>/dev/null
sed -n '/wgan_fast: medians/,/^$/p' "$OUT/benchmarks.log" | tee "$OUT/table.md"
exit $status
