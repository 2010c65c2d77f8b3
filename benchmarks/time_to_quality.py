"""Time to quality: training wall time until FID-2k first falls below 100 and
below 70, for wgan_fast's default preset, the same recipe as plain eager
PyTorch, and the stock WGAN-GP recipe (plain_wgan_gp.py), in one run on one
machine.

Each recipe trains in its own process for --minutes of training time; every
--eval-every generator steps its EMA generator (stock: its generator) is scored
by the same Evaluator: FID of --n samples against --n real Fashion-MNIST test
images (Inception-2015-12-05 features; --features classifier for the cheap
domain-classifier features). Evaluation time is excluded from the clock.

    python benchmarks/time_to_quality.py --minutes 10 --eval-every 250 --out results/ttq.json
    python benchmarks/time_to_quality.py --recipe plain ...        # one recipe, this process

--jobs 3 runs the recipes side by side (each with cores / jobs threads); the
default runs them one after the other with every core.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

RECIPES = ("wgan_fast", "plain", "stock")
THRESHOLDS = (100.0, 70.0)
HERE = os.path.dirname(os.path.abspath(__file__))


class TrainClock:
    """Training seconds: wall time since start minus the time spent evaluating."""

    def __init__(self):
        self.t0, self.excluded = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.excluded

    def timed_out(self, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.excluded += time.perf_counter() - t
        return wrapper


def fashion_cfg(args, **kw) -> dict:
    """The default preset with the benchmark's evaluation settings (the plain recipes read its data and
    evaluation keys only)."""
    from wgan_fast import config  # noqa: PLC0415

    base = dict(preset="fashion-wgan-gp", eval_every=str(args.eval_every), eval_n=str(args.n),
                eval_n_real=str(args.n), eval_features=args.features, cpu_max_minutes="0",
                tensorboard="false", out_dir=args.work, name="wgan_fast", overwrite="true", device="cpu",
                sample_every="1000000", ckpt_every="1000000", log_every=str(args.eval_every))
    return config.resolve(dict(base, **kw))


def run_wgan_fast(args, record) -> None:
    from wgan_fast import train  # noqa: PLC0415
    from wgan_fast.train import loop  # noqa: PLC0415

    clock = TrainClock()
    evaluate = loop.evaluate
    loop.evaluate = clock.timed_out(evaluate)  # the trainer's in-training evaluation: off the clock

    def on_event(event):
        if event.kind == "eval":
            done = record(event.step, clock.seconds(), event.values["eval_fid"])
            return done or clock.seconds() >= args.minutes * 60
        return False

    try:
        train.train(fashion_cfg(args, steps=str(args.steps or 1_000_000)), callbacks=(on_event,))
    finally:
        loop.evaluate = evaluate


def run_plain(args, record, recipe: str) -> None:
    from plain_wgan_gp import RECIPES as PLAIN, Z_DIM, PlainTrainer  # noqa: PLC0415

    from wgan_fast import data, metrics, models  # noqa: PLC0415

    cfg = fashion_cfg(args)
    clock = TrainClock()
    images = data.load_arrays(cfg)[0]  # the preset's own data at 28 px
    images = data.to_resolution(images, 28, 1).float() / 127.5 - 1
    trainer = PlainTrainer(PLAIN[recipe], images, seed=cfg["seed"])
    evaluator = metrics.Evaluator(cfg, "cpu", metrics=("fid",), n_real=args.n, features=args.features)

    @clock.timed_out
    def score():
        G = trainer.sampler()
        with torch.no_grad():
            fake, _ = models.sample_images(lambda z, y: G(z), args.n, z_dim=Z_DIM, num_classes=0, device="cpu",
                                           seed=cfg["seed"])
        trainer.resume_training()
        return evaluator.score(fake, args.n)["fid"]

    while clock.seconds() < args.minutes * 60 and trainer.steps < (args.steps or float("inf")):
        trainer.step()
        if trainer.steps % args.eval_every == 0 and record(trainer.steps, clock.seconds(), score()):
            return
    if trainer.steps % args.eval_every:  # out of time between evaluations: the last model is scored too
        record(trainer.steps, clock.seconds(), score())


def first_below(curve, threshold):
    """(seconds, step) of the first evaluation under `threshold`, or None."""
    return next(({"seconds": s, "step": k} for k, s, fid in curve if fid < threshold), None)


def run_one(args) -> dict:
    sys.path.insert(0, HERE)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    torch.manual_seed(0)
    curve = []

    def record(step, seconds, fid) -> bool:
        """Keeps one evaluation; True when the recipe may stop (--stop-when-reached and every threshold met)."""
        curve.append((step, round(seconds, 2), fid))
        print(f"[{args.recipe}] step {step} train {seconds:.1f} s FID {fid:.2f}", file=sys.stderr, flush=True)
        return args.stop_when_reached and all(first_below(curve, t) for t in args.thresholds)

    if args.recipe == "wgan_fast":
        run_wgan_fast(args, record)
    else:
        run_plain(args, record, args.recipe)
    return dict(recipe=args.recipe, threads=torch.get_num_threads(), curve=curve,
                **{f"below_{t:g}": first_below(curve, t) for t in args.thresholds})


def child_command(args, recipe: str, threads: int) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--recipe", recipe, "--minutes", str(args.minutes),
            "--eval-every", str(args.eval_every), "--n", str(args.n), "--features", args.features,
            "--steps", str(args.steps), "--thresholds", ",".join(f"{t:g}" for t in args.thresholds),
            "--threads", str(threads), "--work", os.path.join(args.work, recipe)] + \
        (["--stop-when-reached"] if args.stop_when_reached else [])


def run_all(args) -> dict:
    """Every recipe in its own process (--jobs of them at a time); their results and the ratios."""
    jobs = max(1, min(args.jobs, len(RECIPES)))
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    results, pending = {}, list(RECIPES)
    while pending:
        batch, pending = pending[:jobs], pending[jobs:]
        procs = {r: subprocess.Popen(child_command(args, r, threads), stdout=subprocess.PIPE, text=True)
                 for r in batch}
        for recipe, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"time_to_quality: recipe {recipe} failed (exit {proc.returncode})")
            results[recipe] = json.loads(out.strip().splitlines()[-1])
    return dict(minutes=args.minutes, steps=args.steps, stop_when_reached=args.stop_when_reached,
                eval_every=args.eval_every, n=args.n, features=args.features, jobs=jobs,
                thresholds=list(args.thresholds), torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M"),
                results=results, ratios=ratios(results, args.thresholds))


def ratios(results, thresholds=THRESHOLDS) -> dict:
    """For each threshold: each baseline's time over wgan_fast's (None where either did not get there)."""
    out = {}
    for t in thresholds:
        ours = results["wgan_fast"][f"below_{t:g}"]
        for other in ("plain", "stock"):
            theirs = results[other][f"below_{t:g}"]
            out[f"{other}_over_wgan_fast_below_{t:g}"] = (theirs["seconds"] / ours["seconds"]
                                                         if ours and theirs else None)
    return out


def table(report) -> str:
    lines = [f"time to FID-{report['n']} below threshold (training seconds; evaluations every "
             f"{report['eval_every']} steps, {report['features']} features, {report['minutes']} min each)"]
    for recipe, r in report["results"].items():
        cells = []
        for t in report.get("thresholds", THRESHOLDS):
            hit = r[f"below_{t:g}"]
            cells.append(f"<{t:g}: " + (f"{hit['seconds']:.0f} s (step {hit['step']})" if hit else "not reached"))
        last = r["curve"][-1] if r["curve"] else None
        tail = f"last FID {last[2]:.1f} at step {last[0]}" if last else "no evaluation"
        lines.append(f"  {recipe:9s}  " + "   ".join(cells) + f"   {tail}")
    for k, v in report["ratios"].items():
        lines.append(f"  {k}: {'not reached' if v is None else f'{v:.2f}x'}")
    return "\n".join(lines)


def _thresholds(text: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers separated by commas, got {text!r}")
    return values


def main_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", choices=RECIPES, default=None, help="run one recipe in this process")
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes per recipe")
    p.add_argument("--steps", type=int, default=0, help="stop each recipe after this many generator steps too "
                   "(0: only --minutes)")
    p.add_argument("--eval-every", type=int, default=250, help="generator steps between evaluations")
    p.add_argument("--n", type=int, default=2000, help="generated and real images per FID")
    p.add_argument("--features", choices=("inception", "classifier"), default="inception")
    p.add_argument("--thresholds", type=_thresholds, default=THRESHOLDS,
                   help="FID levels to time, comma-separated (default 100,70: Inception FID-2k; the classifier "
                        "features' FID runs lower and needs its own)")
    p.add_argument("--stop-when-reached", action="store_true",
                   help="stop a recipe once its FID fell below every threshold (saves the evaluations after)")
    p.add_argument("--jobs", type=int, default=1, help="recipes trained at once")
    p.add_argument("--threads", type=int, default=0, help="torch threads per recipe (default: cores / jobs)")
    p.add_argument("--work", default=os.path.join(HERE, "results", "ttq_runs"), help="scratch folder of the runs")
    p.add_argument("--out", default=None, help="JSON file of the report")
    return p.parse_args(argv)


def main(argv=None):
    args = main_args(argv)
    if args.recipe:
        print(json.dumps(run_one(args)))
        return 0
    report = run_all(args)
    print(table(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
