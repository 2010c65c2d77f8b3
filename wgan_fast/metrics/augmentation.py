"""Augmentation gain: does adding a run's synthetic images to a small real
labelled set make a better classifier?

For each real-subset size and seed: a class-balanced real subset (drawn per
seed), a classifier trained on it alone and one trained on it plus the
run's synthetic images (`cas.train_classifier`, the same budget, init seed
and test set), both scored on the real test split. The gain is the paired
difference; its mean over seeds gets a 95% Student-t confidence interval.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from ..atomic import atomic_path
from ..classifier import accuracy
from ..errors import UsageError, require
from .cas import DEFAULT_BUDGET, Budget, train_classifier
from .synthetic import as_run, labelled_samples, labelling_classifier, real_labelled

REAL_PER_CLASS = (10, 50, 100, 500)
SYNTHETIC_PER_CLASS = 1000
SEEDS = (0, 1, 2)


def balanced_subset(images: torch.Tensor, labels: torch.Tensor, per_class: int, seed: int):
    """`per_class` images of each class, drawn with (seed, per_class)."""
    rng = np.random.default_rng((seed, per_class))
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels.numpy() == c), per_class, replace=False)
                             for c in np.unique(labels.numpy())])
    chosen = torch.from_numpy(np.sort(chosen))
    return images[chosen], labels[chosen]


def _check(real_per_class, synthetic_per_class, seeds, labels) -> None:
    if not real_per_class or any(int(k) < 1 for k in real_per_class):
        raise UsageError(f"real_per_class: needs sizes >= 1, got {tuple(real_per_class)}")
    if int(synthetic_per_class) < 1:
        raise UsageError(f"synthetic_per_class: needs >= 1, got {synthetic_per_class}")
    if not seeds:
        raise UsageError("seeds: needs at least one seed")
    counts = torch.bincount(labels)
    present = counts[counts > 0]
    if max(real_per_class) > int(present.min()):
        c = int(torch.nonzero(counts == present.min())[0])
        raise UsageError(f"real_per_class: asks for {max(real_per_class)} real images per class, but class {c} "
                         f"of the training split has only {int(present.min())}")


def summarise(real: list[float], augmented: list[float]) -> dict:
    """Means, stds (n - 1) and the paired gain with its 95% Student-t interval (None for one seed)."""
    real, augmented = np.asarray(real), np.asarray(augmented)
    gain = augmented - real
    n = len(gain)
    ddof = 1 if n > 1 else 0
    out = dict(real_mean=real.mean(), real_std=real.std(ddof=ddof), augmented_mean=augmented.mean(),
               augmented_std=augmented.std(ddof=ddof), gain=gain.mean(), gain_ci95=None,
               real=real.tolist(), augmented=augmented.tolist())
    if n > 1:
        stats = require("scipy.stats", "eval", "the confidence interval of augmentation_gain")
        half = stats.t.ppf(0.975, n - 1) * gain.std(ddof=1) / np.sqrt(n)
        out["gain_ci95"] = [gain.mean() - half, gain.mean() + half]
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in out.items()}


def augmentation_gain(run, *, real_per_class=REAL_PER_CLASS, synthetic_per_class: int = SYNTHETIC_PER_CLASS,
                      seeds=SEEDS, budget: Budget = DEFAULT_BUDGET, n_test: int | None = None,
                      plot: str | None = None, device=None, log=None) -> dict:
    """Test accuracy of classifiers trained on real subsets alone and with the run's synthetic images.

    run: a run folder or `run_folder.Run`. Returns {"sizes": {k: summary}, ...} (see `summarise`)
    and, with plot=PATH, writes accuracy against real images per class (two curves) there.
    n_test: the first n of the real test split (default all of it).
    """
    t0, cpu0 = time.time(), time.process_time()
    run = as_run(run, device)
    classifier = None if run.num_classes else labelling_classifier(run)  # refused before any work
    real_x, real_y = real_labelled(run.cfg, "train")
    test_x, test_y = real_labelled(run.cfg, "test")
    if n_test is not None and not 1 <= n_test <= len(test_x):
        raise UsageError(f"n_test: must be in 1..{len(test_x)} (the test split), got {n_test}")
    test_x, test_y = test_x[:n_test], test_y[:n_test]
    real_per_class = tuple(int(k) for k in real_per_class)
    _check(real_per_class, synthetic_per_class, tuple(seeds), real_y)
    test_in = test_x.float() / 127.5 - 1
    acc = {k: ([], []) for k in real_per_class}
    labels_from, n_synthetic = None, 0
    for seed in seeds:
        syn_x, syn_y, labels_from = labelled_samples(run, synthetic_per_class, seed=seed, classifier=classifier)
        n_synthetic = len(syn_x)
        for k in real_per_class:
            x, y = balanced_subset(real_x, real_y, k, seed)
            for i, (tx, ty) in enumerate(((x, y), (torch.cat([x, syn_x]), torch.cat([y, syn_y])))):
                model = train_classifier(tx, ty, seed=seed, budget=budget, device=run.device)
                acc[k][i].append(accuracy(model, test_in, test_y))
            if log:
                log(f"seed {seed}, {k} real per class: real only {acc[k][0][-1]:.4f}, "
                    f"with synthetic {acc[k][1][-1]:.4f} ({time.time() - t0:.0f} s)")
    result = dict(sizes={k: summarise(*acc[k]) for k in real_per_class}, real_per_class=list(real_per_class),
                  synthetic_per_class=int(synthetic_per_class), n_synthetic=n_synthetic, labels_from=labels_from,
                  seeds=list(seeds), n_test=len(test_x), budget=dataclasses.asdict(budget), run=run.run_dir,
                  step=run.step)
    if plot:
        result["plot"] = plot_gain(result, plot)
    # CPU seconds beside the wall time: on a shared machine they say what an idle one would take
    result.update(seconds=round(time.time() - t0, 1), cpu_seconds=round(time.process_time() - cpu0, 1),
                  threads=torch.get_num_threads())
    return result


def plot_gain(result: dict, path: str) -> str:
    """Test accuracy against real images per class: real only and real + synthetic, ± std over seeds."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sizes = result["real_per_class"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("real", "real only"),
                       ("augmented", f"real + {result['synthetic_per_class']} synthetic per class")):
        means = [result["sizes"][k][f"{key}_mean"] for k in sizes]
        stds = [result["sizes"][k][f"{key}_std"] for k in sizes]
        ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("real training images per class")
    ax.set_ylabel(f"test accuracy ({result['n_test']} real test images)")
    ax.set_title(f"mean ± std over {len(result['seeds'])} seeds; labels: {result['labels_from'].split(' (')[0]}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
