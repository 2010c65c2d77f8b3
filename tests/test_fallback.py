"""Import and fallback with the native extension absent or mismatched.

Each case runs in a fresh interpreter: the extension is loaded once per process.
"""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(code: str, **env):
    code = textwrap.dedent(code) + textwrap.dedent(CHECK_FALLBACK)
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


CHECK_FALLBACK = """
    import torch
    from wgan_fast import ops, losses
    assert not ops.native_available("cpu")
    r, f, a = torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.rand(3)
    assert torch.equal(ops.interpolate(r, f, a), ops.interpolate_ref(r, f, a))
    g = torch.randn(3, 2, 4)
    assert torch.equal(ops.grad_penalty(g), ops.grad_penalty_ref(g)[0])
    loss, norms = losses.gradient_penalty(lambda x: x.flatten(1).sum(1), r, f)
    assert torch.isfinite(loss)
    try:
        ops.interpolate(r, f, a, impl="native")
    except RuntimeError as e:
        print("NATIVE-ERROR:", e)
    else:
        raise AssertionError("impl='native' without native kernels must raise")
"""


def test_extension_missing_warns_once_and_falls_back():
    out = run(
        """
        import sys, warnings
        sys.modules["wgan_fast._C"] = None  # as if the .so were absent
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import wgan_fast
            import wgan_fast.ops, wgan_fast.losses
        msgs = [str(x.message) for x in w if "wgan_fast" in str(x.message)]
        assert len(msgs) == 1, msgs
        print("WARNING:", msgs[0])
        """
    )
    assert "native kernels unavailable" in out and "could not be imported" in out
    assert "NATIVE-ERROR:" in out and "could not be imported" in out.split("NATIVE-ERROR:")[1]


def test_extension_built_for_another_torch():
    out = run(
        """
        import sys, types, warnings
        stub = types.ModuleType("wgan_fast._C")
        stub.build_info = lambda: {"cuda": False, "cuda_archs": "", "torch_version": "1.0.0"}
        sys.modules["wgan_fast._C"] = stub
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import wgan_fast
        print("WARNING:", [str(x.message) for x in w if "wgan_fast" in str(x.message)])
        """
    )
    assert "built against torch 1.0.0" in out


def test_disabled_by_environment_without_warning():
    out = run(
        """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import wgan_fast
        assert not [x for x in w if "wgan_fast" in str(x.message)]
        """,
        WGAN_FAST_NATIVE="0",
    )
    assert "disabled by WGAN_FAST_NATIVE=0" in out
