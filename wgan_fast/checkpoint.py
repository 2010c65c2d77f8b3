"""Atomic checkpoints: written whole or not at all, the last K kept.

A checkpoint is written to a temporary file in the same folder, flushed and
fsync'd, then renamed over its final name (rename is atomic on POSIX), and the
folder is fsync'd. A kill at any moment leaves either the previous set of
checkpoints or the new one, never a half-written file under a final name.
Loading uses `torch.load(weights_only=True)`; a file that fails to load
(truncated, corrupt) is reported and the next older one is tried.
"""
from __future__ import annotations

import glob
import os
import re
import warnings

import torch

from .atomic import atomic_path
from .errors import CheckpointError

PATTERN = re.compile(r"ckpt_(\d{8})\.pt$")


def path_for(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, f"ckpt_{step:08d}.pt")


def list_checkpoints(run_dir: str) -> list[str]:
    """Final-named checkpoints, oldest first."""
    found = [p for p in glob.glob(os.path.join(run_dir, "ckpt_*.pt")) if PATTERN.search(os.path.basename(p))]
    return sorted(found, key=lambda p: int(PATTERN.search(os.path.basename(p)).group(1)))


def atomic_save(obj, path: str) -> str:
    """torch.save to a temporary file in the same folder, fsync, rename over `path`."""
    with atomic_path(path, prefix=".ckpt_") as tmp:
        torch.save(obj, tmp)
    return path


def save(state: dict, run_dir: str, step: int, keep: int) -> str:
    """Write `state` as the checkpoint of `step`; keep the newest `keep` files."""
    os.makedirs(run_dir, exist_ok=True)
    # temporaries left by a writer that was killed mid-write are never loaded; remove them
    for stale in glob.glob(os.path.join(run_dir, ".ckpt_*.tmp")):
        try:
            os.unlink(stale)
        except OSError:
            pass
    final = atomic_save(state, path_for(run_dir, step))
    for old in list_checkpoints(run_dir)[:-keep]:
        os.unlink(old)
    return final


# the models (G, D, G_ema, config, step) at the best in-training evaluation score:
# for sampling and evaluation (run_folder.load_run(..., ckpt=...)), never rotated out
BEST = "best.pt"


def load_file(path: str, map_location="cpu"):
    """torch.load(weights_only=True) of one checkpoint file; CheckpointError
    naming it when it cannot be read."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt, not a torch file, unsafe pickle: all unreadable
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


# the entries every reader needs (sampling, evaluation), and those a resume needs too
MODEL_KEYS = ("step", "config", "G", "D")
RESUME_KEYS = MODEL_KEYS + ("G_ema", "opt_g", "opt_d", "scaler_g", "scaler_d", "sched_g", "sched_d", "data", "rng")


def missing_entries(state, keys=MODEL_KEYS) -> str | None:
    """Why `state` (a loaded file) is not a wgan_fast checkpoint holding `keys`, or None."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint's mapping"
    missing = [k for k in keys if k not in state]
    if missing:
        return f"no {', '.join(map(repr, missing))} entr{'y' if len(missing) == 1 else 'ies'}"
    if "config" in keys and not isinstance(state["config"], dict):
        return "its 'config' entry is not a mapping"
    if "step" in keys and (not isinstance(state["step"], int) or isinstance(state["step"], bool)):
        return "its 'step' entry is not an integer"
    return None


def load_latest(run_dir: str, map_location="cpu", keys=MODEL_KEYS):
    """(state, path) of the newest checkpoint that loads and holds `keys`, or (None, None).

    Corrupt, truncated or incomplete files are skipped with a warning naming them.
    """
    for path in reversed(list_checkpoints(run_dir)):
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to load means: try the previous one
            why = f"unreadable ({type(exc).__name__}: {exc})"
        else:
            why = missing_entries(state, keys)
            if why is None:
                return state, path
            why = f"not a usable wgan_fast checkpoint ({why})"
        warnings.warn(f"checkpoint {path} is {why}; trying the previous one", RuntimeWarning, stacklevel=2)
    return None, None
