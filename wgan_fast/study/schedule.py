"""What a worker runs next: the first trial of the study's definition that is
neither finished nor owned by a live worker, claimed (claims.py) and recorded
as a RUNNING Optuna trial with its values.

Each Optuna trial records one attempt of one trial key in its user attributes
(key, attempt, point, seed, run_name). An attempt whose worker died is marked
FAIL with fail_kind "stale" and left out of results; its next attempt resumes
the same run folder.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

from .claims import key_hash
from .spec import Spec, TrialSpec

STALE = "stale"


@dataclass
class Taken:
    trial: TrialSpec
    attempt: int
    trial_id: int
    number: int
    params: dict


def distributions(spec: Spec) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: PLC0415

    if spec.grid is not None:
        return {k: CategoricalDistribution(v) for k, v in spec.grid.items()}
    out = {}
    for key, d in spec.search.items():
        if "choices" in d:
            out[key] = CategoricalDistribution(d["choices"])
        elif isinstance(d["low"], int):
            out[key] = IntDistribution(d["low"], d["high"], log=d["log"], step=d.get("step", 1))
        else:
            out[key] = FloatDistribution(d["low"], d["high"], log=d["log"], step=d.get("step"))
    return out


def attempts_by_key(trials) -> dict:
    """(key, attempt) -> the Optuna trial recording it."""
    return {(t.user_attrs.get("key"), t.user_attrs.get("attempt")): t for t in trials if "key" in t.user_attrs}


def is_done(trial) -> bool:
    return trial is not None and trial.state.is_finished() and trial.user_attrs.get("fail_kind") != STALE


def retried(trial, retry_before) -> bool:
    """A trial that failed before `retry_before` (a datetime: this `study run --retry-failed` began) runs again."""
    return (retry_before is not None and trial.state.name == "FAIL" and trial.user_attrs.get("fail_kind") == "error"
            and trial.datetime_complete is not None and trial.datetime_complete < retry_before)


def take_next(spec: Spec, study, claims, grace: float, retry_before=None):
    """A Taken trial now owned by this process, or "wait" (others run what is left), or "done"."""
    trials = study.get_trials(deepcopy=False)
    by_attempt = attempts_by_key(trials)
    point_params = {t.user_attrs.get("point"): t.params for t in trials if t.params and "point" in t.user_attrs}
    latest, now, pending = claims.latest(), time.time(), False
    for ts in spec.trials():
        claim, attempt, stale = latest.get(key_hash(ts.key)), 0, None
        if claim is not None:
            trial = by_attempt.get((ts.key, claim.attempt))
            if is_done(trial) and not retried(trial, retry_before):
                continue
            if not is_done(trial) and claim.alive(grace, now):
                pending = True
                continue
            attempt, stale = claim.attempt + 1, trial
        first_seed = spec.search is None or ts.seed == spec.seeds[0]
        if not first_seed and ts.point not in point_params:  # a search point's other seeds wait for its values
            pending = True
            continue
        if not claims.try_claim(ts.key, attempt):
            pending = True
            continue
        if stale is not None:
            mark_stale(study, stale, claim)
        return _record(spec, study, ts, attempt, point_params.get(ts.point) or ts.params)
    return "wait" if pending else "done"


def mark_stale(study, trial, claim) -> None:
    from optuna.trial import TrialState  # noqa: PLC0415

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, "fail_kind", STALE)
        if trial.state.is_finished():  # a failed trial run again (--retry-failed) keeps its error
            return
        storage.set_trial_user_attr(trial._trial_id, "error", f"its worker ({claim.host} pid {claim.pid}) stopped; "
                                                               f"the next attempt resumes its run folder")
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except Exception:  # noqa: BLE001 - another worker marked it first
        pass


def _record(spec: Spec, study, ts: TrialSpec, attempt: int, params: dict) -> Taken:
    """The Optuna trial of a claimed attempt, RUNNING, with its values (a new search point samples them)."""
    import optuna  # noqa: PLC0415
    from optuna.trial import FrozenTrial, TrialState  # noqa: PLC0415

    attrs = {"key": ts.key, "attempt": attempt, "point": ts.point, "seed": ts.seed, "run_name": ts.run_name}
    dists = distributions(spec)
    if params or spec.search is None:
        template = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None,
                               datetime_start=datetime.datetime.now(), datetime_complete=None, params=dict(params),
                               distributions={k: dists[k] for k in params}, user_attrs=attrs, system_attrs={},
                               intermediate_values={}, trial_id=-1)
        trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
        trial = optuna.trial.Trial(study, trial_id)
    else:  # a new search point: the sampler (TPE) chooses its values now, from every finished trial
        trial = study.ask(dists)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
    return Taken(ts, attempt, trial._trial_id, trial.number, dict(trial.params))
