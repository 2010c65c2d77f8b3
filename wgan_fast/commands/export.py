"""Export a synthetic dataset from a trained run (for augmentation).

    wgan-fast export --run runs/x --n 10000 [--per-class] [--out DIR | --out file.npz]

A PNG folder with one sub-folder per class (00, 01, ...: the layout
`--dataset folder` trains on), or an .npz of uint8 `images` (N, H, W[, 3])
and int64 `labels`. Labels are the generator's (conditional runs) or the
domain classifier's (unconditional runs of a dataset that has one; without
one, no labels and a flat folder). --per-class makes exactly n / classes of
each: conditional runs ask for them, unconditional runs draw until every
class is full. `export.json` (folder) or the `info` entry (.npz) records
the run, checkpoint, seed, counts and, for conditional runs, how often the
classifier agrees with the generator's label. The dataset is written under
a temporary name and renamed when whole: an interrupted export leaves
nothing under the final name.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

from .. import classifier as clf
from .. import run_folder
from ..errors import UsageError
from ..runlog import to_uint8
from . import common


def _quota(n: int, classes: int) -> int:
    if n % classes:
        raise UsageError(f"--per-class: --n {n} is not a multiple of the {classes} classes")
    return n // classes


def synthesize(run, n: int, per_class: bool, classifier=None, seed: int = 0, ema: bool = True,
               batch_size: int = 1000, max_draws: int = 0):
    """(uint8 images (n, C, H, W), labels (n,) or None, info dict).

    Unconditional runs with --per-class keep drawing batches until each class
    (by the classifier) holds n / 10, at most `max_draws` samples (default 50 n);
    after 2 n draws they stop as soon as a class's rate says it would not fill
    within that limit.
    """
    gen = torch.Generator().manual_seed(seed)
    info = {}
    if run.num_classes:
        labels = (torch.arange(n) // _quota(n, run.num_classes) if per_class
                  else torch.randint(0, run.num_classes, (n,), generator=gen))
        z = torch.randn(n, run.z_dim, generator=gen)
        chunks, agree = [], 0
        for i in range(0, n, batch_size):
            x, _ = run_folder.generate(run, len(z[i:i + batch_size]), labels=labels[i:i + batch_size],
                                       z=z[i:i + batch_size], ema=ema)
            if classifier is not None:
                agree += int((clf.predict(classifier, x)[0].argmax(1) == labels[i:i + batch_size]).sum())
            chunks.append(to_uint8(x))
        info["label_source"] = "generator (conditional)"
        if classifier is not None:
            info["classifier_agreement"] = agree / max(n, 1)
        return torch.cat(chunks), labels, info
    if classifier is None:
        if per_class:
            raise UsageError(f"--per-class needs labels: {run.run_dir} is unconditional and there is no domain "
                             f"classifier for its dataset {run.cfg['dataset']!r}")
        z = torch.randn(n, run.z_dim, generator=gen)
        x = torch.cat([to_uint8(run_folder.generate(run, len(c), z=c, ema=ema)[0]) for c in z.split(batch_size)])
        return x, None, {"label_source": "none"}
    quota = _quota(n, 10) if per_class else n
    max_draws = max_draws or 50 * n
    kept_x, kept_y, counts, drawn = [], [], torch.zeros(10, dtype=torch.long), 0
    while int(counts.sum()) < n:
        # at each class's rate so far, how many draws would fill it? (stop early when past the limit)
        expected = int((drawn * quota / counts.clamp(min=1)).max()) if per_class and drawn >= 2 * n else 0
        if drawn >= max_draws or expected > max_draws:
            raise UsageError(f"--per-class: after {drawn} samples some classes are still short of {quota} "
                             f"(counts by class: {counts.tolist()}; at their rate so far they need ~{expected} "
                             f"samples, the limit is {max_draws}): the generator rarely makes them")
        x, _ = run_folder.generate(run, batch_size, z=torch.randn(batch_size, run.z_dim, generator=gen), ema=ema)
        drawn += batch_size
        pred = clf.predict(classifier, x)[0].argmax(1)
        if per_class:  # the first (quota - count) of each class
            rank = torch.zeros_like(pred)
            for k in range(10):
                rank[pred == k] = torch.arange(int((pred == k).sum()))
            take = rank < (quota - counts)[pred]
        else:
            take = torch.arange(batch_size) < n - int(counts.sum())
        counts += torch.bincount(pred[take], minlength=10)
        kept_x.append(to_uint8(x[take]))
        kept_y.append(pred[take])
    x, y = torch.cat(kept_x), torch.cat(kept_y)
    order = torch.argsort(y, stable=True) if per_class else torch.arange(n)
    return x[order], y[order], {"label_source": "domain classifier", "samples_drawn": drawn}


def _write_folder(path: str, images: torch.Tensor, labels, classes: int) -> None:
    from PIL import Image  # noqa: PLC0415

    width = len(str(max(classes - 1, 0)))
    arrays = images.permute(0, 2, 3, 1).numpy()
    for i, arr in enumerate(arrays):
        sub = path if labels is None else os.path.join(path, f"{int(labels[i]):0{width}d}")
        if i == 0 or labels is not None:
            os.makedirs(sub, exist_ok=True)
        Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(os.path.join(sub, f"{i:06d}.png"))


def export(args) -> str:
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    run = common.open_run(args)
    npz = args.out.endswith(".npz")
    out = os.path.abspath(args.out or os.path.join(run.run_dir, "generated", "export"))
    if os.path.exists(out) and not args.overwrite:
        raise UsageError(f"{out} exists: pass --overwrite to replace it, or choose another --out")
    classifier = common.domain_classifier(run, required=False) if not args.no_classifier else None
    images, labels, info = synthesize(run, args.n, args.per_class, classifier, args.seed, not args.no_ema)
    classes = run.num_classes or 10
    info.update(run=os.path.abspath(run.run_dir), ckpt=os.path.abspath(run.ckpt_path), step=run.step, n=args.n,
                seed=args.seed, ema=not args.no_ema, per_class=args.per_class,
                counts=(torch.bincount(labels, minlength=classes).tolist() if labels is not None else None))
    parent = common.out_dir(os.path.dirname(out))
    if npz:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=parent)
        os.close(fd)
        try:
            arr = images.permute(0, 2, 3, 1).numpy()
            with open(tmp, "wb") as f:
                np.savez(f, images=arr[..., 0] if arr.shape[-1] == 1 else arr, info=np.array(json.dumps(info)),
                         **({"labels": labels.numpy().astype(np.int64)} if labels is not None else {}))
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=parent)
        try:
            _write_folder(tmp, images, labels, classes)
            with open(os.path.join(tmp, "export.json"), "w") as f:
                json.dump(info, f, indent=1)
            old = None
            if os.path.exists(out):  # --overwrite: move the old one aside, put the new one in place, then delete
                old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".old", dir=parent)
                os.replace(out, os.path.join(old, "x"))
            os.replace(tmp, out)
            if old:
                shutil.rmtree(old)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
    agree = f", classifier agrees with the label on {info['classifier_agreement']:.1%}" \
        if "classifier_agreement" in info else ""
    print(f"{out}: {args.n} images, labels from {info['label_source']}"
          + (f", per class {info['counts']}" if info["counts"] else "") + agree
          + f" (from {run.ckpt_path}, step {run.step})")
    return out


def main(argv=None) -> int:
    p = common.parser("export", __doc__)
    p.add_argument("--n", type=int, default=10000, help="number of images")
    p.add_argument("--per-class", action="store_true", help="exactly n / classes of every class")
    p.add_argument("--out", default="", help="a folder, or a file ending in .npz (default: RUN/generated/export)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--no-classifier", action="store_true", help="unconditional runs: no labels, a flat folder")
    return common.main("export", export, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
