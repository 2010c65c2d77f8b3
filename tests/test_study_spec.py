"""The study definition is checked before anything runs, each error naming its
key; bad input from the command line is one line with its exit code."""
import copy
import os
import subprocess
import sys

import pytest

pytest.importorskip("optuna", reason="the study extra (optuna) is not installed: pip install 'wgan_fast[study]'")

from wgan_fast import config, errors  # noqa: E402
from wgan_fast.study import cli, presets, spec as spec_mod  # noqa: E402
from wgan_fast.study.spec import StudySpecError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GOOD = {"name": "s", "base": {"preset": "toy-8gaussians", "batch_size": 64}, "grid": {"lr_d": [1e-4, "1e-3"]},
        "seeds": [0, 1], "budget": {"steps": 20}, "objective": {"metric": "wdist", "every": 10}}


def _with(path, value, definition=None):
    """A copy of the definition (GOOD) with the value at the dotted path set (or deleted)."""
    d = copy.deepcopy(GOOD if definition is None else definition)
    parts = path.split(".")
    node = d
    for p in parts[:-1]:
        node = node[p]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return d


DELETE = object()

BAD = [  # (key path, value, what the error must name)
    ("bogus", 1, "bogus"),
    ("name", DELETE, "name"),
    ("name", "a b/c", "name"),
    ("base.bogus_key", 1, "base.bogus_key"),
    ("base.seed", 3, "base.seed"),
    ("base.out_dir", "x", "base.out_dir"),
    ("base.steps", 10, "base.steps"),
    ("base.batch_size", "many", "base: batch_size"),
    ("base.preset", "no-such-preset", "base: preset"),
    ("base", [1, 2], "base"),
    ("grid", {}, "grid: is empty"),
    ("grid", DELETE, "grid"),
    ("grid.bogus_key", [1, 2], "grid.bogus_key"),
    ("grid.lr_d", [], "grid.lr_d"),
    ("grid.lr_d", 1e-4, "grid.lr_d"),
    ("grid.lr_d", [1e-4, "abc"], "grid.lr_d[1]"),
    ("grid.lr_d", [1e-4, [1]], "grid.lr_d[1]"),
    ("grid.lr_d", [1e-4, -1.0], "grid.lr_d[1]"),
    ("grid.batch_size", [64, 1.5], "grid.batch_size[1]"),
    ("grid.algorithm", ["gan", "wgan-xx"], "grid.algorithm[1]"),
    ("grid.lr_d", [1e-4, 1e-4], "grid.lr_d"),
    ("grid.seed", [1, 2], "grid.seed"),
    ("grid.eval_every", [0, 5], "grid.eval_every"),  # fine for a log metric; see the fid case below
    ("search", {"lr_d": {"low": 1e-5, "high": 1e-3}}, "grid"),  # both grid and search
    ("n_trials", 5, "n_trials"),
    ("seeds", [], "seeds"),
    ("seeds", [0, "a"], "seeds[1]"),
    ("seeds", [1, 1], "seeds"),
    ("budget", DELETE, "budget"),
    ("budget", {}, "budget"),
    ("budget.steps", 0, "budget.steps"),
    ("budget.minutes", -1, "budget.minutes"),
    ("budget.hours", 1, "budget"),
    ("objective.metric", "accuracy", "objective.metric"),
    ("objective.direction", "down", "objective.direction"),
    ("objective.features", "vgg", "objective.features"),
    ("objective.n", 2, "objective.n"),
    ("objective.every", 0, "objective.every"),
    ("objective.bogus", 1, "objective"),
    ("pruner", "sometimes", "pruner"),
    ("pruner", {"name": "median", "patience": 3}, "pruner"),
    ("nproc_per_trial", 0, "nproc_per_trial"),
]


@pytest.mark.parametrize("path,value,named", BAD, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD])
def test_every_definition_error_names_its_key(path, value, named):
    definition = _with(path, value)
    if path == "grid.eval_every":  # the objective owns the evaluation keys when it is measured by one
        definition["objective"] = {"metric": "fid"}
    with pytest.raises(StudySpecError) as info:
        spec_mod.from_dict(definition)
    assert named in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


SEARCH = dict(GOOD, n_trials=3, search={"lr_d": {"low": 1e-5, "high": 1e-3, "log": True},
                                        "batch_size": {"low": 16, "high": 64}, "algorithm": {"choices": ["gan", "wgan-gp"]}})
del SEARCH["grid"]

BAD_SEARCH = [
    ("n_trials", DELETE, "n_trials"),
    ("n_trials", 0, "n_trials"),
    ("search", {}, "search"),
    ("search.bogus_key", {"low": 1, "high": 2}, "search.bogus_key"),
    ("search.lr_d", {"low": 1e-3, "high": 1e-5}, "search.lr_d"),
    ("search.lr_d", {"low": 0.0, "high": 1e-3, "log": True}, "search.lr_d.low"),
    ("search.lr_d", {"low": 1e-5}, "search.lr_d.high"),
    ("search.lr_d", {"low": 1e-5, "high": 1e-3, "scale": 2}, "search.lr_d"),
    ("search.batch_size", {"low": 16.5, "high": 64}, "search.batch_size.low"),
    ("search.batch_size", {"low": 0, "high": 64}, "search.batch_size.low"),
    ("search.algorithm", {"low": 1, "high": 2}, "search.algorithm"),
    ("search.algorithm", {"choices": []}, "search.algorithm.choices"),
    ("search.algorithm", {"choices": ["gan", "nope"]}, "search.algorithm.choices[1]"),
    ("search.name", {"choices": ["a"]}, "search.name"),
]


