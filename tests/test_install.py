"""Installing wgan_fast the documented way gives a working trainer.

A fresh virtual environment gets torch and torchvision (the versions under
test), the build requirements, then `pip install --no-build-isolation .` of a
copy of the repository's tracked files, and trains a few steps from a folder
outside the repository. Nothing of the development environment is visible
there, so every package a default run imports must come from pyproject.toml's
declared dependencies.

torch is the given here, and its 5 GB of wheels took 3 minutes to install
on the 2-core development machine, so it is installed once per (Python, torch, torchvision)
into a cache folder that holds torch's own dependency closure and nothing
else; the fresh environment sees it through a .pth file, as if installed
first with `pip install torch torchvision`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from helpers import write_idx

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
PY_DIR = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def _run(args, timeout=900, **kw):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


def _timed(name, fn, *args, **kw):
    t0 = time.time()
    out = fn(*args, **kw)
    print(f"fresh install: {name}: {time.time() - t0:.1f} s")  # (shown with -rP, and on a failure)
    return out


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / PY_DIR / "site-packages"


def _clean_env(venv: Path) -> dict:
    """The environment of a user who just made `venv`: none of ours on the path."""
    ours = {os.path.dirname(sys.executable), str(REPO)}
    path = [str(venv / "bin")] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p not in ours]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV") and not k.startswith("WGAN_FAST_")}
    env.update(PATH=os.pathsep.join(path), WGAN_FAST_CUDA="0", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    return env


def _torch_site() -> Path:
    """site-packages holding exactly `pip install torch==X torchvision==Y` (X, Y: the versions here)."""
    spec = [f"torch=={version('torch')}", f"torchvision=={version('torchvision')}"]
    cache = Path(os.environ.get("WGAN_FAST_CACHE") or Path.home() / ".cache" / "wgan_fast")
    root = cache / "install-test" / "-".join([PY_DIR] + [s.replace("==", "-") for s in spec])
    if not _site_packages(root).is_dir():
        partial = root.with_name(root.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        _run([sys.executable, "-m", "venv", "--without-pip", partial])
        # pip of this environment, run by the new one's interpreter: installs into it only
        _run([sys.executable, "-m", "pip", "--python", partial / "bin" / "python", "install", "-q", *spec],
             timeout=1800)
        try:
            partial.rename(root)  # whole or absent: an interrupted build is never taken for a cache
        except OSError:  # another run finished first
            shutil.rmtree(partial, ignore_errors=True)
        for old in root.parent.iterdir():  # one torch kept (5 GB each); others' builds in progress left alone
            if old != root and ".partial-" not in old.name:
                shutil.rmtree(old, ignore_errors=True)
    return _site_packages(root)


def _copy_tracked_files(dst: Path) -> Path:
    """The files git tracks (and new ones it does not ignore): no build outputs."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO).stdout
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():  # (a tracked file deleted in the work tree is left out)
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory):
    """(python of a fresh venv with wgan_fast installed from a copy of the repo, its environment)."""
    tmp = tmp_path_factory.mktemp("install")
    torch_site = _timed("torch (cached after the first run)", _torch_site)
    venv = tmp / "venv"
    _timed("python -m venv", _run, [sys.executable, "-m", "venv", venv])
    (_site_packages(venv) / "torch_first.pth").write_text(f"{torch_site}\n")
    py, env = venv / "bin" / "python", _clean_env(venv)
    src = _copy_tracked_files(tmp / "src")
    build_reqs = _run([py, src / "scripts" / "pyproject_requirements.py", "build"], env=env).stdout.split()
    _timed("pip install <build requirements>", _run, [py, "-m", "pip", "install", "-q", *build_reqs], env=env)
    _timed("pip install --no-build-isolation .", _run,
           [py, "-m", "pip", "install", "-q", "--no-build-isolation", src], env=env, cwd=tmp, timeout=1800)
    return py, env


def _fashion_mnist_dir(tmp: Path) -> list[str]:
    if (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        return []  # the trainer finds Debian's copy by itself
    rng = np.random.default_rng(0)
    write_idx(tmp / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (256, 28, 28), dtype=np.uint8), compress=True)
    write_idx(tmp / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 256, dtype=np.uint8), compress=True)
    return ["--data-dir", str(tmp)]


def test_default_training_run_from_a_fresh_install(fresh_install, tmp_path):
    py, env = fresh_install
    work = tmp_path / "elsewhere"  # not the repository: the installed package, not the source tree
    work.mkdir()
    native = _run([py, "-c", "import wgan_fast, wgan_fast._C; print(wgan_fast.__file__)"], env=env, cwd=work)
    assert "site-packages" in native.stdout, native.stdout
    args = [py, "-m", "wgan_fast.train", "--steps", "20", "--batch-size", "16", "--g-base", "8", "--d-base", "8",
            "--log-every", "5", "--sample-every", "10", "--ckpt-every", "10", "--n-samples", "16",
            "--out-dir", work / "runs", "--name", "fresh", "--device", "cpu", *_fashion_mnist_dir(tmp_path)]
    proc = _timed("20-step training run", subprocess.run, [str(a) for a in args], capture_output=True, text=True,
                  timeout=600, env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "logging off" not in proc.stderr, proc.stderr[-3000:]
    run = work / "runs" / "fresh"
    assert (run / "losses.png").stat().st_size > 0
    assert (run / "samples.gif").stat().st_size > 0
    assert sorted(p.name for p in (run / "samples").glob("step_*.png")), "no sample grid"
    assert list((run / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"


def test_a_missing_extra_stops_before_the_run_with_one_line(fresh_install, tmp_path):
    py, env = fresh_install
    probe = subprocess.run([py, "-c", "import nvidia.dali"], capture_output=True, env=env, cwd=tmp_path)
    assert probe.returncode != 0, "DALI is installed in the fresh environment: this test needs it absent"
    (tmp_path / "images").mkdir()
    proc = subprocess.run([str(py), "-m", "wgan_fast.train", "--dataset", "folder", "--loader", "dali",
                           "--data-dir", str(tmp_path / "images"), "--out-dir", str(tmp_path / "runs"),
                           "--device", "cpu"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 5, proc.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "wgan_fast[dali]" in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()  # stopped before the run folder was made
