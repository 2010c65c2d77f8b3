"""Staged GPU validation; run it through benchmarks/gpu_suite.sh (usage there).

Four stages, most important numbers first, each with its own time budget so
one stuck stage cannot eat the window. After every stage (and when a stage
starts) summary.md, results.json and logs.tar.gz in the output folder are
rewritten (atomically), so a run cut at its limit still returns every stage
before. While a step runs, its output goes to current_step.log there too.

  1 env       device facts, build for the device's arch only, build_info()
  2 op_tests  the native ops' CUDA tests + the graphed-vs-eager training test
  3 headline  the headline benchmarks (gpu_suite_report.HEADLINE)
  4 rest      the remaining CUDA tests, compute-sanitizer memcheck on the op tests

--dry-run runs the same stages on the CPU (CUDA_VISIBLE_DEVICES empty, one
thread): nothing is built, CUDA tests and benchmarks are collected and listed
as skipped, the headline benchmark bodies run once, untimed
(--benchmark-disable, as the CI smoke run does).

GPU_SUITE_INJECT=STAGE:fail|hang[,...] (for testing the suite itself) adds a
step to STAGE's start that fails, or that hangs until the stage's budget ends.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field

import gpu_suite_report as report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = [  # name, title, default budget (s); None: whatever is left of the total
    ("env", "build for this GPU and record the environment", 120),
    ("op_tests", "native ops' CUDA tests and the graphed-vs-eager training test", 120),
    ("headline", "headline benchmarks", 180),
    ("rest", "remaining CUDA tests and compute-sanitizer memcheck", None),
]
TOTAL_S = 480
MIN_STEP_S = 5  # a step that would get less is recorded as not run
GRACE_S = 20  # after SIGINT at a budget's end (pytest then writes its junit xml), before SIGKILL
OP_TEST_FILES = ["tests/test_interpolate.py", "tests/test_grad_penalty.py", "tests/test_clip.py",
                 "tests/test_spectral_norm.py", "tests/test_losses.py", "tests/test_amp_penalty.py"]
GRAPHED_TRAINING_TEST = "tests/test_graphs.py::test_graphed_and_eager_training_end_alike_on_gpu"
# Skip reasons that mean a CUDA test did not run on a GPU machine (tests/helpers.py, the `native` fixture).
CUDA_NOT_RUN = ("no CUDA device", "kernels unavailable")


@dataclass
class Step:
    name: str
    argv: list | None  # None: skipped, see skip_reason
    skip_reason: str | None = None
    env: dict = field(default_factory=dict)
    pytest: bool = False  # add --junitxml and read it back
    bench_json: bool = False  # add --benchmark-json and read it back
    needs: tuple = ()  # Python modules the step imports
    needs_program: str | None = None
    cuda_must_run: bool = False  # a CUDA test skipped on the GPU machine is a failure
    headline_tests: tuple = ()  # test functions whose headline cases (gpu_suite_report) must be selected
    after: object = None  # callable(suite, record, step) run when the step ends; may change the record


class Suite:
    def __init__(self, args):
        self.dry_run, self.out, self.python = args.dry_run, os.path.abspath(args.out), args.python
        os.makedirs(self.out, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="gpu_suite_")
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.total
        self.budgets = args.budgets
        self.selected = args.stages
        self.inject = args.inject
        self.results = dict(schema=1, mode="dry-run (CPU)" if self.dry_run else "gpu",
                            started_utc=_utc(), updated_utc=_utc(), finished=False, total_budget_s=args.total,
                            elapsed_s=0.0, out=self.out, running=None, environment={}, headline=[], benchmarks=[],
                            stages=[dict(index=i, name=name, title=title, budget_s=self.budgets.get(name, budget),
                                         status="pending", reason=None, elapsed_s=None, steps=[])
                                    for i, (name, title, budget) in enumerate(STAGES, 1)])
        self.child = None

    # ---- running one step ----------------------------------------------------------

    def env(self, extra=None):
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        if self.dry_run:
            env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, also where a GPU is present: CUDA parts are listed as skipped
            env.setdefault("OMP_NUM_THREADS", "1")  # untimed: one thread, so a busy shared CPU is not oversubscribed
        env.update(extra or {})
        return env

    def missing(self, modules):
        if not modules:
            return []
        code = "import importlib.util as u, sys\nfor m in sys.argv[1:]:\n" \
               "    try: ok = u.find_spec(m) is not None\n    except ImportError: ok = False\n" \
               "    print(m) if not ok else None"
        out = subprocess.run([self.python, "-c", code, *modules], capture_output=True, text=True, env=self.env())
        return out.stdout.split()

    def run_step(self, stage_name, step, stage_deadline):
        rec = dict(name=step.name, status=None, reason=None, elapsed_s=0.0, command=None, counts=None)
        if step.argv is None:
            rec.update(status="skipped", reason=step.skip_reason)
            return rec
        missing = self.missing(step.needs)
        if step.needs_program and shutil.which(step.needs_program) is None:
            missing.append(f"{step.needs_program} (program)")
        if missing:
            rec.update(status="skipped", reason=f"not installed here: {', '.join(missing)} (carry the wheels: "
                                                "docs/performance.md, How the GPU numbers are taken)")
            return rec
        base = os.path.join(self.work, f"{stage_name}-{step.name}")
        argv = list(step.argv) + ([f"--junitxml={base}.xml"] if step.pytest else []) \
            + ([f"--benchmark-json={base}.bench.json"] if step.bench_json else [])
        rec["command"] = " ".join(argv)
        timeout = min(stage_deadline, self.deadline) - time.monotonic()
        if timeout < MIN_STEP_S:
            rec.update(status="not run", reason=f"no time left in the budget ({max(timeout, 0):.1f} s, "
                                                f"under the {MIN_STEP_S} s a step needs)")
            return rec
        print(f"[gpu_suite]   {step.name}: {rec['command']} (up to {timeout:.0f} s)", flush=True)
        t = time.monotonic()
        rec["rc"], timed_out = self.execute(argv, step.env, timeout, f"{base}.log")
        rec["elapsed_s"] = round(time.monotonic() - t, 1)
        self.read_reports(rec, step, base)
        if timed_out:
            rec.update(status="timed out", reason=f"stopped at its budget after {rec['elapsed_s']:.0f} s"
                       + (f"; {rec['counts']} before that" if rec["counts"] else ""))
        elif rec["rc"] != 0:
            rec.update(status="failed", reason=self.failure_reason(step, rec, f"{base}.log"))
        else:
            tests = rec.get("tests")
            rec["status"] = "skipped" if tests and tests["passed"] == 0 and tests["skipped"] > 0 else "passed"
            if rec["status"] == "skipped":
                rec["reason"] = _skip_text(tests)
            not_run = _cuda_skips(tests) if (tests and step.cuda_must_run and not self.dry_run) else 0
            if not_run:
                rec.update(status="failed", reason=f"{not_run} CUDA tests skipped on the GPU machine: {_skip_text(tests)}")
        if step.after:
            step.after(self, rec, step)
        return rec

    def execute(self, argv, extra_env, timeout, log_path):
        """(exit status, timed out): argv in its own process group, output to current_step.log in the output
        folder while it runs (so a run cut there still returns it), then to log_path."""
        live = os.path.join(self.out, "current_step.log")
        with open(live, "w") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            self.child = subprocess.Popen(argv, cwd=ROOT, env=self.env(extra_env), stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
            # what a run cut from outside was doing (its process group too, so it can be ended)
            self.results["running"] = dict(log=os.path.basename(log_path), pid=self.child.pid, since_utc=_utc())
            self.write()
            try:
                rc, timed_out = self.child.wait(timeout=timeout), False
            except subprocess.TimeoutExpired:
                rc, timed_out = self.stop_child(), True
            self.child = None
            self.results["running"] = None
        shutil.move(live, log_path)
        return rc, timed_out

    def read_reports(self, rec, step, base):
        """The step's junit xml (test counts) and pytest-benchmark JSON (numbers), where it wrote them."""
        if step.pytest and os.path.exists(f"{base}.xml"):
            tests = rec["tests"] = report.junit_summary(f"{base}.xml")
            rec["counts"] = f"{tests['passed']} passed, {tests['failed'] + tests['errors']} failed, {tests['skipped']} skipped"
        if step.bench_json and os.path.exists(f"{base}.bench.json"):
            rows = report.benchmark_rows(f"{base}.bench.json")
            if rec.get("tests"):  # pytest-benchmark also saves the case a budget's end interrupted: not a result
                rows = [r for r in rows if r["name"] in rec["tests"]["passed_tests"]]
            self.results["benchmarks"] += rows
            rec["benchmarks"] = len(rows)

    def stop_child(self):
        """SIGINT to the step's process group (pytest then writes its report), SIGKILL after GRACE_S."""
        for sig, wait in ((signal.SIGINT, GRACE_S), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.child.pid, sig)
            except ProcessLookupError:
                break
            try:
                return self.child.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        return self.child.wait()

    @staticmethod
    def failure_reason(step, rec, log_path):
        tests = rec.get("tests")
        if tests and (tests["failures"] or tests["failed"] or tests["errors"]):
            return f"{tests['failed'] + tests['errors']} failed: " + " | ".join(tests["failures"])
        if step.pytest and rec["rc"] == 5:
            return "pytest selected no tests (exit 5): the selector matches nothing"
        with open(log_path, errors="replace") as f:
            tail = [ln.strip() for ln in f.read().splitlines()[1:] if ln.strip()][-3:]  # [0]: the command
        return f"exit {rec['rc']}: " + " | ".join(tail)[-600:]

    # ---- stages --------------------------------------------------------------------

    def run(self):
        for stage in self.results["stages"]:
            if self.selected and stage["name"] not in self.selected:
                stage.update(status="not selected", reason="not in --stages")
                continue
            if stage["budget_s"] is None:  # the last stage: what is left of the total
                stage["budget_s"] = round(max(self.deadline - time.monotonic(), 0), 1)
            stage["status"] = "running"
            print(f"[gpu_suite] stage {stage['index']} {stage['name']}: {stage['title']} "
                  f"(budget {stage['budget_s']:.0f} s)", flush=True)
            self.write()
            t = time.monotonic()
            for step in self.steps(stage["name"]):
                stage["steps"].append(self.run_step(stage["name"], step, t + stage["budget_s"]))
            stage["elapsed_s"] = round(time.monotonic() - t, 1)
            stage["status"], stage["reason"] = _stage_status(stage["steps"])
            print(f"[gpu_suite] stage {stage['index']} {stage['name']}: {stage['status']} in {stage['elapsed_s']:.0f} s"
                  + (f" ({stage['reason']})" if stage["reason"] else ""), flush=True)
            self.write()
        self.results["finished"] = True
        self.write()
        print(report.headline_table(self.results["headline"]), flush=True)
        print(f"[gpu_suite] results in {self.out}", flush=True)
        # a GPU run passes when every selected stage passed; a dry run also accepts the stages it skips
        fine = {"passed", "not selected", "skipped"} if self.dry_run else {"passed", "not selected"}
        bad = [s for s in self.results["stages"] if s["status"] not in fine]
        return 1 if bad else 0

    def steps(self, stage):
        """A stage's steps, made one by one (a later step may depend on what an earlier one recorded)."""
        inject = self.inject.get(stage)
        if inject == "fail":
            yield Step("injected_failure", [self.python, "-c", "import sys; sys.exit('injected failure (GPU_SUITE_INJECT)')"])
        elif inject == "hang":
            yield Step("injected_hang", [self.python, "-c", "import time; time.sleep(3600)"])
        yield from getattr(self, f"steps_{stage}")()

    def _pytest(self, *args):
        # -v: one line per test, so the log of a step cut at its budget says where it was
        return [self.python, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rfEs", *args]

    def steps_env(self):
        probe = os.path.join(self.work, "device.json")
        argv = [self.python, "benchmarks/gpu_suite_env.py", "device", probe]
        yield Step("device", argv if self.dry_run else argv + ["--require-cuda"], after=_record_env(probe))
        arch = self.results["environment"].get("compute_capability")
        if self.dry_run:
            yield Step("build", None, skip_reason="dry run: the extension already built here is used")
        elif not arch:
            yield Step("build", [self.python, "-c", "import sys; sys.exit('no CUDA device found: no arch to build for')"])
        else:
            cuda_home = os.environ.get("CUDA_HOME") or ("/usr/local/cuda" if os.path.exists("/usr/local/cuda/bin/nvcc") else "")
            env = dict(TORCH_CUDA_ARCH_LIST=arch, MAX_JOBS=os.environ.get("MAX_JOBS", "16"), WGAN_FAST_CUDA="1")
            if cuda_home:
                env["CUDA_HOME"] = cuda_home
            yield Step("build", [self.python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-e", "."],
                       env=env)
        probe = os.path.join(self.work, "build.json")
        argv = [self.python, "benchmarks/gpu_suite_env.py", "build", probe]
        yield Step("build_info", argv if self.dry_run else argv + ["--require-cuda"], after=_record_env(probe))

    def _test_env(self):
        return {} if self.dry_run else {"WGAN_FAST_REQUIRE_NATIVE": "1"}

    def steps_op_tests(self):
        yield Step("op_tests", self._pytest(*OP_TEST_FILES, "-k", "cuda"), pytest=True, needs=("pytest",),
                   env=self._test_env(), cuda_must_run=True)
        yield Step("graphed_training", self._pytest(GRAPHED_TRAINING_TEST), pytest=True,
                   needs=("pytest", "PIL", "matplotlib"), env=self._test_env(), cuda_must_run=True)

    def steps_headline(self):
        mode = ["--benchmark-disable"] if self.dry_run else ["-k", "cuda"]
        ops_files = ["benchmarks/test_bench_grad_penalty.py", "benchmarks/test_bench_clip.py",
                     "benchmarks/test_bench_spectral_norm.py"]
        ops_tests = ("test_fwd_bwd", "test_bandwidth_b1024", "test_clip", "test_spectral_norm_step")
        for name, files, tests in (("ops_bench", ops_files, ops_tests),
                                   ("train_bench", ["benchmarks/test_bench_train.py"], ("test_train_iteration",))):
            yield Step(name, self._pytest(*files, "-m", "headline", *mode), pytest=True, bench_json=True,
                       needs=("pytest", "pytest_benchmark"), cuda_must_run=True, headline_tests=tests,
                       after=_check_headline_selected)

    def steps_rest(self):
        others = sorted(set(glob.glob(os.path.join(ROOT, "tests", "test_*.py")))
                        - {os.path.join(ROOT, f) for f in OP_TEST_FILES + ["tests/test_gpu_suite.py"]})
        others = [os.path.relpath(f, ROOT) for f in others]
        yield Step("cuda_tests", self._pytest(*others, "-k", "cuda or gpu", "--deselect", GRAPHED_TRAINING_TEST),
                   pytest=True, needs=("pytest",), env=self._test_env(), cuda_must_run=True)
        if self.dry_run:
            yield Step("memcheck", None, skip_reason="dry run: compute-sanitizer needs a GPU")
            return
        # No caching allocator: an out-of-bounds access then leaves its allocation instead of landing in the
        # pool. opcheck left out: it re-runs the same kernels through torch's op checks, slowly under memcheck.
        yield Step("memcheck", ["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "9",
                                *self._pytest(*OP_TEST_FILES[:4], "-k", "cuda and not opcheck")],
                   pytest=True, needs=("pytest",), needs_program="compute-sanitizer", after=_record_memcheck,
                   env={"PYTORCH_NO_CUDA_MEMORY_CACHING": "1", **self._test_env()})

    # ---- output --------------------------------------------------------------------

    def write(self):
        """summary.md, results.json and logs.tar.gz in the output folder, each replaced atomically."""
        self.results["updated_utc"] = _utc()
        self.results["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        self.results["headline"] = report.evaluate(self.results["benchmarks"], self.why_not_measured(),
                                                   name_missing=not self.dry_run)
        report.write_atomically(os.path.join(self.out, "results.json"), json.dumps(self.results, indent=1, default=str))
        report.write_atomically(os.path.join(self.out, "summary.md"), report.summary_markdown(self.results))
        tmp = os.path.join(self.out, ".logs.tar.gz.tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(glob.glob(os.path.join(self.work, "*"))):
                tar.add(path, arcname=os.path.basename(path))
        os.replace(tmp, os.path.join(self.out, "logs.tar.gz"))

    def why_not_measured(self):
        if self.dry_run:
            return "dry run (CPU, bodies run once untimed)"
        stage = next(s for s in self.results["stages"] if s["name"] == "headline")
        return f"headline stage {stage['status']}" + (f": {stage['reason']}" if stage["reason"] else "")

    def interrupted(self, signum, frame):
        if self.child is not None:
            self.stop_child()
        for stage in self.results["stages"]:
            if stage["status"] == "running":
                stage.update(status="interrupted", reason=f"signal {signum} while it ran")
        self.write()
        sys.exit(128 + signum)


# ---- what some steps record ----------------------------------------------------------

def _record_env(path):
    def after(suite, rec, step):
        if os.path.exists(path):
            with open(path) as f:
                suite.results["environment"].update(json.load(f))
    return after


def _check_headline_selected(suite, rec, step):
    """Every headline row's CUDA benchmark must be among those the step selected (else the spec drifted)."""
    tests = rec.get("tests")
    if not tests or rec["status"] not in ("passed", "skipped"):
        return
    wanted = {n for n in report.headline_benchmarks() if n.split("[")[0] in step.headline_tests}
    absent = sorted(wanted - set(tests["selected"]))
    if absent:
        rec.update(status="failed", reason=f"headline benchmarks not selected: {', '.join(absent)}")


def _record_memcheck(suite, rec, step):
    path = os.path.join(suite.work, "rest-memcheck.log")
    if not os.path.exists(path):
        return
    with open(path, errors="replace") as f:
        found = re.findall(r"ERROR SUMMARY: (\d+) error", f.read())
    rec["memcheck_errors"] = int(found[-1]) if found else None
    if found and int(found[-1]) > 0:
        rec.update(status="failed", reason=f"compute-sanitizer memcheck: {found[-1]} errors (see rest-memcheck.log)")


def _stage_status(steps):
    states = [s["status"] for s in steps]
    reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in steps if s["reason"] and s["status"] != "passed")
    for status in ("timed out", "failed"):
        if status in states:
            return status, reasons
    if "not run" in states:  # steps left without time are a time-out of the stage
        return "timed out", reasons
    if states and all(s == "skipped" for s in states):
        return "skipped", reasons
    return "passed", reasons or None


def _cuda_skips(tests):
    return sum(n for reason, n in tests["skip_reasons"].items() if any(m in reason for m in CUDA_NOT_RUN))


def _skip_text(tests):
    return "; ".join(f"{n} x {reason}" for reason, n in sorted(tests["skip_reasons"].items(), key=lambda kv: -kv[1]))


def _parse_inject(text, names):
    """{stage: "fail" | "hang"} from GPU_SUITE_INJECT, or None when malformed."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        stage, _, what = item.partition(":")
        if stage not in names or what not in ("fail", "hang"):
            return None
        out[stage] = what
    return out


def _utc():
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def parse_args(argv=None):
    names = [s[0] for s in STAGES]
    p = argparse.ArgumentParser(prog="gpu_suite.sh", description="Staged GPU validation (see benchmarks/gpu_suite.py).")
    p.add_argument("--dry-run", action="store_true", help="run the stages on the CPU: CUDA parts listed as skipped")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu_results",
                   help="output folder (default $OUT, else ./gpu_results)")
    p.add_argument("--total", type=float, default=TOTAL_S, help=f"seconds for the whole run (default {TOTAL_S})")
    p.add_argument("--stages", default=None, help=f"comma-separated subset of {','.join(names)} (default all)")
    p.add_argument("--budget", action="append", default=[], metavar="STAGE=SECONDS",
                   help="a stage's time budget (defaults: " + ", ".join(f"{n}={b or 'the rest'}" for n, _, b in STAGES) + ")")
    p.add_argument("--python", default=os.environ.get("PYTHON") or sys.executable, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.stages = args.stages.split(",") if args.stages else None
    for name in args.stages or []:
        if name not in names:
            p.error(f"--stages: unknown stage {name!r} (stages: {', '.join(names)})")
    args.budgets = {}
    for item in args.budget:
        name, _, secs = item.partition("=")
        try:
            args.budgets[name] = float(secs)
        except ValueError:
            p.error(f"--budget {item!r}: expected STAGE=SECONDS")
        if name not in names:
            p.error(f"--budget: unknown stage {name!r} (stages: {', '.join(names)})")
    args.inject = _parse_inject(os.environ.get("GPU_SUITE_INJECT", ""), names)
    if args.inject is None:
        p.error(f"GPU_SUITE_INJECT={os.environ['GPU_SUITE_INJECT']!r}: expected STAGE:fail|hang[,...] "
                f"(stages: {', '.join(names)})")
    return args


def main(argv=None):
    suite = Suite(parse_args(argv))
    signal.signal(signal.SIGTERM, suite.interrupted)
    signal.signal(signal.SIGINT, suite.interrupted)
    try:
        return suite.run()
    finally:
        shutil.rmtree(suite.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
