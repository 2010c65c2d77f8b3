"""Helpers shared by the tests (importable; fixtures live in conftest.py)."""
import pytest
import torch

from wgan_fast import ops

# CUDA variants of every test run when a GPU is present. Native-kernel tests
# additionally need the kernels (the `native` fixture says why not).
CUDA_SKIP_REASON = None if torch.cuda.is_available() else "no CUDA device on this machine: CUDA variants skipped"

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(CUDA_SKIP_REASON is not None, reason=str(CUDA_SKIP_REASON))),
]


def make_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as t, stored in the named layout."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        assert t.dim() == 4
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other element of a wider buffer
        big = torch.empty(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype, device=t.device)
        view = big[..., ::2]
        view.copy_(t)
        return view
    if layout == "batch_inner":  # batch dimension not outermost in memory
        perm = list(range(1, t.dim())) + [0]
        inv = [perm.index(i) for i in range(t.dim())]
        return t.permute(*perm).contiguous().permute(*inv)
    raise ValueError(layout)


LAYOUTS = ["contiguous", "channels_last", "strided", "batch_inner"]
