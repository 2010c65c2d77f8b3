"""A study's trials as rows (results.csv, `study status`) and grouped by
configuration (the report): one row per trial key, its latest attempt."""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass

from ..atomic import write_text
from .schedule import STALE

FIXED = ("number", "state", "attempts")
TAIL = ("objective", "steps", "seconds", "it_per_s", "run_dir", "error")


def trial_rows(study, spec) -> list[dict]:
    """One row per trial key (its newest attempt; attempts left by a stopped worker are not rows)."""
    newest: dict = {}
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get("key")
        if key is None:
            continue
        if t.user_attrs.get("fail_kind") == STALE and key in newest:
            continue
        if key not in newest or t.user_attrs.get("attempt", 0) >= newest[key].user_attrs.get("attempt", 0):
            newest[key] = t
    rows = []
    for t in sorted(newest.values(), key=lambda t: t.number):
        a = t.user_attrs
        stale = a.get("fail_kind") == STALE
        row = {"number": t.number, "state": "INTERRUPTED" if stale else t.state.name, "attempts": a.get("attempt", 0) + 1,
               "point": a.get("point"), "seed": a.get("seed")}
        row.update({k: t.params.get(k) for k in spec.varied})
        row["objective"] = t.value
        row.update({f"m_{k}": v for k, v in sorted(a.get("metrics", {}).items())})
        row.update(steps=a.get("steps"), seconds=a.get("seconds"), it_per_s=a.get("it_per_s"),
                   run_dir=a.get("run_dir") or "", error=a.get("error", "") if t.state.name == "FAIL" else "")
        row["curve"] = a.get("curve", [])
        rows.append(row)
    return rows


def metric_names(rows) -> list[str]:
    return sorted({k[2:] for r in rows for k in r if k.startswith("m_")})


def metric_column(name: str, spec) -> str:
    """A metric's column; `last_<name>` where a varied key has its name (lr_d: the key and the logged rate)."""
    return f"last_{name}" if name in spec.varied or name in ("seed", "objective") else name


def csv_text(rows, spec) -> str:
    """results.csv: number, state, attempts, each varied key, seed, objective, every metric measured, steps,
    wall seconds, it/s, run folder, error."""
    metrics = metric_names(rows)
    columns = list(FIXED) + spec.varied + ["seed", "objective"] + [metric_column(m, spec) for m in metrics] + \
        list(TAIL[1:])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        values = {**r, **{metric_column(m, spec): r.get(f"m_{m}") for m in metrics}}
        w.writerow(["" if values.get(c) is None else values[c] for c in columns])
    return out.getvalue()


def write_csv(rows, spec, study_dir: str) -> str:
    return write_text(os.path.join(study_dir, "results.csv"), csv_text(rows, spec))


@dataclass
class Group:
    """One configuration (a grid point or search point) over its seeds."""

    point: str
    params: dict
    rows: list

    def values(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.rows if r["state"] == "COMPLETE" and _finite(r.get(key))]

    def count(self, state: str) -> int:
        return sum(r["state"] == state for r in self.rows)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def groups(rows, spec) -> list[Group]:
    """Configurations sorted by the mean objective of their finished seeds (best first; none measured last)."""
    by_point: dict = {}
    for r in rows:
        by_point.setdefault(r["point"], Group(r["point"], {k: r.get(k) for k in spec.varied}, [])).rows.append(r)
    sign = 1 if spec.objective["direction"] == "minimize" else -1

    def order(g: Group):
        v = g.values("objective")
        return (0, sign * sum(v) / len(v)) if v else (1, 0.0)

    return sorted(by_point.values(), key=order)


def mean_std(values) -> str:
    if not values:
        return "–"
    m = sum(values) / len(values)
    if len(values) == 1:
        return f"{_fmt(m)}"
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return f"{_fmt(m)} ± {_fmt(sd)}"


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.3e}"