@pytest.mark.parametrize("path,value,named", BAD_SEARCH, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD_SEARCH])
def test_every_search_error_names_its_key(path, value, named):
    d = _with(path, value, SEARCH)
    with pytest.raises(StudySpecError) as info:
        spec_mod.from_dict(d)
    assert named in str(info.value), str(info.value)


def test_a_good_definition_normalises_values_and_names_its_trials():
    s = spec_mod.from_dict(GOOD)
    assert s.grid == {"lr_d": [1e-4, 1e-3]}  # "1e-3" (a YAML string) read as the key's type
    keys = [t.key for t in s.trials()]
    assert len(keys) == len(set(keys)) == 4
    assert sorted(t.run_name for t in s.trials()) == ["lr_d-0.0001-seed0", "lr_d-0.0001-seed1", "lr_d-0.001-seed0",
                                                       "lr_d-0.001-seed1"]
    again = spec_mod.from_dict(s.definition())  # the stored definition reads back to itself
    assert again.definition() == s.definition()
    search = spec_mod.from_dict(SEARCH)
    assert [t.key for t in search.trials()][:3] == [f"point000{i}|seed=0" for i in range(3)]


def test_an_objective_measured_by_evaluation_is_checked_against_the_data():
    d = dict(GOOD, objective={"metric": "fid", "every": 10})  # toys have no images to score
    with pytest.raises(StudySpecError, match="eval_every"):
        spec_mod.from_dict(d)
    d = dict(GOOD, objective={"metric": "precision"}, pruner="median")  # measured once: nothing to prune on
    with pytest.raises(StudySpecError, match="pruner"):
        spec_mod.from_dict(d)


def test_every_study_preset_is_valid_and_can_be_changed_with_set():
    for name in presets.STUDY_PRESETS:
        s = spec_mod.load(name)
        assert s.name == name and len(s.trials()) >= 4
    s = spec_mod.load("loss-comparison", ["budget.steps=50", "seeds=[3]", "base.dataset=mnist"])
    assert s.budget["steps"] == 50 and s.seeds == (3,) and s.base["dataset"] == "mnist"
    assert s.grid["algorithm"] == ["gan", "wgan-clip", "wgan-gp", "wgan-sn"]
    search = spec_mod.load("lr-batch-search")
    for key in ("g_activation", "d_activation"):  # searched exactly where the models have them
        assert (key in search.search) == (key in config.KEY)
    with pytest.raises(StudySpecError, match="budget.steps"):
        spec_mod.load("loss-comparison", ["budget.steps=zero"])
    with pytest.raises(StudySpecError, match="--set"):
        spec_mod.load("loss-comparison", ["budget.steps"])


def test_yaml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(errors.ConfigError, match="bad.yaml is not valid YAML"):
        spec_mod.load(str(bad))
    bad.write_text("- a\n- b\n")
    with pytest.raises(errors.ConfigError, match="bad.yaml must hold a mapping"):
        spec_mod.load(str(bad))
    with pytest.raises(errors.ConfigError, match="study file not found"):
        spec_mod.load(str(tmp_path / "missing.yaml"))
    with pytest.raises(errors.ConfigError, match="neither a study YAML file nor a study preset"):
        spec_mod.load("no-such-study")


@pytest.mark.parametrize("command", ["", "run", "report", "status", "dashboard"])
def test_every_subcommand_answers_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(([command] if command else []) + ["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and out.startswith("usage:") and "exit codes" in out
    if command == "run":
        assert all(name in out for name in presets.STUDY_PRESETS)


# ---- the command line: one line, the documented exit code, nothing run -----------------------------------------

def study(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    env.pop("WGAN_FAST_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "wgan_fast.study", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def one_line(r, code, *names):
    lines = [line for line in r.stderr.splitlines() if line.strip() and "warning" not in line]
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def _yaml(path, definition):
    import yaml

    path.write_text(yaml.safe_dump(definition))
    return str(path)


def test_bad_definition_from_the_command_line_is_one_line(tmp_path):
    one_line(study("run", _yaml(tmp_path / "a.yaml", _with("base.bogus_key", 1)), cwd=tmp_path), 2,
             "usage error", "base.bogus_key")
    assert not (tmp_path / "studies").exists()  # nothing was created


def test_a_storage_that_cannot_connect_is_one_line(tmp_path):
    good = _yaml(tmp_path / "a.yaml", GOOD)
    one_line(study("run", good, "--storage", f"sqlite:///{tmp_path}/no/such/dir/x.db", cwd=tmp_path), 9,
             "storage error", "no/such/dir/x.db")
    pytest.importorskip("psycopg2", reason="psycopg2 (extra [study]) is not installed")
    line = one_line(study("run", good, "--storage", "postgresql://someone:secret@127.0.0.1:1/db", cwd=tmp_path), 9,
                    "storage error", "127.0.0.1:1")
    assert "secret" not in line  # a password is never printed


def test_the_same_name_with_another_definition_is_refused_unless_resume(tmp_path):
    from wgan_fast.study.storage import DEFINITION_ATTR, create_or_load, default_storage, open_storage

    storage = default_storage(str(tmp_path / "studies" / "s"))
    create_or_load(spec_mod.from_dict(GOOD), open_storage(storage), storage, resume=False)
    changed = _yaml(tmp_path / "b.yaml", _with("budget.steps", 30))
    one_line(study("run", changed, cwd=tmp_path), 2, "budget.steps (stored: 20, now: 30)", "--resume")
    study_ = create_or_load(spec_mod.from_dict(_with("budget.steps", 30)), open_storage(storage), storage, resume=True)
    assert study_.user_attrs[DEFINITION_ATTR]["budget"] == {"steps": 30}
    assert not (tmp_path / "studies" / "s" / "trials").exists()  # nothing ran
