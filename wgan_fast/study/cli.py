"""`python -m wgan_fast.study {run,report,status,dashboard}` (also `wgan-fast study ...`)."""
from __future__ import annotations

import argparse
import os
import sys

from .. import cli, errors

DOC = """\
Studies: comparisons of training configurations, run as one command on Optuna.

  run STUDY.yaml|PRESET   run or resume a study (one trial process per grid point x seed, or per search trial)
  report NAME_OR_DIR      write its results.csv, report.md and figures
  status NAME_OR_DIR      print a table of its trials
  dashboard NAME_OR_DIR   serve optuna-dashboard on its storage (localhost)

See docs/studies.md for the YAML, the storage and how a killed study resumes."""


def _run_help() -> str:
    from .presets import STUDY_PRESETS  # noqa: PLC0415

    width = max(map(len, STUDY_PRESETS))
    presets = "\n".join(f"  {name:<{width}} {p['description']}" for name, p in STUDY_PRESETS.items())
    return f"""\
Run a study, or resume it: the same command continues where a killed one stopped (finished trials kept, a trial
that was running resumes from its checkpoint, nothing runs twice). Results land in OUT_DIR/NAME/: a run folder per
trial in trials/, results.csv, report.md and figures/.

STUDY is a YAML file:
  name: lr-study
  base: {{preset: toy-8gaussians}}           # any train keys (or preset:)
  grid: {{lr_d: [1e-4, 1e-3]}}               # every combination; or search: {{lr_d: {{low: 1e-5, high: 1e-3, log: true}}}}
  seeds: [0, 1]                            # each point once per seed
  budget: {{steps: 500}}                     # per trial: steps and/or minutes
  objective: {{metric: wdist, every: 100}}   # fid|kid (in-training evaluation), precision|recall|class_acc (at the
                                           # end), or a training value (wdist, loss_d, ...); features, n, direction
  pruner: none                             # none | median | hyperband (or {{name: median, n_startup_trials: 2}})
or the name of a study preset (--show prints its YAML):
{presets}"""


def parser() -> argparse.ArgumentParser:
    p = cli.new_parser("study", DOC)
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,report,status,dashboard}")
    common = dict(formatter_class=cli._Formatter, epilog=errors.exit_codes_text())
    run = sub.add_parser("run", help="run or resume a study", description=_run_help(), **common)
    run.add_argument("study", metavar="STUDY", help="a study YAML file or a study preset's name")
    run.add_argument("--storage", default=None,
                     help="an SQLAlchemy URL shared by workers on many machines (postgresql://user@host/db); "
                          "default: the journal file OUT_DIR/NAME/optuna.journal")
    run.add_argument("--workers", type=int, default=1, help="trials run at once by this command")
    run.add_argument("--out-dir", default="studies", help="folder of study folders")
    run.add_argument("--resume", action="store_true",
                     help="continue a study stored with another definition, under this one (finished trials kept)")
    run.add_argument("--retry-failed", action="store_true",
                     help="run the failed trials again, each from its run folder's newest checkpoint")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="change the definition: budget.steps=200, base.data_dir=~/data, seeds=[0,1] (repeatable)")
    run.add_argument("--show", action="store_true", help="print the checked definition as YAML and exit")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    for name, what in (("report", "write results.csv, report.md and figures"), ("status", "print the trials"),
                       ("dashboard", "serve optuna-dashboard on the study's storage")):
        s = sub.add_parser(name, help=what, description=f"{what[0].upper()}{what[1:]} of a study.", **common)
        s.add_argument("target", metavar="NAME_OR_DIR", help="the study folder, or its name under --out-dir")
        s.add_argument("--out-dir", default="studies", help="folder of study folders")
        s.add_argument("--storage", default=None, help="the study's storage, when not the one in its folder")
        if name == "dashboard":
            s.add_argument("--host", default="127.0.0.1", help="address to serve on")
            s.add_argument("--port", type=int, default=8080, help="port to serve on")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    from . import commands  # noqa: PLC0415

    return errors.run(f"study {args.command}", getattr(commands, f"cmd_{args.command}"), args)
