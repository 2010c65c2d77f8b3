"""Rank images by a trained critic's score: the lowest look least like the
training data.

    wgan-fast anomaly --run runs/x --images DIR [--reference DIR] [--out scores.csv] [--top 20]

Images (any size; class sub-folders or flat) are read like the trainer reads
an image folder: centre square crop, resized to the run's resolution and
channel count. The anomaly score is -D(x); for a conditional critic, minus
its mean over the classes, -mean_y D(x, y) (measured in docs/generation.md:
more robust than the class it rates highest). With --reference DIR
(images known to be normal) the ROC-AUC of the score separating --images
from them is printed: 1.0 puts every --images image above every reference
one, 0.5 is chance.
"""
from __future__ import annotations

import csv
import sys

import numpy as np
import torch

from ..data import formats
from ..errors import require
from . import common


def read_images(folder: str, run) -> tuple[torch.Tensor, list[str]]:
    """([-1, 1] images at the run's resolution and channels, their paths) of an image folder."""
    paths, _, _ = formats.list_images(folder)
    images, _, bad = formats.decode_folder(paths, None, run.cfg["resolution"], run.cfg["channels"])
    skipped = set(bad)
    paths = [p for p in paths if p not in skipped]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return x, paths


@torch.no_grad()
def anomaly_scores(run, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """-D(x) of [-1, 1] images (N, C, H, W): higher = more anomalous."""
    D, out = run.D, []
    for chunk in images.split(batch_size):
        x = chunk.to(run.device)
        if run.num_classes:
            per_class = [D(x, torch.full((len(x),), k, device=run.device)) for k in range(run.num_classes)]
            score = torch.stack(per_class, 1).mean(1)
        else:
            score = D(x)
        out.append(-score.float().cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def _sklearn_metrics():
    return require("sklearn.metrics", "eval", "the ROC-AUC of anomaly --reference")


def roc_auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """P(an anomalous image scores above a normal one), ties counting half."""
    y = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    return float(_sklearn_metrics().roc_auc_score(y, np.r_[normal, anomalous]))


def anomaly(args) -> dict:
    if args.reference:
        _sklearn_metrics()  # before scoring anything
    run = common.open_run(args)
    images, paths = read_images(args.images, run)
    scores = anomaly_scores(run, images)
    order = np.argsort(-scores, kind="stable")
    result = {"n": len(paths), "ranked": [(paths[i], float(scores[i])) for i in order]}
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["rank", "path", "anomaly_score"])
            for r, (p, s) in enumerate(result["ranked"], 1):
                w.writerow([r, p, f"{s:.6g}"])
    print(f"{len(paths)} images of {args.images} scored by the critic of {run.ckpt_path} (step {run.step}); "
          f"most anomalous first (score = -D(x)):")
    for p, s in result["ranked"][: args.top]:
        print(f"{s:12.4f}  {p}")
    if args.reference:
        ref_images, _ = read_images(args.reference, run)
        ref = anomaly_scores(run, ref_images)
        result["roc_auc"] = roc_auc(ref, scores)
        print(f"ROC-AUC, {len(paths)} --images against {len(ref)} --reference images: {result['roc_auc']:.4f}")
    if args.out:
        print(f"all scores: {args.out}")
    return result


def main(argv=None) -> int:
    p = common.parser("anomaly", __doc__, generates=False)
    p.add_argument("--images", required=True, help="folder of images to rank")
    p.add_argument("--reference", default="", help="folder of normal images: print the ROC-AUC against them")
    p.add_argument("--out", default="", help="CSV of every image's rank, path and score")
    p.add_argument("--top", type=int, default=20, help="print the N most anomalous")
    return common.main("anomaly", anomaly, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
