"""One trial in its own process (started by `study run`; under torchrun for
several processes a trial, rank 0 owning the trial):

    WGAN_FAST_STUDY_STORAGE=URL python -m wgan_fast.study.trial --study NAME --trial-id N --study-dir DIR

It loads the trial from the storage, builds its train config from the
study's definition, trains into its run folder (resuming a checkpoint left by
an earlier attempt), reports each measurement of the objective to Optuna and
stops when the pruner says so, then tells Optuna the result. A failure is
one line and an exit code (wgan_fast.errors); the study process records it.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time

from .. import checkpoint, config, errors
from . import spec as spec_mod
from .storage import DEFINITION_ATTR, open_storage

_METRIC_OF = {"precision": "pr", "recall": "pr", "class_acc": "class-acc"}  # Evaluator's names


class Reporter:
    """The train callback: each measurement of the objective to Optuna (and the trial's curve); True to stop
    when the pruner prunes."""

    def __init__(self, trial, spec, offset_s: float, curve: list):
        self.trial, self.metric = trial, spec.objective["metric"]
        self.kind = "eval" if self.metric in spec_mod.EVAL_METRICS else "log"
        self.measured = self.metric not in spec_mod.END_METRICS
        self.pruning = spec.pruner["name"] != "none"
        self.t0, self.offset_s, self.curve, self.pruned = time.time(), offset_s, curve, False
        for step, _, value in curve:  # an earlier attempt's measurements up to the checkpoint resumed
            trial.report(value, step)

    def seconds(self) -> float:
        return self.offset_s + time.time() - self.t0

    def __call__(self, event) -> bool:
        if not self.measured or event.kind != self.kind:
            return False
        value = event.values.get(f"eval_{self.metric}" if self.kind == "eval" else self.metric)
        if value is None or not math.isfinite(value):
            return False
        self.curve.append([event.step, round(self.seconds(), 3), float(value)])
        self.trial.report(float(value), event.step)
        self.trial.set_user_attr("curve", self.curve)
        if self.pruning and self.trial.should_prune():
            self.pruned = True
        return self.pruned


def earlier_curve(study, frozen, run_dir: str) -> list:
    """The measurements of this key's earlier attempts at steps its newest checkpoint holds."""
    found = checkpoint.list_checkpoints(run_dir)
    if not found:
        return []
    step = int(checkpoint.PATTERN.search(os.path.basename(found[-1])).group(1))
    key, best = frozen.user_attrs["key"], []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("key") == key and t.number != frozen.number and len(t.user_attrs.get("curve", [])) > len(best):
            best = t.user_attrs["curve"]
    return [p for p in best if p[0] <= step]


def make_pruner(spec):
    """The pruner of the study's definition (Optuna's defaults for what it leaves out)."""
    import optuna  # noqa: PLC0415

    args = {k: v for k, v in spec.pruner.items() if k != "name"}
    if spec.pruner["name"] == "median":
        return optuna.pruners.MedianPruner(**args)
    if spec.pruner["name"] == "hyperband":
        args.setdefault("min_resource", spec.objective["every"])
        return optuna.pruners.HyperbandPruner(max_resource=spec.budget.get("steps", "auto"), **args)
    return optuna.pruners.NopPruner()


def watch_owner() -> None:
    """End this process when the study process that started it is gone (kill -9 included): at once by the
    kernel where it is our parent (Linux), else (torchrun in between) within half a second."""
    owner = int(os.environ.get("WGAN_FAST_STUDY_OWNER", "0") or 0)
    if not owner:
        return
    if os.getppid() == owner and sys.platform.startswith("linux"):
        import ctypes  # noqa: PLC0415
        import signal  # noqa: PLC0415

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != owner:  # the owner died before the line above
            os._exit(137)

    def watch():
        while True:
            time.sleep(0.5)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(137)
            except OSError:
                pass

    threading.Thread(target=watch, daemon=True).start()


def end_metrics(spec, cfg: dict, run_dir: str) -> dict:
    """precision, recall or class_acc of the final generator (measured once, at the end)."""
    from .. import run_folder  # noqa: PLC0415
    from ..metrics import Evaluator  # noqa: PLC0415
    from ..runtime import resolve_device  # noqa: PLC0415

    obj = spec.objective
    run = run_folder.load_run(run_dir, resolve_device(cfg["device"]))
    ev = Evaluator(run.cfg, run.device, metrics=(_METRIC_OF[obj["metric"]],), n_real=obj["n_real"], split="test",
                   features=obj["features"])
    result = ev.score(lambda k: run_folder.generate(run, k, seed=cfg["seed"]), obj["n"])
    return {k: v for k, v in result.items() if k in ("precision", "recall", "class_acc")}


def _numbers(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_trial(args) -> int:
    watch_owner()
    import optuna  # noqa: PLC0415

    from ..requirements import check_config_requirements  # noqa: PLC0415
    from ..runtime import keep_freed_memory, resolve_device  # noqa: PLC0415
    from ..train import distributed, train_with_rollback  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = os.environ.get("WGAN_FAST_STUDY_STORAGE", "")
    if not storage:
        raise errors.UsageError("WGAN_FAST_STUDY_STORAGE is not set: trials are started by `study run`")
    storage_obj = open_storage(storage)
    spec = spec_mod.from_dict(optuna.load_study(study_name=args.study, storage=storage_obj).user_attrs[DEFINITION_ATTR])
    study = optuna.load_study(study_name=args.study, storage=storage_obj, pruner=make_pruner(spec))
    frozen = study._storage.get_trial(args.trial_id)
    attrs = frozen.user_attrs
    trials_dir = os.path.join(args.study_dir, "trials")
    run_dir = os.path.join(trials_dir, attrs["run_name"])
    curve = earlier_curve(study, frozen, run_dir)
    offset = curve[-1][1] if curve else 0.0
    overrides = spec.train_overrides(frozen.params, attrs["seed"], attrs["run_name"], trials_dir)
    if not checkpoint.list_checkpoints(run_dir):  # an earlier attempt's logs without a checkpoint: start afresh
        overrides.update(resume=False, overwrite=True)
    if spec.budget.get("minutes"):  # a resumed attempt gets what is left of the wall-time budget
        overrides["max_minutes"] = max(spec.budget["minutes"] - offset / 60, 0.05)
    cfg = config.resolve(overrides)
    check_config_requirements(cfg)
    if resolve_device(cfg["device"]).type == "cpu":
        keep_freed_memory()
    rank = int(os.environ.get("RANK", "0"))
    trial = optuna.trial.Trial(study, args.trial_id)
    reporter = Reporter(trial, spec, offset, curve) if rank == 0 else (lambda event: False)
    try:
        result = train_with_rollback(cfg, callbacks=[reporter])  # every rank gets one: the stop is collective
    finally:
        distributed.teardown()
    if rank == 0:
        _tell(study, trial, spec, cfg, result, reporter, attrs)
    return 0


def _tell(study, trial, spec, cfg, result, reporter: Reporter, attrs) -> None:
    from optuna.trial import TrialState  # noqa: PLC0415

    metric = spec.objective["metric"]
    measured = _numbers(dict(result.last_values, **result.last_eval))
    if metric in spec_mod.END_METRICS and not reporter.pruned:
        measured.update(end_metrics(spec, cfg, result.run_dir))
    measured.update({f"best_{k}": v for k, v in _numbers(result.best).items() if k != "step"})
    seconds = reporter.seconds()  # this attempt's wall time plus the earlier attempts' up to the checkpoint
    for k, v in dict(metrics=measured, steps=result.step, seconds=round(seconds, 3), stop_reason=result.stop_reason,
                     it_per_s=round(result.step / max(seconds, 1e-9), 3),
                     run_dir=os.path.abspath(result.run_dir)).items():
        trial.set_user_attr(k, v)
    if reporter.pruned:
        study.tell(trial, state=TrialState.PRUNED)  # Optuna records the last reported value with it
        return
    value = reporter.curve[-1][2] if reporter.measured and reporter.curve else measured.get(metric)
    if value is None or not math.isfinite(value):
        raise errors.NonFiniteError(f"objective {metric}: no finite value measured ({value}); see "
                                    f"{result.run_dir}/metrics.jsonl")
    study.tell(trial, value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgan_fast.study.trial", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=errors.exit_codes_text())
    parser.add_argument("--study", required=True, help="the study's name in the storage")
    parser.add_argument("--trial-id", type=int, required=True, help="the Optuna trial id to run")
    parser.add_argument("--study-dir", required=True, help="the study folder (run folders go to its trials/)")
    args = parser.parse_args(argv)
    return errors.run("study.trial", run_trial, args)


if __name__ == "__main__":
    sys.exit(main())
