"""What `train` tells its caller while it runs, and what it returns.

A callback is any callable taking an Event; it is called on rank 0 at each log
interval ("log": the interval's losses, rates, lr) and after each evaluation
("eval": the metric, its sample counts, the best so far). Returning True asks
training to stop: every rank stops after the same step, with a final grid and
checkpoint, and the result says "callback".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class Event:
    kind: str       # "log" or "eval"
    step: int       # generator steps done
    values: dict


Callback = Callable[[Event], Optional[bool]]


@dataclass
class TrainResult:
    run_dir: str
    step: int                                       # generator steps done
    stop_reason: str                                # "steps", "time limit" or "callback"
    last_values: dict = field(default_factory=dict)  # the last log interval's values
    last_eval: dict = field(default_factory=dict)    # the last evaluation's values (empty without evaluations)
    best: dict = field(default_factory=dict)         # {"step": s, metric: value} of the best evaluation
    seconds: float = 0.0                             # wall time of this call


def notify(callbacks, event: Event) -> bool:
    """Call every callback (none is skipped); True when any asks to stop."""
    stop = False
    for cb in callbacks:
        stop = bool(cb(event)) or stop
    return stop
