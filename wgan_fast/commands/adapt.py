"""Latent-space adaptation: sample from the latents that made good images.

    wgan-fast adapt --run runs/x [--candidates 10000] [--keep 0.5] [--features classifier|inception]

1. Draw candidate latents z ~ N(0, I) and generate from them.
2. The domain classifier labels each image (a conditional run's candidate is
   kept only where the classifier agrees with the label it was made with).
3. Score each by its best cosine similarity to the real training images of
   its class (pixels as the generator makes them, at the run's resolution;
   in [0, 1], so the shared ink counts, not the background).
4. Per class, keep the latents scoring at or above the class's (1 - keep)
   quantile, and fit N(mu_y, diag sigma_y^2) to them (classes with fewer
   than --min-kept are left out: a Gaussian fitted to a handful of latents
   would give a share of the samples to near-copies of them).
5. Sample: a class y in the real data's class proportions, z ~ N(mu_y, sigma_y^2).

FID, precision and recall (k = 3) against the real test set are measured
before (z ~ N(0, I)) and after by wgan_fast.metrics.Evaluator, in the domain
classifier's 128-d features by default (cheap on a CPU; not comparable with
Inception FIDs) or Inception's with --features inception; conditional runs
add the classifier's accuracy on the labels. Writes RUN/generated/adapt/:
adapt.json (every number with its features and sample counts), latents.pt
(mu, sigma, classes, prior) and before.png / after.png grids.
"""
from __future__ import annotations

import json
import os
import sys

import torch

from .. import classifier as clf
from .. import data, metrics, run_folder
from ..atomic import write_text
from ..checkpoint import atomic_save
from ..errors import UsageError
from ..runlog import save_grid
from . import common


