"""What the generation commands (sample, interpolate, export, adapt, anomaly)
share: the run arguments, and bad input reported as one clear line (exit code
2) instead of a traceback."""
from __future__ import annotations

import argparse
import os
import sys

import torch

from . import run_folder
from .errors import WganFastError


def parser(prog: str, doc: str, generates: bool = True) -> argparse.ArgumentParser:
    """An argument parser with --run, --ckpt, --device and, for commands that
    generate, --seed and --no-ema."""
    p = argparse.ArgumentParser(prog=f"python -m wgan_fast.{prog}", description=doc.strip().split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, help="run folder (runs/<name>)")
    p.add_argument("--ckpt", default=None, help="a checkpoint file (default: the run's newest readable one)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    if generates:
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--no-ema", action="store_true", help="use the trained generator, not its moving average")
    return p


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def open_run(args) -> run_folder.Run:
    """The run of --run/--ckpt; refuses runs that make no images (2-D toys)."""
    run = run_folder.load_run(args.run, device_of(args.device), args.ckpt)
    if run.cfg["dataset"].startswith("toy-"):
        raise ValueError(f"{args.run} is a 2-D toy run ({run.cfg['dataset']}): it makes points, not images")
    return run


def class_arg(run: run_folder.Run, k: int | None) -> int | None:
    """--class k checked against the run: conditional, and 0 <= k < num_classes."""
    if k is None:
        return None
    if not run.num_classes:
        raise ValueError(f"--class {k}: {run.run_dir} is not a conditional run (trained without --conditional)")
    if not 0 <= k < run.num_classes:
        raise ValueError(f"--class {k}: the run has classes 0..{run.num_classes - 1}")
    return k


def out_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def main(prog: str, command, args) -> int:
    """Run `command(args)`; bad input (missing files, wrong values) -> one line on stderr, exit code 2."""
    try:
        command(args)
    except WganFastError as exc:  # (a missing extra: exit 5)
        print(f"wgan_fast.{prog}: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except (FileNotFoundError, ValueError) as exc:
        print(f"wgan_fast.{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def domain_classifier(run: run_folder.Run, required: bool):
    """The committed classifier for the run's dataset; None (or the error, when
    `required`) where there is none."""
    from .classifier import load_classifier  # noqa: PLC0415

    try:
        return load_classifier(run.cfg["dataset"], run.device)
    except FileNotFoundError:
        if required:
            raise
        return None
