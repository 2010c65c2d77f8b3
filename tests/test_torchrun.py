"""`torchrun --nproc_per_node=2 -m wgan_fast.train` on the CPU (gloo), end to end: MNIST IDX files
written here, two worker processes started by torchrun, a checkpoint that holds both ranks' state,
and a second launch with --resume that continues it."""
import json
import os
import subprocess
import sys

import numpy as np
import torch

import wgan_fast
from wgan_fast import checkpoint

from helpers import write_idx  # noqa: E402

N_CRITIC = 2


def _write_mnist(folder, n=64):
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), False)
    write_idx(folder / "train-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), False)


def _torchrun(tmp_path, steps, *extra):
    # --standalone: the rendezvous binds port 0, so the kernel picks a free port (no race with
    # other runs on this machine)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "wgan_fast.train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"),
            "--model", "mlp", "--resolution", "28", "--z-dim", "16", "--g-base", "8", "--d-base", "8",
            "--batch-size", "4", "--n-critic", str(N_CRITIC), "--steps", str(steps), "--log-every", "1",
            "--sample-every", "100", "--ckpt-every", "3", "--n-samples", "4", "--device", "cpu",
            "--tensorboard", "false", "--out-dir", str(tmp_path / "runs"), "--name", "tr", *extra]
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(wgan_fast.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, f"torchrun exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    for sign in ("Traceback", "terminate called", "Signal", "SIGABRT"):
        assert sign not in proc.stderr, f"{sign!r} in torchrun's stderr:\n{proc.stderr[-4000:]}"
    return proc


def _logged_steps(run_dir):
    return [json.loads(line)["step"] for line in open(run_dir / "metrics.jsonl")]


def test_torchrun_two_processes_checkpoint_both_ranks_and_resume(tmp_path):
    _write_mnist(tmp_path / "mnist")
    run_dir = tmp_path / "runs" / "tr"

    _torchrun(tmp_path, 3)
    state, path = checkpoint.load_latest(str(run_dir))
    assert state["step"] == 3 and path.endswith("ckpt_00000003.pt")
    assert len(state["data"]) == len(state["rng"]) == 2  # one entry per rank
    assert [d["k"] for d in state["data"]] == [3 * N_CRITIC] * 2  # batches each rank has drawn
    # each rank's own generator state (seeded per rank), not one rank's state twice
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert _logged_steps(run_dir) == [1, 2, 3]

    resumed = _torchrun(tmp_path, 5, "--resume", "true")
    assert "no readable checkpoint" not in resumed.stderr
    state, path = checkpoint.load_latest(str(run_dir))
    assert state["step"] == 5 and path.endswith("ckpt_00000005.pt")
    assert [d["k"] for d in state["data"]] == [5 * N_CRITIC] * 2
    assert _logged_steps(run_dir) == [1, 2, 3, 4, 5]  # continued at step 4, not restarted at 1
