"""The training loop: config -> data -> models -> iterations -> logs, grids,
evaluations, checkpoints; read it top to bottom."""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time

import torch

from .. import checkpoint, graphs, models
from ..errors import CheckpointError, NonFiniteError, head
from ..runlog import RunLog
from ..step import Metrics, Parts
from . import distributed, folder
from .hooks import Event, TrainResult, notify
from .iteration import Iteration, NoiseDraws, draw_inputs, ema_weight, runner
from .state import TrainState, autocast_of


def train(cfg: dict, data=None, callbacks=()) -> TrainResult:
    """Train per `cfg`. `data` may inject a batch stream (tests); `callbacks`
    hear each log interval and evaluation and may stop the run (hooks.py)."""
    t0 = time.time()
    rank, world, device = distributed.setup(cfg)
    run_dir = folder.run_dir_of(cfg)
    torch.manual_seed(cfg["seed"] * 1000 + rank)
    precision, autocast = autocast_of(cfg, device)
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0  # torchrun --max-restarts resumes
    saved, last_good = folder.prepare(cfg, run_dir, cfg["resume"] or restarted, rank, world)

    data = data if data is not None else _make_stream(cfg, device, rank, world)
    no_graphs = _why_no_graphs(cfg, device, world, precision, rank)
    s = TrainState.create(cfg, device, rank, world, data, precision, capturable=not no_graphs)
    if saved:
        _load(s, saved, last_good)
    metrics = Metrics(device)
    parts = Parts(cfg, s.G, s.D, s.opt_g, s.opt_d, s.scaler_g, s.scaler_d, autocast,
                  distributed.flat_all_reduce(world), metrics)
    ema_w = torch.zeros((), device=device)  # a tensor, so a captured EMA update reads this step's weight
    iteration = Iteration(cfg, parts, s.G_ema, ema_w)
    run_iteration, noise = runner(iteration, no_graphs), NoiseDraws(cfg, s)
    log = RunLog(run_dir, cfg, cfg["steps"], enabled=rank == 0, start_step=s.step,
                 resolved=dict(device=str(device), precision=precision))
    grids = SampleGrids(cfg, s)
    clock = Clock(cfg, device, s.step)
    result = TrainResult(run_dir, s.step, "steps", best=s.best)

    while s.step < cfg["steps"]:
        inputs = draw_inputs(s, noise, cfg["n_critic"])
        ema_w.fill_(ema_weight(cfg["ema"], s.step))
        iteration.phase = (s.step * cfg["n_critic"]) % cfg["lazy_reg"]
        run_iteration(inputs)
        clock.count(sum(x.shape[0] for x in inputs.reals) * world)
        s.sched_g.step(), s.sched_d.step()
        s.step += 1
        # every rank stops at the same step (one sync per step, only with a time limit)
        stop = "time limit" if clock.limited and distributed.any_rank(clock.out_of_time(), world, device) else None
        last = s.step == cfg["steps"] or stop is not None
        wants_stop = False
        if _due(s.step, cfg["log_every"], last):
            result.last_values = log_interval(s, metrics, clock, log, last_good)
            wants_stop |= rank == 0 and notify(callbacks, Event("log", s.step, result.last_values))
        if _due(s.step, cfg["sample_every"], last):
            grids.write(log, s.step)
        if cfg["eval_every"] and _due(s.step, cfg["eval_every"], last) and rank == 0:
            with clock.paused():  # images/s counts training time only
                result.last_eval = evaluate(s, log, run_dir)
            wants_stop |= notify(callbacks, Event("eval", s.step, result.last_eval))
        if callbacks and distributed.any_rank(wants_stop, world, device):
            stop = stop or "callback"
            if not _due(s.step, cfg["sample_every"], last):  # a stopped run ends with its grid, as any other
                grids.write(log, s.step)
        if _due(s.step, cfg["ckpt_every"], last or stop is not None):
            last_good = save_checkpoint(s, metrics, run_dir, last_good) or last_good
        if stop:
            result.stop_reason = stop
            break
    log.finish()
    result.step, result.best, result.seconds = s.step, dict(s.best), time.time() - t0
    return result


