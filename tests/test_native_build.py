"""Facts of the native build."""
import os

import pytest
import torch

import wgan_fast
from wgan_fast import ops


def test_build_info_matches_running_torch():
    if ops.BUILD_INFO == {}:
        pytest.skip(f"native extension not loaded: {ops.why_unavailable('cpu')}")
    info = wgan_fast._C.build_info()
    assert set(info) >= {"cuda", "cuda_archs", "torch_version"}
    assert info["torch_version"] == torch.__version__
    assert info["cxx_standard"] >= 202002  # torch 2.14's headers need C++20
    assert ops.native_available("cpu")


def test_ci_builds_native_and_cuda():
    # .ci/run sets these so a silently skipped build cannot pass CI.
    if os.environ.get("WGAN_FAST_REQUIRE_NATIVE") == "1":
        assert ops.native_available("cpu"), ops.why_unavailable("cpu")
    if os.environ.get("WGAN_FAST_EXPECT_CUDA") == "1":
        info = wgan_fast._C.build_info()
        assert info["cuda"] is True, info
        archs = info["cuda_archs"].replace(" ", ";").split(";")
        assert any(a.startswith("9.0") for a in archs), info


def test_cuda_availability_tells_the_truth():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; covered by the CUDA variants of the op tests")
    assert not ops.native_available("cuda")
    assert "not available" in ops.why_unavailable("cuda") or "without CUDA" in ops.why_unavailable("cuda")
    with pytest.raises(RuntimeError, match="impl='native'"):
        ops.interpolate(torch.zeros(1, 1).to("meta"), torch.zeros(1, 1).to("meta"), torch.zeros(1).to("meta"), impl="native")
