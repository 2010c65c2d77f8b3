"""What the evaluation and generation commands (evaluate, sample, latent-walk,
export, adapt, anomaly) share: the run arguments, and expected failures
reported as one line with their exit code (wgan_fast.errors) instead of a
traceback."""
from __future__ import annotations

import os

import torch

from .. import cli, errors, run_folder
from ..errors import DataNotFound, UsageError


def parser(prog: str, doc: str, generates: bool = True) -> cli.ArgumentParser:
    """An argument parser with --run, --ckpt, --device and, for commands that
    generate, --seed and --no-ema."""
    p = cli.new_parser(prog, doc)
    p.add_argument("--run", required=True, help="run folder (runs/<name>)")
    p.add_argument("--ckpt", default=None, help="a checkpoint file (default: the run's newest readable one)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    if generates:
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--no-ema", action="store_true", help="use the trained generator, not its moving average")
    return p


def device_of(name: str) -> torch.device:
    """The device named by --device; DeviceError when it is not there."""
    from ..runtime import resolve_device  # noqa: PLC0415

    return resolve_device(name, "--device")


def open_run(args) -> run_folder.Run:
    """The run of --run/--ckpt; refuses runs that make no images (2-D toys)."""
    run = run_folder.load_run(args.run, device_of(args.device), args.ckpt)
    if run.cfg["dataset"].startswith("toy-"):
        raise UsageError(f"{args.run} is a 2-D toy run ({run.cfg['dataset']}): it makes points, not images")
    return run


def class_arg(run: run_folder.Run, k: int | None) -> int | None:
    """--class k checked against the run: conditional, and 0 <= k < num_classes."""
    if k is None:
        return None
    if not run.num_classes:
        raise UsageError(f"--class {k}: {run.run_dir} is not a conditional run (trained without --conditional)")
    if not 0 <= k < run.num_classes:
        raise UsageError(f"--class {k}: the run has classes 0..{run.num_classes - 1}")
    return k


def out_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def main(prog: str, command, args) -> int:
    """Run `command(args)`; an expected failure is one line on stderr with its
    exit code (wgan_fast.errors), anything else a bug with its traceback."""
    return errors.run(prog, command, args)


def domain_classifier(run: run_folder.Run, required: bool):
    """The committed classifier for the run's dataset; None (or the error, when
    `required`) where there is none."""
    from ..classifier import load_classifier  # noqa: PLC0415

    try:
        return load_classifier(run.cfg["dataset"], run.device)
    except (UsageError, DataNotFound):
        if required:
            raise
        return None
