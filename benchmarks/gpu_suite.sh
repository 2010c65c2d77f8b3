#!/usr/bin/env bash
# Staged GPU validation for the lent GPU machines (torch, nvcc, pytest,
# pytest-benchmark preinstalled there), the most important numbers first:
#   1 env       build for this GPU's arch only, build_info(), device/driver/torch/CUDA
#   2 op_tests  native ops' CUDA tests, graphed-vs-eager training test (capture asserted)
#   3 headline  fused GP ops, clip, spectral norm, DCGAN-64 WGAN-GP iteration vs stock
#   4 rest      remaining CUDA tests, compute-sanitizer memcheck on the op tests
# Each stage has its own time budget; after each one the output folder holds
# summary.md (headline table with targets, stage table), results.json (every
# number) and logs.tar.gz (each step's log, junit xml and benchmark JSON).
#
#   bash benchmarks/gpu_suite.sh [--out DIR] [--total S] [--stages a,b] [--budget STAGE=S]
#   bash benchmarks/gpu_suite.sh --dry-run --out DIR     # on the CPU, as CI runs it
#
# Output folder: --out, else $OUT, else ./gpu_results. Python: $PYTHON, else python3.
# Exit status: 0 every stage passed (or was skipped in a dry run); 1 a stage
# failed or timed out (summary.md says which and why); 2 bad arguments.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
exec "$PY" benchmarks/gpu_suite.py --python "$PY" "$@"
