"""Studies end to end, as users run them: `python -m wgan_fast.study ...` in
real processes on the 2-D toy data (a few seconds a trial): a grid with two
workers (report, figures, one row per trial), a failing and a pruned trial,
kill -9 of the study process mid-trial and its resume."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("optuna", reason="the study extra (optuna) is not installed: pip install 'wgan_fast[study]'")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a tiny critic and generator on 8 Gaussians; a checkpoint every 10 steps so a killed trial resumes
TOY_BASE = {"preset": "toy-8gaussians", "batch_size": 64, "g_base": 16, "d_base": 16, "ckpt_every": 10,
            "tensorboard": False}


def study_env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", WGAN_FAST_STUDY_POLL="0.3", **extra)
    env.pop("WGAN_FAST_DEBUG", None)
    return env


def write_study(path, **definition):
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(definition, f)
    return str(path)


def study(*args, cwd, timeout=400, **env):
    return subprocess.run([sys.executable, "-m", "wgan_fast.study", *args], capture_output=True, text=True, cwd=cwd,
                          env=study_env(**env), timeout=timeout)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def metrics_steps(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line)["step"] for line in f if line.strip()]


def attempts_started(run_dir):
    """How many times a trial process was started in this run folder (worker.py heads each in trial.log)."""
    with open(os.path.join(run_dir, "trial.log")) as f:
        return sum(line.startswith("=== trial ") for line in f)


def test_grid_with_two_workers_end_to_end(tmp_path):
    yaml_path = write_study(tmp_path / "grid.yaml", name="grid", base=dict(TOY_BASE, sample_every=20),
                            grid={"gp_weight": [0.1, 10.0]}, seeds=[0, 1], budget={"steps": 20},
                            objective={"metric": "wdist", "every": 10})
    r = study("run", yaml_path, "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    folder = tmp_path / "studies" / "grid"
    rows = read_csv(folder / "results.csv")
    assert len(rows) == 4  # one row per trial: 2 points x 2 seeds
    assert {(float(r["gp_weight"]), int(r["seed"])) for r in rows} == {(g, s) for g in (0.1, 10.0) for s in (0, 1)}
    for row in rows:
        assert row["state"] == "COMPLETE" and int(row["steps"]) == 20 and float(row["seconds"]) > 0
        assert float(row["objective"]) == pytest.approx(float(row["wdist"]))  # the objective is the last wdist
        assert metrics_steps(row["run_dir"]) == [10, 20] and attempts_started(row["run_dir"]) == 1
        assert os.path.exists(os.path.join(row["run_dir"], "samples", "step_00000020.png"))
    # the two workers ran trials at the same time: the second started before the first ended
    assert r.stderr.index("trial 1 started") < r.stderr.index("trial 0 complete"), r.stderr
    report = (folder / "report.md").read_text()
    assert "| # | gp_weight | wdist (min) |" in report and report.count("| `") == 2
    for fig in ("objective_vs_steps.png", "objective_vs_time.png", "samples.png"):
        assert (folder / "figures" / fig).stat().st_size > 5000, fig
        assert f"figures/{fig}" in report
    status = study("status", "grid", cwd=tmp_path)
    assert status.returncode == 0 and status.stdout.count("COMPLETE") == 4, status.stdout + status.stderr
    # a second run of the same command finds everything done and runs nothing again
    again = study("run", yaml_path, "--no-report", cwd=tmp_path)
    assert again.returncode == 0 and "started" not in again.stderr, again.stderr
    assert all(attempts_started(row["run_dir"]) == 1 for row in rows)


def test_failing_and_pruned_trials_are_recorded_and_the_study_goes_on(tmp_path):
    # gp_weight 100 makes the penalty (the objective) far above the first trial's at the first report: the
    # median pruner stops it; gp_weight 1e38 overflows the penalty's gradients to inf (exit 3: non-finite)
    yaml_path = write_study(tmp_path / "fp.yaml", name="fp", base=dict(TOY_BASE, sample_every=20),
                            grid={"gp_weight": [0.1, 100.0, 1.0e38]}, budget={"steps": 20},
                            objective={"metric": "penalty", "every": 10},
                            pruner={"name": "median", "n_startup_trials": 1})
    r = study("run", yaml_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {float(r["gp_weight"]): r for r in read_csv(tmp_path / "studies/fp/results.csv")}
    assert rows[0.1]["state"] == "COMPLETE" and int(rows[0.1]["steps"]) == 20
    pruned = rows[100.0]
    assert pruned["state"] == "PRUNED" and int(pruned["steps"]) == 10  # stopped at its first measurement
    assert float(pruned["objective"]) == pytest.approx(float(pruned["penalty"]))  # recorded with its last value
    failed = rows[1.0e38]
    assert failed["state"] == "FAIL" and failed["error"].startswith("wgan_fast.study.trial: non-finite:")
    report = (tmp_path / "studies/fp/report.md").read_text()
    assert "Failed trials:" in report and "non-finite" in report
    assert "trial 1 pruned" in r.stderr and "trial 2 fail" in r.stderr
    # --retry-failed runs the failed trial once more (and fails again)
    again = study("run", yaml_path, "--retry-failed", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr.count(" started: ") == 1, again.stderr[-3000:]
    rows = {float(r["gp_weight"]): r for r in read_csv(tmp_path / "studies/fp/results.csv")}
    assert [rows[g]["attempts"] for g in (0.1, 100.0, 1.0e38)] == ["1", "1", "2"] and rows[1.0e38]["state"] == "FAIL"
    assert attempts_started(failed["run_dir"]) == 2


def _wait_for(predicate, timeout, what):
    t0 = time.time()
    while not predicate():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_of_the_study_mid_trial_then_the_same_command_resumes(tmp_path):
    yaml_path = write_study(tmp_path / "k.yaml", name="k", base=dict(TOY_BASE, sample_every=60),
                            grid={"gp_weight": [0.1]}, seeds=[0, 1], budget={"steps": 60},
                            objective={"metric": "wdist", "every": 10})
    first_run = tmp_path / "studies/k/trials/gp_weight-0.1-seed0"
    proc = subprocess.Popen([sys.executable, "-m", "wgan_fast.study", "run", yaml_path], cwd=tmp_path,
                            env=study_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: (first_run / "ckpt_00000020.pt").exists(), 200, "the first trial's checkpoint at step 20")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the study process only: its trial process ends by itself
        proc.wait()
    killed_at = max(metrics_steps(first_run))
    assert killed_at < 60, "the trial finished before the kill: the test did not test a resume"
    time.sleep(2.5)  # the orphaned trial process notices its study is gone within a second
    grown = max(metrics_steps(first_run))
    assert grown <= killed_at + 10, "the trial process went on training after its study was killed"

    r = study("run", yaml_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_csv(tmp_path / "studies/k/results.csv")
    assert [(r["state"], int(r["steps"])) for r in rows] == [("COMPLETE", 60), ("COMPLETE", 60)]
    by_seed = {int(r["seed"]): r for r in rows}
    assert int(by_seed[0]["attempts"]) == 2 and attempts_started(first_run) == 2  # resumed once
    assert int(by_seed[1]["attempts"]) == 1 and attempts_started(by_seed[1]["run_dir"]) == 1
    steps = metrics_steps(first_run)
    assert steps == sorted(set(steps)) and steps[-1] == 60  # each step once: the resume continued the checkpoint
    log = (first_run / "trial.log").read_text()
    assert "no checkpoint" not in log.split("attempt 2")[1]  # the second attempt started from a checkpoint
    assert "resuming" in r.stderr
    # the resumed trial's measurements reach back to before the kill (up to its checkpoint)
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "studies/k/optuna.journal")))
    trial = next(t for t in optuna.load_study(study_name="k", storage=storage).trials
                 if t.number == int(by_seed[0]["number"]))
    assert sorted(trial.intermediate_values) == [10, 20, 30, 40, 50, 60]


def test_a_search_samples_each_point_once_and_runs_it_for_every_seed(tmp_path):
    yaml_path = write_study(tmp_path / "s.yaml", name="s", base=dict(TOY_BASE, sample_every=10),
                            search={"lr_d": {"low": 1e-4, "high": 1e-2, "log": True},
                                    "n_critic": {"choices": [1, 2]}},
                            n_trials=2, seeds=[0, 1], budget={"steps": 10}, objective={"metric": "wdist", "every": 10})
    r = study("run", yaml_path, "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_csv(tmp_path / "studies/s/results.csv")
    assert sorted(r["state"] for r in rows) == ["COMPLETE"] * 4
    points = {}
    for row in rows:  # both seeds of a point share its sampled values
        points.setdefault((row["lr_d"], row["n_critic"]), []).append(int(row["seed"]))
        assert 1e-4 <= float(row["lr_d"]) <= 1e-2 and row["n_critic"] in ("1", "2")
    assert sorted(map(sorted, points.values())) == [[0, 1], [0, 1]]
    report = (tmp_path / "studies/s/report.md").read_text()
    assert "figures/optimization_history.png" in report and (tmp_path / "studies/s/figures/optimization_history.png").exists()


def test_an_fid_objective_is_measured_by_the_in_training_evaluation(tmp_path):
    """FID over the domain classifier's features every 2 steps, on a tiny Fashion-MNIST written as IDX files."""
    import numpy as np
    from helpers import write_idx

    data = tmp_path / "fashion"
    data.mkdir()
    rng = np.random.RandomState(0)
    for split, n in (("train", 64), ("t10k", 32)):
        write_idx(data / f"{split}-images-idx3-ubyte.gz", rng.randint(0, 255, (n, 28, 28)).astype(np.uint8), True)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", rng.randint(0, 10, n).astype(np.uint8), True)
    base = {"dataset": "fashion-mnist", "data_dir": str(data), "model": "mlp", "resolution": 28, "z_dim": 8,
            "g_base": 8, "d_base": 8, "batch_size": 8, "n_critic": 1, "sample_every": 4, "tensorboard": False,
            "device": "cpu"}
    yaml_path = write_study(tmp_path / "f.yaml", name="f", base=base, grid={"lr_d": [1e-4, 1e-3]},
                            budget={"steps": 4},
                            objective={"metric": "fid", "features": "classifier", "n": 16, "every": 2})
    r = study("run", yaml_path, cwd=tmp_path, WGAN_FAST_CACHE=str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_csv(tmp_path / "studies/f/results.csv")
    assert [row["state"] for row in rows] == ["COMPLETE", "COMPLETE"]
    for row in rows:
        assert float(row["objective"]) == pytest.approx(float(row["eval_fid"])) and float(row["objective"]) > 0
        evals = [json.loads(line) for line in open(os.path.join(row["run_dir"], "metrics.jsonl")) if "eval_fid" in line]
        assert [e["step"] for e in evals] == [2, 4] and all(e["eval_n"] == 16 for e in evals)
    assert "fid (classifier features, 16 samples vs 16 real)" in (tmp_path / "studies/f/report.md").read_text()


def test_report_figures_of_many_configurations_name_the_best_by_table_row(tmp_path, monkeypatch):
    """A search's 12 configurations: the curves name the best six by their table row (#1..#6, the rest grey as
    'the other 6'), the sample figure shows the best eight, titled by row; a short grid keeps its full labels."""
    from types import SimpleNamespace

    from wgan_fast.study import report, results

    long_keys = ["lr_g", "lr_d", "beta1", "beta2", "n_critic", "batch_size"]
    spec = SimpleNamespace(varied=long_keys, name="s", objective={"metric": "fid", "direction": "minimize"})
    grid_png = tmp_path / "samples" / "step_00000010.png"
    grid_png.parent.mkdir()
    from PIL import Image
    Image.new("RGB", (8, 8)).save(grid_png)
    groups = [results.Group(f"point{i:04d}", {k: 0.001 * (i + 1) for k in long_keys},
                            [{"state": "COMPLETE", "objective": float(i), "curve": [[5, 1.0, 30.0 - i], [10, 2.0, 20.0 - i]],
                              "run_dir": str(tmp_path), "seed": 0}]) for i in range(12)]
    legends, titles = [], []
    import matplotlib.axes
    real_legend, real_title = matplotlib.axes.Axes.legend, matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda ax, *a, **k: (
        legends.append([t for t in ax.get_legend_handles_labels()[1]]), real_legend(ax, *a, **k))[1])
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda ax, t, *a, **k: (
        titles.append(t), real_title(ax, t, *a, **k))[1])
    notes = []
    assert report._curves_by_step(groups, spec, str(tmp_path / "c.png"), notes)
    assert legends[-1] == [f"#{i} (n=1)" for i in range(1, 7)] + ["the other 6"]
    assert report._sample_grids(groups, spec, str(tmp_path / "g.png"), notes)
    assert [t.split("\n")[0] for t in titles if t.startswith("#")] == [f"#{i}" for i in range(1, 9)]
    short = SimpleNamespace(varied=["gp_weight"], name="s", objective=spec.objective)
    few = [results.Group(g.point, {"gp_weight": i}, g.rows) for i, g in enumerate(groups[:3])]
    assert report._curves_by_step(few, short, str(tmp_path / "c2.png"), notes)
    assert legends[-1] == [f"gp_weight={i} (n=1)" for i in range(3)]
