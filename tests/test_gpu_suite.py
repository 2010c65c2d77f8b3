"""The staged GPU suite (benchmarks/gpu_suite.sh) in its CPU dry run, as CI
runs it: the stage structure, at most 6 output files, the headline table and
JSON, and a failing or hanging stage recorded while later stages still run.
The headline arithmetic is checked on a pytest-benchmark JSON written here."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("gpu_suite_report", os.path.join(ROOT, "benchmarks", "gpu_suite_report.py"))
report = sys.modules["gpu_suite_report"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up there
_spec.loader.exec_module(report)

STAGES = ["env", "op_tests", "headline", "rest"]
FILES = {"summary.md", "results.json", "logs.tar.gz"}


def _suite(out, *args, inject=None):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    if inject:
        env["GPU_SUITE_INJECT"] = inject
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_suite.sh"), "--dry-run", "--out", str(out),
                           *args], capture_output=True, text=True, env=env, timeout=600)
    with open(out / "results.json") as f:
        return proc, json.load(f)


def _stage(results, name):
    return next(s for s in results["stages"] if s["name"] == name)


def _step(stage, name):
    return next(s for s in stage["steps"] if s["name"] == name)


@pytest.fixture(scope="module")
def failed_op_stage(tmp_path_factory):
    """One dry run in which the op-tests stage fails (injected); the others run as usual."""
    out = tmp_path_factory.mktemp("gpu_suite")
    proc, results = _suite(out, inject="op_tests:fail")
    return out, proc, results


def test_dry_run_stage_structure_and_files(failed_op_stage):
    out, proc, results = failed_op_stage
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # a stage failed
    assert set(os.listdir(out)) == FILES and len(FILES) <= 6
    assert results["mode"].startswith("dry-run") and results["finished"] is True
    assert [s["name"] for s in results["stages"]] == STAGES
    assert [s["index"] for s in results["stages"]] == [1, 2, 3, 4]
    for s in results["stages"]:
        assert s["budget_s"] > 0 and s["elapsed_s"] is not None and s["steps"], s
    env = _stage(results, "env")
    assert env["status"] == "passed", env
    assert _step(env, "build")["status"] == "skipped" and "dry run" in _step(env, "build")["reason"]
    assert results["environment"]["torch"] and "build_info" in results["environment"]
    rest = _stage(results, "rest")
    assert rest["status"] == "passed", rest
    assert _step(rest, "memcheck")["status"] == "skipped"
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = set(tar.getnames())
    ran = [(s["name"], st["name"]) for s in results["stages"] for st in s["steps"] if st["command"]]
    assert {f"{a}-{b}.log" for a, b in ran} <= names, names
    assert "headline-train_bench.xml" in names


def test_injected_failure_is_recorded_and_later_stages_run(failed_op_stage):
    out, proc, results = failed_op_stage
    ops = _stage(results, "op_tests")
    assert ops["status"] == "failed"
    assert "injected failure" in ops["reason"]
    assert _step(ops, "injected_failure")["status"] == "failed"
    # the stage's own steps still ran: every CUDA op test collected and listed as skipped on this CPU
    op_tests = _step(ops, "op_tests")
    assert op_tests["status"] == "skipped" and op_tests["tests"]["skipped"] > 100, op_tests
    assert "no CUDA device" in op_tests["reason"]
    assert _step(ops, "graphed_training")["tests"]["skipped"] == 3
    headline = _stage(results, "headline")
    assert headline["status"] == "passed", headline
    for name in ("ops_bench", "train_bench"):
        tests = _step(headline, name)["tests"]
        assert tests["passed"] > 0 and tests["failed"] == 0, tests  # the CPU bodies ran once
        assert tests["skip_reasons"], tests  # the CUDA ones are listed as skipped
    summary = (out / "summary.md").read_text()
    assert "op_tests / injected_failure (failed): exit 1: injected failure (GPU_SUITE_INJECT)" in summary


def test_headline_table_and_json_shape(failed_op_stage):
    out, _, results = failed_op_stage
    rows = results["headline"]
    assert [r["key"] for r in rows] == [h.key for h in report.HEADLINE]
    for r in rows:
        assert r["verdict"] == "not measured" and r["reason"].startswith("dry run"), r
        assert r["target_text"]
    targets = {r["key"]: r["target"] for r in rows}
    assert targets["gp_b64_vs_reference"] == 5.0 and targets["gp_b1024_bandwidth"] == 0.70
    assert targets["clip_dcgan64_vs_foreach"] == 1.5 and targets["sn_dcgan64_vs_torch"] == 2.0
    assert targets["train_b64_vs_stock"] == 4.0 and targets["train_b64_vs_best_stock"] == 2.0
    assert targets["train_b64_penalty_overhead"] == 1.6 and targets["train_b256_bf16_peak"] == 0.25
    summary = (out / "summary.md").read_text()
    table = [ln for ln in summary.splitlines() if ln.startswith("| ") and (" | >= " in ln or " | <= " in ln)]
    assert len(table) == sum(h.target is not None for h in report.HEADLINE)
    assert "| measure | ours | baseline | ratio / value | target | verdict |" in summary
    for h in report.HEADLINE:
        assert f"| {h.label} |" in summary


def test_a_hanging_stage_is_stopped_at_its_budget(tmp_path):
    proc, results = _suite(tmp_path, "--stages", "op_tests,rest", "--budget", "op_tests=8", inject="op_tests:hang")
    assert proc.returncode == 1
    ops = _stage(results, "op_tests")
    assert ops["status"] == "timed out"
    assert _step(ops, "injected_hang")["status"] == "timed out"
    assert ops["elapsed_s"] < 8 + 25  # the budget plus the grace between SIGINT and SIGKILL
    assert [_step(ops, n)["status"] for n in ("op_tests", "graphed_training")] == ["not run", "not run"]
    assert _stage(results, "headline")["status"] == "not selected"
    assert "--stages" in _stage(results, "headline")["reason"]
    assert _stage(results, "rest")["status"] == "passed"
    assert set(os.listdir(tmp_path)) == FILES


def test_a_run_killed_mid_stage_keeps_the_stages_before(tmp_path):
    """What the device tool does at its limit: kill the run. The finished stages are already written."""
    env = dict(os.environ, PYTHON=sys.executable, GPU_SUITE_INJECT="op_tests:hang")
    proc = subprocess.Popen(["bash", os.path.join(ROOT, "benchmarks", "gpu_suite.sh"), "--dry-run", "--out",
                             str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    results, deadline = {}, time.monotonic() + 300
    try:
        while not (results.get("running") or {}).get("log", "").startswith("op_tests-"):
            assert time.monotonic() < deadline and proc.poll() is None, results
            time.sleep(0.5)
            if (tmp_path / "results.json").exists():
                results = json.loads((tmp_path / "results.json").read_text())
    finally:
        proc.kill()  # bash exec'd the driver: this is its process
        proc.wait()
        if results.get("running"):
            os.killpg(results["running"]["pid"], signal.SIGKILL)  # the hanging step, in its own process group
    assert [s["status"] for s in results["stages"]] == ["passed", "running", "pending", "pending"]
    assert set(os.listdir(tmp_path)) == FILES | {"current_step.log"}
    assert "time.sleep" in (tmp_path / "current_step.log").read_text()
    summary = (tmp_path / "summary.md").read_text()
    assert "still running or cut off" in summary and "Running when last written: op_tests-injected_hang.log" in summary


def test_bad_arguments_exit_2(tmp_path):
    for args in (["--stages", "nope"], ["--budget", "env=soon"]):
        proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_suite.sh"), "--dry-run", "--out",
                               str(tmp_path), *args], capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable))
        assert proc.returncode == 2 and "error:" in proc.stderr.splitlines()[-1], proc.stderr
    assert os.listdir(tmp_path) == []


def _bench(name, median, **extra):
    return dict(name=name, fullname=f"benchmarks/x.py::{name}", params={}, extra_info=extra,
                stats=dict(median=median, mean=median, stddev=0.0, min=median, rounds=5))


def test_headline_numbers_from_a_benchmark_json(tmp_path):
    h = {x.key: x for x in report.HEADLINE}
    benches = [
        _bench(h["gp_b64_vs_reference"].ours, 1e-4), _bench(h["gp_b64_vs_reference"].baseline, 6e-4),
        _bench(h["gp_b1024_bandwidth"].ours, 2e-3, fraction_of_copy_bw=0.65),
        _bench(h["train_b64_vs_stock"].ours, 0.010, cuda_graph="captured"),
        _bench(h["train_b64_vs_stock"].baseline, 0.035),
        _bench(h["train_b64_penalty_overhead"].baseline, 0.008),
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(dict(benchmarks=benches)))
    rows = {r["key"]: r for r in report.evaluate(report.benchmark_rows(str(path)), "stage cut")}
    assert rows["gp_b64_vs_reference"]["value"] == pytest.approx(6.0) and rows["gp_b64_vs_reference"]["verdict"] == "met"
    assert rows["gp_b1024_bandwidth"]["verdict"] == "NOT met"  # 65% < 70%
    assert rows["train_b64_vs_stock"]["value"] == pytest.approx(3.5) and rows["train_b64_vs_stock"]["verdict"] == "NOT met"
    assert rows["train_b64_penalty_overhead"]["value"] == pytest.approx(1.25)
    assert rows["train_b64_penalty_overhead"]["verdict"] == "met"
    assert rows["train_b64_graph"]["verdict"] == "met"
    missing = rows["train_b64_vs_best_stock"]
    assert missing["verdict"] == "not measured" and h["train_b64_vs_best_stock"].baseline in missing["reason"]
    assert "stage cut" in missing["reason"]
    assert rows["gp_b64_vs_stock"]["verdict"] == "not measured"
    table = report.headline_table(list(rows.values()))
    assert "| 6.00x | >= 5x | met |" in table and "| 65.0% | >= 70% | NOT met |" in table
