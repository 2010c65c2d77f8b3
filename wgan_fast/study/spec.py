"""A study's definition: the YAML read and checked before anything runs (each
error names its key), and what it means: the trials (a point of the grid or
search times a seed), each with its key, run folder name and train config."""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass

from .. import config
from ..errors import ConfigError

TOP_KEYS = ("name", "description", "base", "grid", "search", "n_trials", "seeds", "budget", "objective", "pruner",
            "nproc_per_trial")
# train keys the study sets for every trial itself
STUDY_OWNED = {"name": "the study names each trial's run folder", "out_dir": "trials live in the study folder",
               "resume": "the study resumes trials itself", "overwrite": "the study never deletes a trial's run",
               "seed": "use seeds: [...]"}
EVAL_KEYS = ("eval_every", "eval_metric", "eval_features", "eval_n", "eval_n_real")
BUDGET_KEYS = ("steps", "max_minutes", "cpu_max_minutes")
# objective metrics: measured by the in-training evaluation, once at the end, or read from the training log
EVAL_METRICS = ("fid", "kid", "class_cov")  # class_cov: eval_metric class-cov
END_METRICS = ("precision", "recall", "class_acc")
LOG_METRICS = ("wdist", "loss_d", "loss_g", "penalty", "gnorm_mean", "d_real", "d_fake", "images_per_s")
METRICS = EVAL_METRICS + END_METRICS + LOG_METRICS
MAXIMIZED = ("precision", "recall", "class_acc", "images_per_s")
PRUNER_ARGS = {"none": (), "median": ("n_startup_trials", "n_warmup_steps", "interval_steps"),
               "hyperband": ("min_resource", "reduction_factor")}
MAX_TRIALS = 100_000


class StudySpecError(ConfigError):
    """A study definition that cannot run; the message names the key."""


@dataclass(frozen=True)
class TrialSpec:
    key: str          # unique within the study: the point and the seed
    point: str        # the configuration, the same for every seed
    seed: int
    params: dict      # the varied keys' values (empty until a search point is sampled)
    run_name: str     # the run folder's name under <study>/trials/


@dataclass(frozen=True)
class Spec:
    name: str
    base: dict
    grid: dict | None
    search: dict | None
    n_trials: int
    seeds: tuple
    budget: dict
    objective: dict
    pruner: dict
    nproc_per_trial: int = 1
    description: str = ""

    @property
    def varied(self) -> list[str]:
        return list(self.grid or self.search or {})

    def definition(self) -> dict:
        """The normalised definition (JSON): stored with the study, compared on a rerun."""
        varied = {"grid": self.grid} if self.grid is not None else {"search": self.search, "n_trials": self.n_trials}
        return {"name": self.name, "description": self.description, "base": self.base, **varied,
                "seeds": list(self.seeds), "budget": self.budget, "objective": self.objective, "pruner": self.pruner,
                "nproc_per_trial": self.nproc_per_trial}

    def points(self) -> list[str]:
        """The configurations in order: canonical JSON of a grid point's values, or search point ids."""
        if self.grid is not None:
            return [canonical(dict(zip(self.grid, values))) for values in itertools.product(*self.grid.values())]
        return [f"point{i:04d}" for i in range(self.n_trials)]

    def trials(self) -> list[TrialSpec]:
        """Every trial (point x seed), seeds of a point together, the first seed of each point first."""
        out = []
        for seed in self.seeds:
            for point in self.points():
                params = json.loads(point) if self.grid is not None else {}
                out.append(TrialSpec(f"{point}|seed={seed}", point, seed, params, run_name(point, params, seed)))
        return out

    def train_overrides(self, params: dict, seed: int, run_name_: str, trials_dir: str) -> dict:
        """The train config of one trial, as overrides for config.resolve."""
        o = dict(self.base, **params, seed=seed, name=run_name_, out_dir=trials_dir, resume=True, overwrite=False)
        if self.budget.get("steps"):
            o["steps"] = self.budget["steps"]
        o["max_minutes"] = self.budget.get("minutes") or 0.0
        o["cpu_max_minutes"] = 0.0
        metric, every = self.objective["metric"], self.objective["every"]
        if metric in EVAL_METRICS:
            o.update(eval_every=every, eval_metric=metric.replace("_", "-"), eval_features=self.objective["features"],
                     eval_n=self.objective["n"], eval_n_real=self.objective["n_real"])
        elif metric in LOG_METRICS:
            o["log_every"] = every
        return o


def canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def run_name(point: str, params: dict, seed: int) -> str:
    """A readable folder name: the varied values and the seed (a hash where they do not fit)."""
    readable = "_".join(f"{k}-{v}" for k, v in sorted(params.items())) if params else point
    slug = re.sub(r"[^A-Za-z0-9.=+-]+", "_", readable)
    if slug != readable or len(slug) > 80:
        slug = slug[:60] + "-" + hashlib.sha1(point.encode()).hexdigest()[:8]
    return f"{slug or 'base'}-seed{seed}"


# --- reading and checking -------------------------------------------------------------------------------------


def _fail(where: str, what: str):
    raise StudySpecError(f"{where}: {what}")


def _mapping(value, where: str) -> dict:
    if not isinstance(value, dict):
        _fail(where, f"must be a mapping, got {type(value).__name__} {value!r}")
    return {str(k).replace("-", "_") if where in ("base", "grid", "search") else str(k): v for k, v in value.items()}


def _only(d: dict, allowed, where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def _int(value, where: str, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        _fail(where, f"must be an integer >= {low}, got {value!r}")
    return value


def _resolve(overrides: dict, where: str) -> dict:
    try:
        return config.resolve(overrides)
    except ConfigError as exc:
        _fail(where, str(exc))


def _train_key(key: str, where: str, owned_too=()) -> None:
    if key not in config.KEY:
        _fail(where, f"unknown train key {key!r} (see python -m wgan_fast.train --help for the keys)")
    if key in STUDY_OWNED:
        _fail(where, f"set by the study ({STUDY_OWNED[key]})")
    if key in owned_too:
        _fail(where, "set by the study's budget or objective; change those instead")


def from_dict(raw, source: str = "study") -> Spec:
    """Check a study definition (a YAML mapping) and normalise it; StudySpecError names the first bad key."""
    if not isinstance(raw, dict):
        _fail(source, f"a study definition must be a mapping of key: value, got {type(raw).__name__}")
    raw = {str(k): v for k, v in raw.items()}
    _only(raw, TOP_KEYS, source)
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        _fail("name", f"must be a name of letters, digits, '.', '_' or '-' (a folder and a study name), got {name!r}")
    if "grid" in raw and "search" in raw:
        _fail("grid", "give grid or search, not both")
    if "grid" not in raw and "search" not in raw:
        _fail("grid", "missing: give grid: {key: [values]} or search: {key: {low:, high:}} with n_trials")
    budget = _budget(raw.get("budget"))
    objective = _objective(raw.get("objective", {}), budget)
    owned = tuple(k for k in BUDGET_KEYS if k != "steps" or budget.get("steps"))
    owned += EVAL_KEYS if objective["metric"] in EVAL_METRICS else ()
    owned += ("log_every",) if objective["metric"] in LOG_METRICS else ()
    base = _mapping(raw.get("base", {}) or {}, "base")
    for key in base:
        if key != "preset":
            _train_key(key, f"base.{key}", owned)
    _resolve(base, "base")
    seeds = _seeds(raw.get("seeds", [0]))
    n_trials = raw.get("n_trials")
    if "grid" in raw:
        if n_trials is not None:
            _fail("n_trials", "only with search (a grid runs every combination)")
        grid, search, n_trials = _grid(raw["grid"], base, owned), None, 0
    else:
        grid, search = None, _search(raw["search"], base, owned)
        n_trials = _int(n_trials, "n_trials") if n_trials is not None else _fail("n_trials", "missing: search needs it")
    spec = Spec(name=name, base=base, grid=grid, search=search, n_trials=n_trials, seeds=seeds, budget=budget,
                objective=objective, pruner=_pruner(raw.get("pruner", "none"), objective, budget),
                nproc_per_trial=_int(raw.get("nproc_per_trial", 1), "nproc_per_trial"),
                description=str(raw.get("description", "") or ""))
    _check_trial_configs(spec)
    return spec


def _budget(raw) -> dict:
    if raw is None:
        _fail("budget", "missing: give budget: {steps: N} or {minutes: M} (per trial)")
    raw = _mapping(raw, "budget")
    _only(raw, ("steps", "minutes"), "budget")
    if not raw:
        _fail("budget", "give steps: N and/or minutes: M")
    out = {}
    if "steps" in raw:
        out["steps"] = _int(raw["steps"], "budget.steps")
    if "minutes" in raw:
        m = raw["minutes"]
        if not isinstance(m, (int, float)) or isinstance(m, bool) or not m > 0:
            _fail("budget.minutes", f"must be a number > 0, got {m!r}")
        out["minutes"] = float(m)
    return out


def _objective(raw, budget: dict) -> dict:
    raw = _mapping(raw or {}, "objective")
    _only(raw, ("metric", "features", "n", "n_real", "every", "direction"), "objective")
    metric = raw.get("metric", "fid")
    if metric not in METRICS:
        _fail("objective.metric", f"must be one of {', '.join(METRICS)}, got {metric!r}")
    features = raw.get("features", "inception")
    if features not in ("inception", "classifier"):
        _fail("objective.features", f"must be inception or classifier, got {features!r}")
    n = _int(raw.get("n", 2000), "objective.n", 4)
    default_every = max(1, budget["steps"] // 10) if budget.get("steps") else 500
    direction = raw.get("direction", "maximize" if metric in MAXIMIZED else "minimize")
    if direction not in ("minimize", "maximize"):
        _fail("objective.direction", f"must be minimize or maximize, got {direction!r}")
    return {"metric": metric, "features": features, "n": n, "n_real": _int(raw.get("n_real", n), "objective.n_real", 4),
            "every": _int(raw.get("every", default_every), "objective.every"), "direction": direction}


def _seeds(raw) -> tuple:
    if not isinstance(raw, list) or not raw:
        _fail("seeds", f"must be a non-empty list of integers, got {raw!r}")
    for i, s in enumerate(raw):
        _int(s, f"seeds[{i}]", 0)
    if len(set(raw)) != len(raw):
        _fail("seeds", f"each seed once, got {raw}")
    return tuple(raw)


def _grid(raw, base: dict, owned) -> dict:
    raw = _mapping(raw, "grid")
    if not raw:
        _fail("grid", "is empty: give at least one key with a list of values")
    grid, size = {}, 1
    for key, values in raw.items():
        where = f"grid.{key}"
        _train_key(key, where, owned)
        if not isinstance(values, list) or not values:
            _fail(where, f"must be a non-empty list of values, got {values!r}")
        normalised = []
        for i, v in enumerate(values):
            if not isinstance(v, (bool, int, float, str)):
                _fail(f"{where}[{i}]", f"must be a single value, got {type(v).__name__} {v!r}")
            normalised.append(_resolve(dict(base, **{key: v}), f"{where}[{i}]")[key])
        if len(set(map(repr, normalised))) != len(normalised):
            _fail(where, f"each value once, got {values}")
        grid[key], size = normalised, size * len(normalised)
    if size > MAX_TRIALS:
        _fail("grid", f"{size} combinations; at most {MAX_TRIALS}")
    return grid


def _search(raw, base: dict, owned) -> dict:
    raw = _mapping(raw, "search")
    if not raw:
        _fail("search", "is empty: give at least one key with {low:, high:} or {choices: [...]}")
    out = {}
    for key, dist in raw.items():
        where = f"search.{key}"
        _train_key(key, where, owned)
        dist = _mapping(dist, where)
        out[key] = _choices(dist, key, base, where) if "choices" in dist else _range(dist, key, base, where)
    return out


def _choices(dist: dict, key: str, base: dict, where: str) -> dict:
    _only(dist, ("choices",), where)
    values = dist["choices"]
    if not isinstance(values, list) or not values:
        _fail(f"{where}.choices", f"must be a non-empty list, got {values!r}")
    normalised = []
    for i, v in enumerate(values):
        if not isinstance(v, (bool, int, float, str)):
            _fail(f"{where}.choices[{i}]", f"must be a single value, got {v!r}")
        normalised.append(_resolve(dict(base, **{key: v}), f"{where}.choices[{i}]")[key])
    return {"choices": normalised}


def _range(dist: dict, key: str, base: dict, where: str) -> dict:
    _only(dist, ("low", "high", "log", "step"), where)
    kind = type(config.KEY[key].default)
    if kind not in (int, float):
        _fail(where, f"{key} is not a number: give choices: [...]")
    for bound in ("low", "high"):
        if bound not in dist:
            _fail(f"{where}.{bound}", "missing")
        v = dist[bound]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
            _fail(f"{where}.{bound}", f"must be {'an integer' if kind is int else 'a number'}, got {v!r}")
        _resolve(dict(base, **{key: v}), f"{where}.{bound}")
    low, high, log = dist["low"], dist["high"], dist.get("log", False)
    if not isinstance(log, bool):
        _fail(f"{where}.log", f"must be true or false, got {log!r}")
    if not low < high:
        _fail(where, f"low must be < high, got low={low}, high={high}")
    if log and low <= 0:
        _fail(f"{where}.low", f"must be > 0 with log: true, got {low}")
    out = {"low": kind(low), "high": kind(high), "log": log}
    if "step" in dist:
        step = dist["step"]
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or log:
            _fail(f"{where}.step", f"must be a number > 0 (and not with log: true), got {step!r}")
        out["step"] = kind(step)
    return out


def _pruner(raw, objective: dict, budget: dict) -> dict:
    if isinstance(raw, str):
        raw = {"name": raw}
    raw = _mapping(raw, "pruner")
    name = raw.get("name")
    if name not in PRUNER_ARGS:
        _fail("pruner", f"must be one of {', '.join(PRUNER_ARGS)} (or a mapping with name:), got {name!r}")
    _only(raw, ("name",) + PRUNER_ARGS[name], "pruner")
    for k in PRUNER_ARGS[name]:
        if k in raw:
            _int(raw[k], f"pruner.{k}", 0 if k != "reduction_factor" else 2)
    if name != "none" and objective["metric"] in END_METRICS:
        _fail("pruner", f"{objective['metric']} is measured once, at the end of a trial: nothing to prune on; "
                        f"use pruner: none or an objective measured during training ({', '.join(EVAL_METRICS)})")
    return dict(raw)


def _check_trial_configs(spec: Spec) -> None:
    """Every grid point's config (search: the base's) resolves, naming the point that does not."""
    points = spec.points() if spec.grid is not None else ["{}"]
    for point in points:
        params = json.loads(point)
        overrides = spec.train_overrides(params, spec.seeds[0], "check", "check")
        where = f"grid point {point}" if params else "base"
        try:
            config.resolve(overrides)
        except ConfigError as exc:
            metric = spec.objective["metric"]
            hint = f" (objective.metric {metric} sets it)" if str(exc).startswith("eval_") else ""
            _fail(where, f"{exc}{hint}")


def load(path: str, sets=()) -> Spec:
    """Read a study YAML (or a study preset's name), apply --set KEY=VALUE, check it."""
    from .presets import definition_of  # noqa: PLC0415

    raw = definition_of(path)
    for item in sets:
        apply_set(raw, item)
    return from_dict(raw, source=path)


def apply_set(raw: dict, item: str) -> None:
    """KEY.SUB=VALUE (VALUE read as YAML) into the definition."""
    import yaml  # noqa: PLC0415

    path, eq, text = item.partition("=")
    if not eq or not path:
        raise StudySpecError(f"--set {item!r}: expected KEY=VALUE (e.g. budget.steps=200)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StudySpecError(f"--set {item!r}: the value is not YAML ({' '.join(str(exc).split())})") from None
    parts, node = path.split("."), raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise StudySpecError(f"--set {item!r}: {part} is not a mapping")
    node[parts[-1]] = value