def _due(step, every, last) -> bool:
    return step % every == 0 or last


def _make_stream(cfg, device, rank, world):
    from .. import data  # noqa: PLC0415

    return data.make_stream(cfg, device=device, rank=rank, world_size=world)


def _why_no_graphs(cfg, device, world, precision, rank) -> str | None:
    if not cfg["cuda_graphs"]:
        return "cuda_graphs=false"
    why = graphs.unsupported_reason(cfg, device, world, precision)
    if why and device.type == "cuda" and rank == 0:
        print(f"[wgan_fast] CUDA graphs off: {why}", file=sys.stderr)
    return why


class Clock:
    """Wall time: the run's time limit, and images/s over training time only."""

    def __init__(self, cfg, device, start_step):
        self.limit_min = cfg["max_minutes"] or (cfg["cpu_max_minutes"] if device.type == "cpu" else 0.0)
        self.limited = self.limit_min > 0
        self.t_start = self.t_log = time.time()
        self.images, self.start_step = 0, start_step

    def count(self, images):
        self.images += images

    def out_of_time(self) -> bool:
        return self.limited and (time.time() - self.t_start) / 60 >= self.limit_min

    def images_per_s(self) -> float:
        now = time.time()
        rate = self.images / max(now - self.t_log, 1e-9)
        self.t_log, self.images = now, 0
        return rate

    @contextlib.contextmanager
    def paused(self):
        t = time.time()
        try:
            yield
        finally:
            self.t_log += time.time() - t


def _load(s: TrainState, saved: dict, path: str) -> None:
    """Resume from a checkpoint whose entries passed the check; weights or
    state that do not fit this run are a CheckpointError naming the file."""
    try:
        s.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"{path}: its state does not fit this run ({type(exc).__name__}: {head(exc)}); resume "
                              f"from an intact checkpoint, or start afresh with --overwrite true") from None


def log_interval(s: TrainState, metrics: Metrics, clock: Clock, log: RunLog, last_good) -> dict:
    """The interval's values (one host sync), checked finite, to metrics.jsonl and the progress line."""
    values = metrics.fetch_and_reset()
    values.update(lr_g=s.sched_g.get_last_lr()[0], lr_d=s.sched_d.get_last_lr()[0],
                  images_per_s=clock.images_per_s(),
                  skipped_files=getattr(s.data, "skipped_files", 0))  # unreadable image files so far
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    # GradScaler skips overflowing fp16 steps and halves its scale: only overflow that persists at a
    # scale below 1 (unscaled values themselves non-finite) is a non-finite run, not its first back-offs
    if values["skipped_steps"] > 0 and values["critic_steps"] == 0 and s.scaler_d.get_scale() < 1.0:
        bad.append("loss (every fp16 step of the interval overflowed)")
    if bad:
        raise NonFiniteError(f"non-finite {', '.join(bad)} at generator step {s.step}; training stopped before "
                             f"using the NaN weights ({_where(last_good)}); resume with --resume true after lowering "
                             f"lr_d/lr_g, or set --on-nonfinite rollback")
    log.metrics(s.step, values)
    log.progress(s.step, values, clock.start_step, clock.limit_min)
    return values


def _where(last_good) -> str:
    return f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"


def save_checkpoint(s: TrainState, metrics: Metrics, run_dir: str, last_good) -> str | None:
    """Write the checkpoint (rank 0; collective). Nothing non-finite is ever
    written, so rotation never drops the last finite checkpoint for a NaN one."""
    bad = s.nonfinite_parts()
    if not torch.isfinite(metrics.buf).all():
        bad.append("losses")
    if bad:
        raise NonFiniteError(f"non-finite {', '.join(bad)} at generator step {s.step}, found before writing its "
                             f"checkpoint ({_where(last_good)}); resume with --resume true after lowering lr_d/lr_g, "
                             f"or set --on-nonfinite rollback")
    state = s.state_dict()
    return checkpoint.save(state, run_dir, s.step, s.cfg["keep_ckpts"]) if s.rank == 0 else None


