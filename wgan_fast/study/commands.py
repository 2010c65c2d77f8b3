"""What each `study` subcommand does (cli.py parses the arguments)."""
from __future__ import annotations

import os

from .. import cli
from ..errors import UsageError
from . import spec as spec_mod
from .storage import (DEFINITION_ATTR, create_or_load, default_storage, load_study, locate, open_storage, shown,
                      write_manifest)


def cmd_run(args) -> int:
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    spec = spec_mod.load(args.study, args.set)
    if args.show:
        import yaml  # noqa: PLC0415

        cli.print_text(yaml.safe_dump(spec.definition(), sort_keys=False).rstrip())
        return 0
    import optuna  # noqa: PLC0415

    from .claims import claims_for  # noqa: PLC0415
    from .worker import Workers, _say  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_dir = os.path.join(args.out_dir, spec.name)
    storage = args.storage or default_storage(study_dir)
    study = create_or_load(spec, open_storage(storage), storage, args.resume)
    claims = claims_for(storage, spec.name)
    write_manifest(study_dir, spec.name, storage)
    _say(f"study {spec.name}: {len(spec.trials())} trials ({len(spec.points())} configurations x "
         f"{len(spec.seeds)} seeds), {args.workers} worker(s), storage {shown(storage)}")
    import datetime  # noqa: PLC0415

    retry_before = datetime.datetime.now() if args.retry_failed else None
    counts = Workers(spec, study, claims, storage, study_dir, args.workers, retry_before).run()
    done = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"
    _say(f"study {spec.name}: finished; trials run by this process: {done}")
    if not args.no_report:
        from .report import write_report  # noqa: PLC0415

        _say(f"report: {write_report(study, spec, study_dir)}")
    return 0


def _open(args):
    study_dir, name, storage = locate(args.target, args.out_dir, args.storage)
    study = load_study(name, storage)
    if DEFINITION_ATTR not in study.user_attrs:
        raise UsageError(f"study {name!r} in {shown(storage)} was not made by `study run` (no definition stored)")
    return study_dir, storage, study, spec_mod.from_dict(study.user_attrs[DEFINITION_ATTR], source=name)


def cmd_report(args) -> int:
    from .report import write_report  # noqa: PLC0415

    study_dir, _, study, spec = _open(args)
    cli.print_text(f"wrote {write_report(study, spec, study_dir)} (and results.csv, figures/)")
    return 0


def cmd_status(args) -> int:
    from . import results  # noqa: PLC0415

    _, storage, study, spec = _open(args)
    rows = results.trial_rows(study, spec)
    head = ["trial", "state", "try"] + spec.varied + ["seed", spec.objective["metric"], "steps", "wall s", "error"]
    table = [[str(r["number"]), r["state"], str(r["attempts"])] + [str(r.get(k)) for k in spec.varied]
             + [str(r["seed"]), _num(r["objective"]), _num(r["steps"]), _num(r["seconds"]), (r["error"] or "")[:60]]
             for r in rows]
    width = [max(len(x) for x in col) for col in zip(head, *table)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, width)).rstrip() for line in [head] + table]
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    left = len(spec.trials()) - len(rows)
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) + (f", {left} not started" if left else "")
    cli.print_text(f"study {spec.name} ({shown(storage)}): {summary or 'no trials yet'}\n" + "\n".join(lines))
    return 0


def _num(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cmd_dashboard(args) -> int:
    from ..errors import require  # noqa: PLC0415

    dashboard = require("optuna_dashboard", "study", "study dashboard")
    _, storage, _, spec = _open(args)
    print(f"optuna-dashboard for study {spec.name}: http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    dashboard.run_server(open_storage(storage), host=args.host, port=args.port)
    return 0
