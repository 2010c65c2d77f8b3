"""Sample a grid of images from a trained run.

    wgan-fast sample --run runs/x [--n 64] [--class k] [--out grid.png]

Conditional runs without --class draw the classes in turn: one column per
class. The grid is a uint8 PNG; the same --seed gives the same grid.
"""
from __future__ import annotations

import math
import os
import sys

import torch

from .. import run_folder
from ..errors import UsageError
from ..runlog import save_grid
from . import common


def sample(args) -> str:
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    run = common.open_run(args)
    k = common.class_arg(run, args.class_)
    labels, nrow = None, args.nrow or math.ceil(math.sqrt(args.n))
    if run.num_classes:
        labels = torch.full((args.n,), k) if k is not None else torch.arange(args.n) % run.num_classes
        if k is None and not args.nrow:
            nrow = run.num_classes
    images, _ = run_folder.generate(run, args.n, labels=labels, seed=args.seed, ema=not args.no_ema)
    out = args.out or os.path.join(run.run_dir, "generated", "sample.png")
    common.out_dir(os.path.dirname(os.path.abspath(out)))
    save_grid(images, out, nrow)
    what = f"class {k}" if k is not None else ("classes in turn" if run.num_classes else "unconditional")
    print(f"{out}: {args.n} samples ({what}, seed {args.seed}) from {run.ckpt_path} (step {run.step})")
    return out


def main(argv=None) -> int:
    p = common.parser("sample", __doc__)
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--class", dest="class_", type=int, default=None, help="class k (conditional runs)")
    p.add_argument("--nrow", type=int, default=0, help="images per row (default: square, or one column per class)")
    p.add_argument("--out", default="", help="PNG path (default: RUN/generated/sample.png)")
    return common.main("sample", sample, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
