"""Two `study run` processes (two "machines": separate output folders) share
one study through a real PostgreSQL server that the test starts itself; every
grid point x seed runs exactly once."""
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

pytest.importorskip("optuna", reason="the study extra (optuna) is not installed: pip install 'wgan_fast[study]'")
pytest.importorskip("psycopg2", reason="psycopg2 (extra [study]) is not installed")

from test_study_claims import race_for_claims  # noqa: E402
from test_study import TOY_BASE, attempts_started, read_csv, study_env, write_study  # noqa: E402

PG_BIN = next((d for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
               if os.path.exists(os.path.join(d, "initdb"))), None)
if PG_BIN is None:
    pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway server on a free port: as user postgres when we are root (the server refuses root)."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = tempfile.mkdtemp(prefix="wgan_fast_pg_", dir="/tmp")
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
    data, port = os.path.join(folder, "data"), _free_port()
    subprocess.run(as_user + [f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run(as_user + [f"{PG_BIN}/pg_ctl", "-D", data, "-l", os.path.join(folder, "log"), "-w", "-o",
                              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_postgres_study_and_no_point_runs_twice(tmp_path, postgres_url):
    yaml_path = write_study(tmp_path / "pg.yaml", name="pg", base=dict(TOY_BASE, sample_every=10),
                            grid={"gp_weight": [0.1, 10.0]}, seeds=[0, 1], budget={"steps": 10},
                            objective={"metric": "wdist", "every": 10})
    machines = [tmp_path / "a", tmp_path / "b"]
    procs = [subprocess.Popen([sys.executable, "-m", "wgan_fast.study", "run", yaml_path, "--storage", postgres_url,
                               "--out-dir", str(m), "--no-report"], cwd=tmp_path, env=study_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in machines]
    outputs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    run_dirs = [d for m in machines for d in glob.glob(str(m / "pg" / "trials" / "*"))]
    names = [os.path.basename(d) for d in run_dirs]
    assert len(names) == 4 and len(set(names)) == 4  # each point x seed in exactly one machine's folder
    assert all(attempts_started(d) == 1 for d in run_dirs)  # each started once
    assert all("started" in err for _, err in outputs), "one worker ran every trial: no concurrency was tested"
    # the report from either machine reads every trial from the database
    r = subprocess.run([sys.executable, "-m", "wgan_fast.study", "report", "pg", "--out-dir", str(machines[0])],
                       cwd=tmp_path, env=study_env(), capture_output=True, text=True, timeout=200)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_csv(machines[0] / "pg" / "results.csv")
    assert sorted(r["state"] for r in rows) == ["COMPLETE"] * 4
    assert len({(r["gp_weight"], r["seed"]) for r in rows}) == 4


def test_racing_processes_claim_each_trial_once_on_postgres(postgres_url):
    race_for_claims("sql", postgres_url)
