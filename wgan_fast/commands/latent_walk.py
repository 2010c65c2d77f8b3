"""Walk the latent space of a trained run: linear and spherical interpolation.

    wgan-fast latent-walk --run runs/x [--steps 10] [--rows 8] [--class k] [--out-dir DIR]

Writes lerp.png and slerp.png (one row per path from z0 to z1, --steps
columns) and lerp.gif and slerp.gif (frame t shows every path at t, there and
back). Conditional runs hold the label fixed along each path: one path per
class, or --rows paths of class k with --class k.
"""
from __future__ import annotations

import math
import os
import sys

import torch

from .. import run_folder
from ..errors import UsageError
from ..runlog import grid_image, save_gif, save_grid
from . import common


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points (..., len(t), D) on the straight lines from a to b (..., D)."""
    t = t.view(-1, 1)
    return a.unsqueeze(-2) * (1 - t) + b.unsqueeze(-2) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake): along the arc between a and b, the
    path a Gaussian latent's norm ~ sqrt(D) stays near, where lerp's midpoint
    has a norm ~ sqrt(D/2) the generator rarely saw. Falls back to lerp for
    (anti)parallel endpoints."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1)
    omega = torch.acos(cos).unsqueeze(-1).unsqueeze(-1)  # (..., 1, 1)
    t = t.view(-1, 1)
    sin = torch.sin(omega)
    ok = sin.abs() > 1e-6
    safe = torch.where(ok, sin, torch.ones_like(sin))
    wa = torch.where(ok, torch.sin((1 - t) * omega) / safe, 1 - t)
    wb = torch.where(ok, torch.sin(t * omega) / safe, t)
    return wa * a.unsqueeze(-2) + wb * b.unsqueeze(-2)


def latent_walk(args) -> list[str]:
    if args.steps < 2:
        raise UsageError(f"--steps must be at least 2 (the two endpoints), got {args.steps}")
    run = common.open_run(args)
    k = common.class_arg(run, args.class_)
    rows = args.rows or 8
    labels = None
    if run.num_classes:
        if k is None and not args.rows:
            rows = run.num_classes
        labels = torch.full((rows,), k) if k is not None else torch.arange(rows) % run.num_classes
    gen = torch.Generator().manual_seed(args.seed)
    z0, z1 = torch.randn(2, rows, run.z_dim, generator=gen)
    t = torch.linspace(0, 1, args.steps)
    out = common.out_dir(args.out_dir or os.path.join(run.run_dir, "generated", "latent_walk"))
    written = []
    for name, path_fn in (("lerp", lerp), ("slerp", slerp)):
        z = path_fn(z0, z1, t).reshape(rows * args.steps, run.z_dim)
        y = labels.repeat_interleave(args.steps) if labels is not None else None
        images, _ = run_folder.generate(run, len(z), labels=y, z=z, ema=not args.no_ema)
        written.append(save_grid(images, os.path.join(out, f"{name}.png"), nrow=args.steps))
        by_t = images.view(rows, args.steps, *images.shape[1:]).transpose(0, 1)  # (steps, rows, C, H, W)
        frames = [grid_image(by_t[i], nrow=math.ceil(math.sqrt(rows))) for i in range(args.steps)]
        written.append(save_gif(frames + frames[-2:0:-1], os.path.join(out, f"{name}.gif"), args.frame_ms))
    print(f"{out}: lerp and slerp, {rows} paths x {args.steps} steps (seed {args.seed}), PNG grids and GIFs, "
          f"from {run.ckpt_path} (step {run.step})")
    return written


def main(argv=None) -> int:
    p = common.parser("latent-walk", __doc__)
    p.add_argument("--steps", type=int, default=10, help="points per path, endpoints included")
    p.add_argument("--rows", type=int, default=0, help="paths (default 8; conditional: one per class)")
    p.add_argument("--class", dest="class_", type=int, default=None, help="every path in class k (conditional)")
    p.add_argument("--frame-ms", type=int, default=120, help="GIF frame duration")
    p.add_argument("--out-dir", default="", help="default: RUN/generated/latent_walk")
    return common.main("latent-walk", latent_walk, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