def best_cosine(fake: torch.Tensor, real: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """For each row of `fake` (N, D), its highest cosine similarity to a row of `real` (M, D)."""
    real = torch.nn.functional.normalize(real, dim=1)
    fake = torch.nn.functional.normalize(fake, dim=1)
    return torch.cat([(chunk @ real.T).amax(1) for chunk in fake.split(batch_size)])


def score_candidates(run, classifier, real_pixels, real_labels, n: int, gen: torch.Generator, ema: bool = True):
    """Steps 1-3: (latents (n, D), classes (n,), valid (n,): the class is usable, scores (n,)).

    `real_pixels` (M, C*H*W) in [0, 1] at the run's resolution, `real_labels` (M,).
    """
    z = torch.randn(n, run.z_dim, generator=gen)
    asked = torch.randint(0, run.num_classes, (n,), generator=gen) if run.num_classes else None
    images, _ = run_folder.generate(run, n, labels=asked, z=z, ema=ema)
    classes = clf.predict(classifier, images)[0].argmax(1)
    valid = (classes == asked) if asked is not None else torch.ones_like(classes, dtype=torch.bool)
    fake_pixels = (images.flatten(1) + 1) / 2
    scores = torch.full((n,), -2.0)  # below any cosine: never kept
    for k in classes[valid].unique().tolist():
        mine = valid & (classes == k)
        scores[mine] = best_cosine(fake_pixels[mine], real_pixels[real_labels == k])
    return z, classes, valid, scores


def fit_latents(z: torch.Tensor, classes: torch.Tensor, scores: torch.Tensor, keep: float, min_kept: int = 2):
    """Per class: the (1 - keep) score quantile, and mean and std of the latents at or above it.

    Returns {class: dict(threshold, mu, sigma, candidates, kept)} for every class
    with at least `min_kept` kept latents.
    """
    fits = {}
    for k in classes.unique().tolist():
        mine = classes == k
        threshold = torch.quantile(scores[mine], 1 - keep).item()
        kept = z[mine & (scores >= threshold)]
        if len(kept) >= min_kept:
            fits[k] = dict(threshold=threshold, mu=kept.mean(0), sigma=kept.std(0), candidates=int(mine.sum()),
                           kept=len(kept))
    return fits


def sample_latents(mu: torch.Tensor, sigma: torch.Tensor, prior: torch.Tensor, n: int, gen: torch.Generator):
    """(z (n, D), index into mu (n,)) drawn from the mixture sum_y prior_y N(mu_y, diag sigma_y^2)."""
    which = torch.multinomial(prior, n, replacement=True, generator=gen)
    return mu[which] + sigma[which] * torch.randn(n, mu.shape[1], generator=gen), which


def _check_args(args) -> None:
    if not 0 < args.keep <= 1:
        raise UsageError(f"--keep must be in (0, 1], got {args.keep}")
    if args.min_kept < 2:
        raise UsageError(f"--min-kept must be at least 2 (a standard deviation needs two), got {args.min_kept}")
    for name in ("candidates", "n_eval", "n_real"):
        if getattr(args, name) < 10:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 10, got {getattr(args, name)}")


def adapt(args) -> dict:
    _check_args(args)
    run = common.open_run(args)
    classifier = common.domain_classifier(run, required=True)
    cfg, ema = dict(run.cfg, data_dir=args.data_dir or run.cfg["data_dir"]), not args.no_ema
    measured = ("fid", "pr") + (("class-acc",) if run.num_classes else ())
    evaluator = metrics.Evaluator(cfg, run.device, metrics=measured, n_real=args.n_real, split="test",
                                  features=args.features)
    x_train, y_train = data.load_arrays(cfg)  # the training images, resized as the trainer resizes them
    real_pixels = data.to_resolution(x_train, cfg["resolution"], cfg["channels"]).flatten(1) / 255
    y_train = torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(args.seed)

    z, classes, valid, scores = score_candidates(run, classifier, real_pixels, y_train, args.candidates, gen, ema)
    fits = fit_latents(z[valid], classes[valid], scores[valid], args.keep, args.min_kept)  # step 4
    if not fits:
        raise UsageError(f"no class kept {args.min_kept} or more latents of {args.candidates} candidates: "
                         "raise --candidates")
    fitted = sorted(fits)
    mu = torch.stack([fits[k]["mu"] for k in fitted])
    sigma = torch.stack([fits[k]["sigma"] for k in fitted])
    prior = torch.bincount(y_train, minlength=10)[fitted].double()
    prior = (prior / prior.sum()).float()

    # step 5, and the measurements: before (N(0, I)) and after (the fitted mixture)
    before = run_folder.generate(run, args.n_eval, seed=args.seed + 1, ema=ema)
    z_after, which = sample_latents(mu, sigma, prior, args.n_eval, gen)
    after = run_folder.generate(run, args.n_eval, labels=torch.tensor(fitted)[which] if run.num_classes else None,
                                z=z_after, ema=ema)
    report = dict(run=os.path.abspath(run.run_dir), ckpt=os.path.abspath(run.ckpt_path), step=run.step,
                  features=args.features, split="test", n_candidates=args.candidates, keep=args.keep,
                  min_kept=args.min_kept, seed=args.seed, ema=ema, before=evaluator.score(before, args.n_eval),
                  after=evaluator.score(after, args.n_eval), classes_fitted=fitted,
                  classes_missing=[k for k in range(10) if k not in fits],
                  per_class={k: dict(candidates=fits[k]["candidates"], kept=fits[k]["kept"],
                                     threshold=round(fits[k]["threshold"], 4)) for k in fitted})
    if run.num_classes:
        report["candidates_agreeing_with_label"] = float(valid.float().mean())
    out = common.out_dir(args.out_dir or os.path.join(run.run_dir, "generated", "adapt"))
    atomic_save(dict(mu=mu, sigma=sigma, classes=torch.tensor(fitted), prior=prior,
                     conditional=bool(run.num_classes)), os.path.join(out, "latents.pt"))
    save_grid(before[0][:64], os.path.join(out, "before.png"), nrow=8)
    save_grid(after[0][:64], os.path.join(out, "after.png"), nrow=8)
    write_text(os.path.join(out, "adapt.json"), json.dumps(report, indent=1))
    print(f"latent-space adaptation of {run.ckpt_path} (step {run.step}): {args.candidates} candidates, "
          f"top {args.keep:.0%} per class kept, {len(fitted)} classes fitted"
          + (f" (missing: {report['classes_missing']})" if report["classes_missing"] else ""))
    print(f"{args.features} features, {report['before']['n_real']} real test images vs {args.n_eval} generated:")
    for when in ("before", "after"):
        r = report[when]
        print(f"  {when:6s}  FID {r['fid']:8.3f}  precision {r['precision']:.3f}  recall {r['recall']:.3f}"
              + (f"  class accuracy {r['class_acc']:.3f}" if "class_acc" in r else ""))
    print(f"written to {out}")
    return report


def main(argv=None) -> int:
    p = common.parser("adapt", __doc__)
    p.add_argument("--candidates", type=int, default=10000, help="latents drawn and scored")
    p.add_argument("--keep", type=float, default=0.5, help="share of each class's candidates kept (top scores)")
    p.add_argument("--min-kept", type=int, default=10,
                   help="classes with fewer kept latents are left out (too few to fit a Gaussian to)")
    p.add_argument("--n-eval", type=int, default=10000, help="generated samples per measurement")
    p.add_argument("--n-real", type=int, default=10000, help="real test images for the measurements")
    p.add_argument("--features", choices=("classifier", "inception"), default="classifier")
    p.add_argument("--data-dir", default="", help="the dataset's IDX files (default: the run's data_dir, "
                                                  "then the usual places)")
    p.add_argument("--out-dir", default="", help="default: RUN/generated/adapt")
    return common.main("adapt", adapt, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
