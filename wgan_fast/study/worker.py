"""`study run`: N worker threads, each taking the next trial (schedule.py)
and running it as its own process (trial.py; torchrun for several processes a
trial), and one heartbeat thread keeping this process's claims alive.

A trial process that ends without having told Optuna its result (a crash, an
OOM kill, NaN, a bad config) is recorded as FAIL with the last line it wrote;
the study goes on. A trial whose claim another worker took over (this
process's heartbeat went missing for longer than the grace period) is
stopped, and its result left to the new attempt.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from . import schedule
from .claims import Claim, this_owner

HEARTBEAT_S = float(os.environ.get("WGAN_FAST_STUDY_HEARTBEAT", "10"))
GRACE_S = float(os.environ.get("WGAN_FAST_STUDY_GRACE", "120"))
POLL_S = float(os.environ.get("WGAN_FAST_STUDY_POLL", "2"))


@dataclass
class Running:
    taken: schedule.Taken
    proc: subprocess.Popen
    log_path: str
    superseded: bool = False


@dataclass
class Workers:
    spec: object
    study: object
    claims: object
    storage: str
    study_dir: str
    n: int
    retry_before: object = None  # --retry-failed: trials that failed before this datetime run again
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    running: dict = field(default_factory=dict)   # trial key -> Running
    counts: dict = field(default_factory=dict)    # state -> trials this process finished

    def run(self) -> dict:
        """Run until every trial is finished (here or by other workers); state counts of this process's trials."""
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        threads = [threading.Thread(target=self._loop, args=(slot,), daemon=True) for slot in range(self.n)]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stopping.set()
            for r in list(self.running.values()):
                _kill(r.proc, signal.SIGTERM)
            raise
        finally:
            self.stopping.set()
        return self.counts

    def _loop(self, slot: int) -> None:
        while not self.stopping.is_set():
            with self.lock:
                taken = schedule.take_next(self.spec, self.study, self.claims, GRACE_S, self.retry_before)
            if taken == "done":
                return
            if taken == "wait":
                self.stopping.wait(POLL_S)
                continue
            self._run_trial(taken, slot)

    def _run_trial(self, taken: schedule.Taken, slot: int) -> None:
        ts = taken.trial
        run_dir = os.path.join(self.study_dir, "trials", ts.run_name)
        os.makedirs(run_dir, exist_ok=True)
        log_path = os.path.join(run_dir, "trial.log")
        with self.lock:  # the run folder of every trial, failed ones too, in results.csv
            self.study._storage.set_trial_user_attr(taken.trial_id, "run_dir", os.path.abspath(run_dir))
        what = " ".join(f"{k}={v}" for k, v in taken.params.items())
        _say(f"trial {taken.number} started: {what} seed={ts.seed}" + (f" (attempt {taken.attempt + 1}, resuming "
                                                                       f"{run_dir})" if taken.attempt else ""))
        t0 = time.time()
        with open(log_path, "ab") as log:
            log.write(f"\n=== trial {taken.number}, attempt {taken.attempt + 1}, {time.ctime()} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(self._command(taken), stdout=log, stderr=subprocess.STDOUT,
                                    env=self._env(slot), stdin=subprocess.DEVNULL)
            running = self.running[ts.key] = Running(taken, proc, log_path)
            rc = proc.wait()
        del self.running[ts.key]
        if self.stopping.is_set() or running.superseded:
            return
        with self.lock:
            state = self._outcome(taken, rc, log_path)
        self.counts[state] = self.counts.get(state, 0) + 1
        _say(f"trial {taken.number} {state.lower()}: {what} seed={ts.seed} ({time.time() - t0:.0f} s)")

    def _command(self, taken) -> list[str]:
        entry = ["-m", "wgan_fast.study.trial", "--study", self.spec.name, "--trial-id", str(taken.trial_id),
                 "--study-dir", os.path.abspath(self.study_dir)]
        k = self.spec.nproc_per_trial
        if k > 1:
            return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={k}"] + entry
        return [sys.executable] + entry

    def _env(self, slot: int) -> dict:
        env = dict(os.environ, WGAN_FAST_STUDY_STORAGE=self.storage, WGAN_FAST_STUDY_OWNER=str(os.getpid()),
                   PYTHONUNBUFFERED="1")
        gpus = _visible_gpus()
        k = self.spec.nproc_per_trial
        if gpus:  # one GPU per process of a trial, the workers' sets disjoint while there are enough
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[(slot * k + i) % len(gpus)] for i in range(k))
        elif "OMP_NUM_THREADS" not in os.environ:  # the CPU's cores split between the workers' processes
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // (self.n * k)))
        return env

    def _outcome(self, taken, rc: int, log_path: str) -> str:
        """The trial's final state; a process that ended without telling Optuna is recorded as FAIL."""
        from optuna.trial import TrialState  # noqa: PLC0415

        storage = self.study._storage
        trial = storage.get_trial(taken.trial_id)
        if trial.state.is_finished():
            return trial.state.name
        error = last_line(log_path) or "(no output)"
        if rc < 0:
            error = f"killed by signal {signal.Signals(-rc).name} (out of memory?); last output: {error}"
        elif rc == 0:
            error = f"the trial process ended without a result; last output: {error}"
        storage.set_trial_user_attr(taken.trial_id, "error", error[-500:])
        storage.set_trial_user_attr(taken.trial_id, "fail_kind", "error")
        storage.set_trial_state_values(taken.trial_id, TrialState.FAIL)
        return "FAIL"

    def _heartbeat(self) -> None:
        owner = this_owner()
        while not self.stopping.wait(HEARTBEAT_S):
            mine = [Claim(r.taken.trial.key, r.taken.attempt, owner["host"], owner["pid"], owner["pid_start"], 0.0)
                    for r in list(self.running.values())]
            if not mine:
                continue
            try:
                with self.lock:
                    self.claims.heartbeat(mine)
                    latest = self.claims.latest()
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: the next beat retries
                _say(f"heartbeat failed ({type(exc).__name__}: {exc}); retrying")
                continue
            from .claims import key_hash  # noqa: PLC0415

            for r in list(self.running.values()):
                newest = latest.get(key_hash(r.taken.trial.key))
                if newest is not None and newest.attempt > r.taken.attempt:  # another worker took it over
                    r.superseded = True
                    _say(f"trial {r.taken.number}: another worker took it over (attempt {newest.attempt + 1}); "
                         f"stopping it here")
                    _kill(r.proc, signal.SIGKILL)


def last_line(path: str) -> str:
    """The last non-empty line a trial process wrote (its one-line error, or a traceback's last line)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _visible_gpus() -> list[str]:
    import torch  # noqa: PLC0415

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not n:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [g.strip() for g in visible.split(",")][:n] if visible else [str(i) for i in range(n)]


def _kill(proc: subprocess.Popen, sig) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def _say(text: str) -> None:
    print(f"[wgan_fast.study] {text}", file=sys.stderr, flush=True)
