"""Helpers shared by the benchmarks."""
import pytest
import torch


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: GPU benchmarks skipped"),
    ),
]


