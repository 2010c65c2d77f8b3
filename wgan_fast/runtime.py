"""Process-level settings for CPU runs."""
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
