"""Process-level settings: the device a command runs on, memory behaviour of CPU runs."""
from __future__ import annotations

import os
import platform


def keep_freed_memory() -> str:
    """Keep freed memory in the process (glibc only): no trimming back to the
    OS and no mmap for blocks up to 32 MB.

    A CPU training step allocates and frees multi-MB activations every step;
    with glibc's defaults the heap is trimmed between steps and every fresh
    block is paid again in page faults. `WGAN_FAST_MALLOC=default` keeps
    glibc's behaviour. Returns what was set.
    """
    if os.environ.get("WGAN_FAST_MALLOC", os.environ.get("WGAN_FAST_BENCH_MALLOC")) == "default":
        return "default"
    if platform.system() != "Linux":
        return "default"
    import ctypes  # noqa: PLC0415

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "default"
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30):
        return "steady (mmap threshold 32 MB, no trim)"
    return "default"


def resolve_device(name: str, key: str = "device"):
    """torch.device for "auto" (CUDA when available), "cpu", "cuda" or "cuda:N";
    DeviceError naming `key` when CUDA is asked for and not there."""
    import torch  # noqa: PLC0415

    from .errors import DeviceError, UsageError  # noqa: PLC0415

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"{key}: {name!r} is not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"{key}: {name!r} is not supported (auto, cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{key}: {name} asked for, but torch sees no CUDA device here "
                              f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                              f"use --{key.lstrip('-').replace('_', '-')} cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{key}: {name} asked for, but there are {torch.cuda.device_count()} CUDA device(s)")
    return device


def cpu_bf16_features() -> set[str]:
    """This CPU's bf16 instruction sets among avx512_bf16 and amx_bf16: from
    torch's CPU capability report, else the kernel's /proc/cpuinfo flags."""
    import torch  # noqa: PLC0415

    names = ("avx512_bf16", "amx_bf16")
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        found = caps()
        return {n for n in names if found.get(n)}
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return set()
    return {n for n in names if n in flags}


def auto_precision(device_type: str) -> str:
    """What precision=auto means on a device type: bf16 on CUDA and on CPUs with
    AMX-BF16 (matrix tiles: bf16 products at many times the float32 rate), fp32
    on other CPUs. AVX512-BF16 alone does not count: its dot product issues at
    the FMA's rate where the CPU has two FMA ports, and the conversions then make
    bf16 slower (measured on the 2-core Xeon: docs/performance.md, "bf16 on the CPU")."""
    if device_type == "cuda":
        return "bf16"
    return "bf16" if "amx_bf16" in cpu_bf16_features() else "fp32"
