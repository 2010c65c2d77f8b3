"""What the staged GPU suite records about the machine, as one JSON object.

    python benchmarks/gpu_suite_env.py device OUT.json   # GPU, driver, torch, CUDA, nvcc, packages
    python benchmarks/gpu_suite_env.py build OUT.json    # wgan_fast._C.build_info() and native availability

Exit status: 0 recorded; 1 recorded, but with --require-cuda the check
named on the last line failed (no CUDA device, no CUDA kernels, wrong arch).
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys

# What the suite's tests and benchmarks import beyond torch, and what each gates.
MODULES = {
    "pytest": "every test and benchmark stage",
    "pytest_benchmark": "the benchmark stage",
    "numpy": "tests and data benchmarks",
    "PIL": "the trainer's sample grids (graphed-vs-eager training test)",
    "matplotlib": "the trainer's loss plot (graphed-vs-eager training test)",
    "scipy": "metric tests (not run by the suite)",
    "torchvision": "the data benchmark's stock loader (not run by the suite)",
    "nvidia.dali": "DALI loader tests (not run by the suite)",
}


def _first_line(argv, timeout=20):
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"failed: {exc}"
    lines = [ln.strip() for ln in (out.stdout or out.stderr).splitlines() if ln.strip()]
    return lines[0] if out.returncode == 0 and lines else f"failed (exit {out.returncode}): {' '.join(lines[-1:])}"


def _module_present(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that is missing
        return False


def device_facts() -> tuple[dict, str | None]:
    import torch

    facts = dict(python=platform.python_version(), cpu_count=os.cpu_count(), torch=torch.__version__,
                 torch_cuda=torch.version.cuda,
                 nvidia_smi=_first_line(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                                         "--format=csv,noheader"]),
                 nvcc=None, compute_sanitizer=_first_line(["compute-sanitizer", "--version"]),
                 missing_modules={m: why for m, why in MODULES.items() if not _module_present(m)})
    nvcc = _first_line(["nvcc", "--version"])
    if nvcc is not None:  # the release line, not the banner
        out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, timeout=20).stdout
        facts["nvcc"] = next((ln.strip() for ln in out.splitlines() if "release" in ln), nvcc)
    smi = [p.strip() for p in (facts["nvidia_smi"] or "").split(",")]
    if len(smi) == 4 and not smi[0].startswith("failed"):  # name, driver, memory, compute capability
        facts.update(device_name=smi[0], driver=smi[1], compute_capability=smi[3])
    if not torch.cuda.is_available():
        return facts, "torch sees no CUDA device"
    major, minor = torch.cuda.get_device_capability()
    props = torch.cuda.get_device_properties(0)
    facts.update(device_name=torch.cuda.get_device_name(), compute_capability=f"{major}.{minor}",
                 multiprocessors=props.multi_processor_count, device_memory_gib=round(props.total_memory / 2 ** 30, 1),
                 bf16_supported=torch.cuda.is_bf16_supported())
    return facts, None


def build_facts() -> tuple[dict, str | None]:
    import torch

    from wgan_fast import ops

    facts = dict(native_cpu=ops.why_unavailable("cpu") or "available",
                 native_cuda=ops.why_unavailable("cuda") or "available", build_info=dict(ops.BUILD_INFO))
    if not ops.BUILD_INFO:
        return facts, f"wgan_fast._C not loaded: {facts['native_cpu']}"
    if not torch.cuda.is_available():
        return facts, "torch sees no CUDA device"
    if not ops.BUILD_INFO.get("cuda"):
        return facts, f"wgan_fast._C was built without CUDA kernels: {ops.BUILD_INFO}"
    if facts["native_cuda"] != "available":
        return facts, f"native CUDA kernels unavailable: {facts['native_cuda']}"
    return facts, None


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    require = "--require-cuda" in args
    args = [a for a in args if a != "--require-cuda"]
    if len(args) != 2 or args[0] not in ("device", "build"):
        print("usage: python benchmarks/gpu_suite_env.py {device|build} OUT.json [--require-cuda]", file=sys.stderr)
        return 2
    facts, problem = device_facts() if args[0] == "device" else build_facts()
    with open(args[1], "w") as f:
        json.dump(facts, f, indent=1, default=str)
    print(json.dumps(facts, default=str))
    if problem and require:
        print(f"gpu_suite_env: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
