"""Loading of the native extension and the choice between native and reference.

`import wgan_fast` never fails because of the extension: when `wgan_fast._C`
is missing, fails to load, or was built against another torch, a single
RuntimeWarning says why and every op runs its PyTorch reference.
"""
from __future__ import annotations

import os
import warnings

import torch

IMPLS = ("auto", "native", "reference")

_C = None
BUILD_INFO: dict = {}
UNAVAILABLE_REASON: str | None = None


def _load() -> None:
    global _C, UNAVAILABLE_REASON
    if os.environ.get("WGAN_FAST_NATIVE", "1") == "0":
        UNAVAILABLE_REASON = "disabled by WGAN_FAST_NATIVE=0"
        return
    try:
        from wgan_fast import _C as mod  # noqa: PLC0415
    except ImportError as exc:  # missing, or undefined symbols from another torch
        UNAVAILABLE_REASON = f"wgan_fast._C could not be imported: {exc}"
    else:
        info = dict(mod.build_info())
        if info.get("torch_version") != torch.__version__:
            UNAVAILABLE_REASON = (
                f"wgan_fast._C was built against torch {info.get('torch_version')} "
                f"but torch {torch.__version__} is running"
            )
        else:
            _C = mod
            BUILD_INFO.update(info)
    if UNAVAILABLE_REASON and os.environ.get("WGAN_FAST_NATIVE", "1") != "0":
        warnings.warn(
            f"wgan_fast: native kernels unavailable ({UNAVAILABLE_REASON}); every op "
            "falls back to its PyTorch reference. Rebuild with "
            "`pip install --no-build-isolation -e .`.",
            RuntimeWarning,
            stacklevel=3,
        )


_load()


def _cuda_arch_ok(device: torch.device) -> tuple[bool, str]:
    archs = [a for a in BUILD_INFO.get("cuda_archs", "").replace(" ", ";").split(";") if a]
    major, minor = torch.cuda.get_device_capability(device)
    for a in archs:
        ptx = a.endswith("+PTX")
        a_major, _, a_minor = a.replace("+PTX", "").partition(".")
        a_major, a_minor = int(a_major), int(a_minor or 0)
        # SASS runs on the same major with an equal or newer minor; PTX JITs forward.
        if (a_major == major and a_minor <= minor) or (ptx and (a_major, a_minor) <= (major, minor)):
            return True, ""
    return False, f"built for CUDA archs {archs}, device is sm_{major}{minor}"


def why_unavailable(device) -> str | None:
    """None when native kernels can run on `device`, else the reason."""
    device = torch.device(device)
    if _C is None:
        return UNAVAILABLE_REASON
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if not BUILD_INFO.get("cuda"):
            return "wgan_fast._C was built without CUDA kernels"
        if not torch.cuda.is_available():
            return "CUDA is not available"
        ok, why = _cuda_arch_ok(device)
        return None if ok else why
    return f"no native kernels for device type {device.type!r}"


def native_available(device="cpu") -> bool:
    """Whether the native kernels can run on `device`."""
    return why_unavailable(device) is None


def use_native(impl: str, device: torch.device) -> bool:
    """Resolve impl='auto'|'native'|'reference' for tensors on `device`."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "reference":
        return False
    why = why_unavailable(device)
    if impl == "native" and why is not None:
        raise RuntimeError(f"impl='native' requested but native kernels are unavailable on {device}: {why}")
    return why is None


def opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision the kernels compute in: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_floating(t, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor (float32, float64, float16 or bfloat16), got {t.dtype}"
        )
