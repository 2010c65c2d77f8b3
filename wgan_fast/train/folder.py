"""The run folder before a run starts: resume from it, start afresh in it, or
refuse (a changed config, unreadable checkpoints, a run already there)."""
from __future__ import annotations

import glob
import os
import shutil
import sys

import torch.distributed as dist

from .. import checkpoint, config
from ..errors import CheckpointError, UsageError

# what the trainer writes into a run folder (removed by --overwrite true)
RUN_OUTPUTS = ("ckpt_*.pt", ".ckpt_*.tmp", checkpoint.BEST, "metrics.jsonl", "config.json", "samples", "tb",
               "samples.gif", "losses.png")


def run_name(cfg) -> str:
    return cfg["name"] or cfg["preset"] or f"{cfg['algorithm']}-{cfg['dataset']}"


def run_dir_of(cfg) -> str:
    return os.path.join(cfg["out_dir"], run_name(cfg))


def prepare(cfg, run_dir, resume, rank, world):
    """(state, checkpoint path) to resume from, or (None, None) for a fresh run.

    A resume compares the checkpoint's config with this one before anything
    loads; a fresh run refuses a folder that holds a run unless overwrite."""
    found = checkpoint.list_checkpoints(run_dir)
    if resume:
        return _resume_state(cfg, run_dir, found, rank)
    holds_run = found or os.path.exists(os.path.join(run_dir, "metrics.jsonl"))
    if holds_run and not cfg["overwrite"]:
        raise UsageError(f"{run_dir} already holds a run ({len(found)} checkpoint(s)): continue it with --resume true, "
                         f"start it afresh with --overwrite true, or choose another --name")
    if holds_run and rank == 0:
        for pattern in RUN_OUTPUTS:
            for path in glob.glob(os.path.join(run_dir, pattern)):
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    if world > 1:
        dist.barrier()  # no rank writes before rank 0 has cleared the folder
    return None, None


def _resume_state(cfg, run_dir, found, rank):
    state, path = checkpoint.load_latest(run_dir, map_location="cpu", keys=checkpoint.RESUME_KEYS)
    if state is None and found:
        raise CheckpointError(f"{run_dir}: none of its {len(found)} checkpoint(s) can be read (newest: "
                              f"{found[-1]}); resume from an intact copy, or start afresh with --overwrite true")
    if state is None:
        if rank == 0:
            print(f"[wgan_fast] --resume: no checkpoint in {run_dir} yet; starting at step 0", file=sys.stderr)
        return None, None
    differences = config.resume_differences(state.get("config", {}), cfg)
    if differences:
        raise config.ConfigError(
            f"resume: {path} was trained with another config: {'; '.join(differences)}. Resume with the run's "
            f"own settings (--config {os.path.join(run_dir, 'config.json')}), or train a new run (--name)")
    if rank == 0:
        _set_aside_newer(found, path)
    return state, path


def _set_aside_newer(found, path):
    """Rename the unusable checkpoints newer than `path` (the one resumed) so
    that rotation, which keeps the newest by step, never deletes the good
    one for them, and a later resume does not try them again."""
    for newer in found[found.index(path) + 1:]:
        os.replace(newer, newer + ".unusable")
        print(f"[wgan_fast] --resume: {newer} cannot be resumed from; kept as {newer}.unusable", file=sys.stderr)
