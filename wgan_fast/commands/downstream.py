"""The downstream metrics of `wgan-fast evaluate` (cas, augmentation,
memorization): what a run's synthetic data is worth to a classifier, and
whether its generator copies training images. The metrics themselves are in
wgan_fast.metrics (cas.py, augmentation.py, memorization.py)."""
from __future__ import annotations

import os

import numpy as np
import torch

from .. import run_folder
from ..classifier import DATASETS as CLASSIFIER_DATASETS
from ..errors import UsageError
from ..metrics.augmentation import augmentation_gain
from ..metrics.cas import DEFAULT_BUDGET, Budget, classification_accuracy_score
from ..metrics.copying import FEATURES as MEMORIZATION_FEATURES, memorization
from ..metrics.synthetic import labelled_samples, real_labelled

DOWNSTREAM = ("cas", "augmentation", "memorization")


def add_arguments(p) -> None:
    p.add_argument("--real-per-class", default="10,50,100,500",
                   help="augmentation: the real-subset sizes (images per class), comma-separated")
    p.add_argument("--synthetic-per-class", type=int, default=1000,
                   help="augmentation: synthetic images per class added to each real subset")
    p.add_argument("--seeds", default="0,1,2", help="augmentation: seeds (real subsets, samples, classifier init)")
    p.add_argument("--cas-steps", type=int, default=DEFAULT_BUDGET.steps,
                   help="cas, augmentation: classifier training steps (each training's budget)")
    p.add_argument("--cas-batch-size", type=int, default=DEFAULT_BUDGET.batch_size,
                   help="cas, augmentation: images per classifier training step")
    p.add_argument("--n-test", type=int, default=None,
                   help="cas, augmentation: real test images (default: the whole test split)")
    p.add_argument("--memorization-features", default="auto", choices=("auto",) + MEMORIZATION_FEATURES,
                   help="memorization: feature space (auto: the domain classifier where the dataset has one, "
                        "else inception)")
    p.add_argument("--n-train", type=int, default=None,
                   help="memorization: training images searched (default: the whole training split)")


def int_list(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise UsageError(f"{name}: give at least one value")
    return values


def budget(args) -> Budget:
    for name, value in (("--cas-steps", args.cas_steps), ("--cas-batch-size", args.cas_batch_size)):
        if value < 1:
            raise UsageError(f"{name}: must be >= 1, got {value}")
    return Budget(steps=args.cas_steps, batch_size=args.cas_batch_size)


def _first(x: torch.Tensor, y: torch.Tensor, n: int | None, name: str):
    if n is not None and not 1 <= n <= len(x):
        raise UsageError(f"{name}: must be in 1..{len(x)}, got {n}")
    return (x, y) if n is None else (x[:n], y[:n])


def cas(run: run_folder.Run, n: int, args) -> dict:
    """CAS of n samples (n/10 per class) beside n real training images, on the real test split."""
    images, labels, labels_from = labelled_samples(run, max(1, n // 10), seed=args.seed)
    test = _first(*real_labelled(run.cfg, "test"), args.n_test, "--n-test")
    return classification_accuracy_score(images, labels, *test, seed=args.seed, labels_from=labels_from,
                                         baseline=real_labelled(run.cfg, "train"), budget=budget(args),
                                         device=run.device)


def memorization_of_run(run: run_folder.Run, n: int, args, grid: str) -> dict:
    features = args.memorization_features
    if features == "auto":
        features = "classifier" if run.cfg["dataset"] in CLASSIFIER_DATASETS else "inception"
    images, _ = run_folder.generate(run, n, seed=args.seed, ema=not args.no_ema)
    train, _ = _first(*real_labelled(run.cfg, "train"), args.n_train, "--n-train")
    heldout, _ = real_labelled(run.cfg, "test")
    result = memorization(images, train, features=features, heldout_images=heldout, dataset=run.cfg["dataset"],
                          grid=grid, seed=args.seed, device=run.device, batch_size=args.batch_size)
    return {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}  # numbers only in the report


def run_metrics(run: run_folder.Run, names, n: int, args, prefix: str) -> dict:
    """{name: result} of the downstream metrics asked for; figures to prefix + _<metric>.png."""
    out = {}
    if "cas" in names:
        out["cas"] = cas(run, n, args)
    if "augmentation" in names:
        out["augmentation"] = augmentation_gain(
            run, real_per_class=int_list(args.real_per_class, "--real-per-class"),
            synthetic_per_class=args.synthetic_per_class, seeds=int_list(args.seeds, "--seeds"),
            budget=budget(args), n_test=args.n_test, plot=prefix + "_augmentation.png", log=print)
    if "memorization" in names:
        out["memorization"] = memorization_of_run(run, n, args, prefix + "_memorization_pairs.png")
    return out


def _ci(summary: dict) -> str:
    ci = summary["gain_ci95"]
    return f"95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "one seed: no interval"


def rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(metric, value, samples, note) rows of the downstream metrics in `result`."""
    out = []
    if "cas" in result:
        r = result["cas"]
        samples = f"{r['n_train']} generated, {r['n_test']} real test"
        out.append(("CAS", f"{r['accuracy']:.4f}", samples, f"labels: {r['labels_from']}; "
                    f"{r['budget']['steps']} steps of {r['budget']['batch_size']}"))
        if "baseline_accuracy" in r:
            out.append(("CAS real baseline", f"{r['baseline_accuracy']:.4f}", f"{r['n_train']} real train, "
                        f"{r['n_test']} real test", "the same budget"))
    if "augmentation" in result:
        r = result["augmentation"]
        for k, s in r["sizes"].items():
            out.append((f"augmentation gain @{k}/class", f"{s['gain']:+.4f}",
                        f"{k}/class real + {r['synthetic_per_class']}/class synthetic, {r['n_test']} test",
                        f"real only {s['real_mean']:.4f} ± {s['real_std']:.4f}, with synthetic "
                        f"{s['augmented_mean']:.4f} ± {s['augmented_std']:.4f}; {_ci(s)}; {len(r['seeds'])} seeds"))
    if "memorization" in result:
        r = result["memorization"]
        samples = f"{r['n_generated']} generated vs {r['n_train']} train, {r['n_heldout']} held-out"
        out.append(("authenticity", f"{r['authenticity']:.4f}", samples,
                    f"{r['features']} features; held-out real images score {r['heldout_authenticity']:.4f}"))
        out.append(("copying z (C_T)", f"{r['copying_z']:+.3f}", samples,
                    f"{r['cells_used']} of {r['cells']} k-means cells; ~0 no copying, << 0 copying"))
    return out


def figure_prefix(out_json: str) -> str:
    return os.path.splitext(out_json)[0]
