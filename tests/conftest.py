import os

import pytest
import torch

import wgan_fast  # noqa: F401  (registers the native ops)
from wgan_fast import ops

from helpers import CUDA_SKIP_REASON, DEVICES  # noqa: E402


def pytest_report_header(config):
    info = dict(ops.BUILD_INFO) if ops.BUILD_INFO else "not loaded"
    lines = [f"wgan_fast native build: {info}", f"torch {torch.__version__}, threads {torch.get_num_threads()}"]
    if CUDA_SKIP_REASON:
        lines.append(f"CUDA tests: SKIPPED ({CUDA_SKIP_REASON})")
    else:
        lines.append(f"CUDA tests: on {torch.cuda.get_device_name()}; native CUDA: {ops.why_unavailable('cuda') or 'available'}")
    return lines


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def native(device):
    if os.environ.get("WGAN_FAST_REQUIRE_NATIVE") == "1":
        assert ops.native_available(device), ops.why_unavailable(device)
    elif not ops.native_available(device):
        pytest.skip(f"native kernels unavailable on {device}: {ops.why_unavailable(device)}")
    return "native"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)




@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: on a CPU shared with other jobs, two threads stall at every layer's barrier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