class SampleGrids:
    """The sample grid of fixed noise (one row per class when conditional); for
    2-D toys, real vs generated points over the critic's contours."""

    def __init__(self, cfg, s: TrainState):
        self.cfg, self.s = cfg, s
        self.num_classes = cfg["num_classes"] if cfg["conditional"] else 0
        k = self.num_classes
        self.n = cfg["n_samples"] if not k else k * max(1, cfg["n_samples"] // k)
        self.z = torch.randn(self.n, cfg["z_dim"], generator=torch.Generator().manual_seed(cfg["seed"] + 12345))
        self.z = self.z.to(s.device)
        self.y = torch.arange(k).repeat_interleave(self.n // k).to(s.device) if k else None
        self.toy_gen = torch.Generator(device=s.device).manual_seed(cfg["seed"] + 54321)

    def write(self, log: RunLog, step: int) -> None:
        s, cfg = self.s, self.cfg
        with torch.no_grad():
            grid = s.G_ema(self.z, self.y) if cfg["ema"] > 0 else s.G.eval()(self.z, self.y)
            s.G.train()
        if grid.dim() == 4:
            log.samples(step, grid, nrow=(self.n // self.num_classes) if self.num_classes else int(self.n ** 0.5))
        elif s.rank == 0:
            from ..data import toys  # noqa: PLC0415

            real = toys.sample(cfg["dataset"], 1024, torch.Generator().manual_seed(cfg["seed"]))
            with torch.no_grad():
                fake = s.G(torch.randn(len(real), cfg["z_dim"], device=s.device, generator=self.toy_gen))
            log.toy_plot(step, real, fake, s.D)


_EVALUATORS = {}  # one per (run folder, process): its reference features are computed once


def evaluate(s: TrainState, log: RunLog, run_dir: str) -> dict:
    """Score the EMA generator (rank 0); keep the best state as best.pt."""
    from .. import metrics  # noqa: PLC0415

    cfg = s.cfg
    if run_dir not in _EVALUATORS:
        _EVALUATORS[run_dir] = metrics.Evaluator(cfg, s.device, metrics=(cfg["eval_metric"],),
                                                 n_real=cfg["eval_n_real"], split="test",
                                                 features=cfg["eval_features"])
    G = s.G_ema if cfg["ema"] > 0 else s.G.eval()
    num_classes = cfg["num_classes"] if cfg["conditional"] else 0
    result = _EVALUATORS[run_dir].score(lambda n: models.sample_images(
        G, n, z_dim=cfg["z_dim"], num_classes=num_classes, device=s.device, seed=cfg["seed"]), cfg["eval_n"])
    s.G.train()
    key = cfg["eval_metric"].replace("-", "_")  # class-cov's number is result["class_cov"]
    values = {f"eval_{key}": result[key], "eval_n": result["n_fake"], "eval_n_real": result["n_real"]}
    if "class_min_share" in result:
        values["eval_class_min_share"] = result["class_min_share"]
    if math.isfinite(result[key]) and (key not in s.best or result[key] < s.best[key]):
        s.best = {"step": s.step, key: result[key]}
        checkpoint.atomic_save(s.models_state_dict(), os.path.join(run_dir, checkpoint.BEST))
    values[f"best_{key}"] = s.best.get(key, float("nan"))
    values["eval_features"] = cfg["eval_features"]
    log.metrics(s.step, values)
    return values


def train_with_rollback(cfg, callbacks=()) -> TrainResult | None:
    """Run; on a non-finite loss with on_nonfinite=rollback, resume from the last
    good checkpoint with both learning rates halved (at most 3 times)."""
    for attempt in range(4):
        try:
            return train(cfg, callbacks=callbacks)
        except NonFiniteError as exc:
            if cfg["on_nonfinite"] != "rollback" or attempt == 3:
                raise
            print(f"\n[wgan_fast] {exc}\n[wgan_fast] rolling back with lr x 0.5", file=sys.stderr)
            cfg = dict(cfg, resume=True, overwrite=False, lr_g=cfg["lr_g"] * 0.5, lr_d=cfg["lr_d"] * 0.5)
    return None
