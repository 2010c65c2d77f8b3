"""Measure the downstream numbers of docs/evaluation.md and docs/results.md:
CAS, augmentation gain and memorization of trained runs, the real-data
reference rows, and the nearest-neighbour search time.

    python scripts/measure_downstream.py RUN [RUN ...] [--out results.json] [--figures DIR]
    python scripts/measure_downstream.py --reference --nn-timing       # the rows no run is needed for
    python scripts/measure_downstream.py RUN --quick                   # tiny counts: checks the wiring

Per run: CAS of --n samples (n/10 per class; unconditional runs labelled by
the domain classifier) beside as many real training images, both with the
default budget, on the whole test split; augmentation_gain with its
defaults (and its figure); memorization of --n samples against the whole
training split in the domain classifier's features, the test split held
out. --reference: CAS of --n real training images with true labels (next to
the committed classifier's accuracy) and with shuffled labels, and
memorization of half the real test images (the other half held out). --nn-timing: 10,000 queries among 60,000
training images, pixels and classifier features. Prints JSON, then a
markdown table; --out writes the JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from wgan_fast import errors, metrics, run_folder
from wgan_fast.atomic import write_text
from wgan_fast.classifier import load_split, read_manifest
from wgan_fast.metrics.cas import Budget
from wgan_fast.metrics.classifier_features import ClassifierFeatures
from wgan_fast.metrics.copying import CELLS
from wgan_fast.metrics.synthetic import labelled_samples, real_labelled

QUICK = dict(n=100, real_per_class=(2, 5), synthetic_per_class=5, seeds=(0, 1), budget=Budget(steps=10),
             n_test=500, n_train=2000, nn=(500, 3000), cells=3)


def settings(args) -> dict:
    if args.quick:
        return dict(QUICK)
    return dict(n=args.n, real_per_class=(10, 50, 100, 500), synthetic_per_class=1000, seeds=(0, 1, 2),
                budget=Budget(), n_test=None, n_train=None, nn=(10000, 60000), cells=CELLS)


def _timed(fn, *a, **kw):
    t0 = time.time()
    out = fn(*a, **kw)
    return out, round(time.time() - t0, 1)


def _memorization_numbers(r: dict) -> dict:
    return {k: v for k, v in r.items() if not isinstance(v, np.ndarray) and k != "cell_z"}


def measure_run(path: str, s: dict, figures: str) -> dict:
    run = run_folder.load_run(path, "cpu")
    test_x, test_y = real_labelled(run.cfg, "test")
    test_x, test_y = test_x[:s["n_test"]], test_y[:s["n_test"]]
    train_x, train_y = real_labelled(run.cfg, "train")
    images, labels, labels_from = labelled_samples(run, max(1, s["n"] // 10), seed=0)
    cas = metrics.classification_accuracy_score(images, labels, test_x, test_y, budget=s["budget"],
                                                baseline=(train_x, train_y), labels_from=labels_from)
    name = os.path.basename(os.path.normpath(path))
    gain = metrics.augmentation_gain(run, real_per_class=s["real_per_class"], seeds=s["seeds"],
                                     synthetic_per_class=s["synthetic_per_class"], budget=s["budget"],
                                     n_test=s["n_test"], plot=os.path.join(figures, f"augmentation_{name}.png"),
                                     log=lambda line: print(line, file=sys.stderr, flush=True))
    generated, _ = run_folder.generate(run, s["n"], seed=0)
    n_train = s["n_train"] or len(train_x)
    memo = metrics.memorization(generated, train_x[:n_train], features="classifier", heldout_images=test_x,
                                dataset=run.cfg["dataset"], cells=s["cells"], grid=os.path.join(figures, f"memorization_{name}.png"))
    return dict(run=path, step=run.step, preset=run.cfg.get("preset"), conditional=bool(run.num_classes), cas=cas,
                augmentation=gain, memorization=_memorization_numbers(memo))


def measure_reference(s: dict, figures: str) -> dict:
    x, y = load_split("fashion-mnist", train=True)
    xt, yt = load_split("fashion-mnist", train=False)
    xt, yt = xt[:s["n_test"]], yt[:s["n_test"]]
    n = s["n"]
    true = metrics.classification_accuracy_score(x[:n], y[:n], xt, yt, budget=s["budget"])
    shuffled = metrics.classification_accuracy_score(x[:n], np.random.default_rng(0).permutation(y[:n]), xt, yt,
                                                     budget=s["budget"])
    n_train = s["n_train"] or len(x)
    test = load_split("fashion-mnist", train=False)[0]
    half = len(test) // 2  # one half plays the generated images, the other is held out
    memo = metrics.memorization(test[:half], x[:n_train], features="classifier", heldout_images=test[half:],
                                cells=s["cells"], grid=os.path.join(figures, "memorization_real_test.png"))
    return dict(cas_true_labels=true, cas_shuffled_labels=shuffled,
                classifier_test_accuracy=read_manifest()["fashion-mnist"]["test_accuracy"],
                memorization_real_test=_memorization_numbers(memo))


def measure_nn(n_query: int, n_ref: int) -> list[dict]:
    """Seconds of nearest_neighbours for n_query test images among n_ref training images."""
    x = torch.from_numpy(load_split("fashion-mnist", train=True)[0][:n_ref].copy()).unsqueeze(1)
    q = torch.from_numpy(load_split("fashion-mnist", train=False)[0][:n_query].copy()).unsqueeze(1)
    net = ClassifierFeatures("fashion-mnist", "cpu")
    out = []
    for name, (fq, fr) in (("pixels", (q.flatten(1).float() / 255, x.flatten(1).float() / 255)),
                           ("classifier", (torch.from_numpy(net(q)), torch.from_numpy(net(x))))):
        for dtype in (torch.float32, torch.float64):
            _, seconds = _timed(metrics.nearest_neighbours, fq, fr, 1, search_dtype=dtype)
            out.append(dict(features=name, dim=fq.shape[1], queries=n_query, refs=n_ref,
                            search_dtype=str(dtype).split(".")[1], seconds=seconds))
    return out


def markdown(result: dict) -> str:
    lines = []
    for r in result.get("runs", []):
        c, m, a = r["cas"], r["memorization"], r["augmentation"]
        lines += [f"### {r['run']} (step {r['step']}, {'conditional' if r['conditional'] else 'unconditional'})", "",
                  "| metric | value | counts |", "|---|---:|---|",
                  f"| CAS | {c['accuracy']:.4f} | {c['n_train']} generated (labels: {c['labels_from']}), "
                  f"{c['n_test']} real test |",
                  f"| real baseline, same size and budget | {c['baseline_accuracy']:.4f} | {c['n_train']} real |",
                  f"| authenticity | {m['authenticity']:.4f} | {m['n_generated']} generated vs {m['n_train']} "
                  f"train (held-out real: {m['heldout_authenticity']:.4f}) |",
                  f"| copying z (C_T) | {m['copying_z']:+.3f} | {m['cells_used']} of {m['cells']} cells, "
                  f"{m['n_heldout']} held-out |", "",
                  "| real per class | real only | real + synthetic | gain | 95% CI |", "|---:|---:|---:|---:|---|"]
        for k, v in a["sizes"].items():
            ci = "—" if v["gain_ci95"] is None else f"[{v['gain_ci95'][0]:+.4f}, {v['gain_ci95'][1]:+.4f}]"
            lines.append(f"| {k} | {v['real_mean']:.4f} ± {v['real_std']:.4f} | {v['augmented_mean']:.4f} ± "
                         f"{v['augmented_std']:.4f} | {v['gain']:+.4f} | {ci} |")
        lines += ["", f"augmentation_gain: {a['seconds']} s, {len(a['seeds'])} seeds, "
                      f"{a['synthetic_per_class']} synthetic per class, budget {a['budget']}", ""]
    if "reference" in result:
        ref = result["reference"]
        lines += ["| reference | value |", "|---|---:|",
                  f"| CAS, {ref['cas_true_labels']['n_train']} real training images, true labels | "
                  f"{ref['cas_true_labels']['accuracy']:.4f} |",
                  f"| the same, shuffled labels | {ref['cas_shuffled_labels']['accuracy']:.4f} |",
                  f"| the committed classifier (all 60,000, 8 epochs) | {ref['classifier_test_accuracy']:.4f} |",
                  f"| authenticity of real test images | {ref['memorization_real_test']['authenticity']:.4f} |",
                  f"| copying z of real test images | {ref['memorization_real_test']['copying_z']:+.3f} |", ""]
    for t in result.get("nn_timing", []):
        lines.append(f"nearest neighbours, {t['queries']} among {t['refs']}, {t['features']} ({t['dim']}-d, "
                     f"{t['search_dtype']} search): {t['seconds']} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="run folders")
    p.add_argument("--n", type=int, default=10000, help="generated samples for CAS and memorization")
    p.add_argument("--reference", action="store_true", help="the real-data rows")
    p.add_argument("--nn-timing", action="store_true", help="time the nearest-neighbour search")
    p.add_argument("--quick", action="store_true", help="tiny counts and budget (checks the wiring)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared CPU)")
    p.add_argument("--out", default=None, help="JSON file to write")
    p.add_argument("--figures", default="docs/images", help="folder for the figures")
    args = p.parse_args(argv)
    return errors.run("measure_downstream", measure, args)


def measure(args) -> int:
    torch.set_num_threads(args.threads)
    os.makedirs(args.figures, exist_ok=True)
    s = settings(args)
    result = dict(date=datetime.date.today().isoformat(), machine=platform.processor() or platform.machine(),
                  cpus=os.cpu_count(), torch=torch.__version__, threads=args.threads,
                  load_average_start=os.getloadavg(), settings={k: dataclasses.asdict(v) if k == "budget" else v
                                                                  for k, v in s.items()})
    t0 = time.time()
    result["runs"] = [measure_run(r, s, args.figures) for r in args.runs]
    if args.reference:
        result["reference"] = measure_reference(s, args.figures)
    if args.nn_timing:
        result["nn_timing"] = measure_nn(*s["nn"])
    result.update(seconds=round(time.time() - t0, 1), load_average_end=os.getloadavg())
    text = json.dumps(result, indent=2, default=float)
    if args.out:
        write_text(args.out, text)
    print(text)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
