"""The commands as a user runs them: real subprocesses, --help everywhere, and
every expected failure one line on stderr with its documented exit code."""
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from wgan_fast import checkpoint, config, errors, train

from helpers import TinyImages, tiny_cfg, write_idx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from wgan_fast.__main__ import COMMANDS  # noqa: E402


def run(command, *args, cwd=None, env=None, timeout=300):
    """`wgan-fast <command> args` as a user runs it (python -m wgan_fast <command>)."""
    e = dict(os.environ, OMP_NUM_THREADS="1")
    e.pop("WGAN_FAST_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "wgan_fast", command, *args], capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=timeout)


def one_line_failure(r, code, *names):
    """Exit `code`, one line on stderr naming each of `names`, no traceback."""
    lines = [line for line in r.stderr.splitlines() if line.strip() and "warning" not in line]
    assert r.returncode == code, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(lines) == 1, r.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help(command):
    r = run(command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:"), r.stdout[:200]
    assert "exit codes" in r.stdout and "Traceback" not in r.stderr


def test_python_m_wgan_fast_evaluate_is_the_evaluate_command():
    e = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "wgan_fast.evaluate", "--help"], capture_output=True, text=True, env=e)
    assert r.returncode == 0 and r.stdout.startswith("usage: wgan-fast evaluate"), r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "wgan_fast.evaluate", "--run", "no/such/run"], capture_output=True,
                       text=True, env=e)
    one_line_failure(r, errors.UsageError.exit_code, "no/such/run")


def test_train_help_lists_every_key_preset_example_and_exit_code():
    from wgan_fast.presets import PRESETS

    text = run("train", "--help").stdout
    for key in config.KEYS:
        assert f"--{key.name.replace('_', '-')} " in text, key.name
    for group in config.GROUPS:
        assert f"\n{group}:\n" in text, group
    for name in PRESETS:
        assert re.search(rf"^  {re.escape(name)} +\S", text, re.M), name
    assert "torchrun --nproc_per_node" in text and "--resume true" in text
    assert "may change on resume" in text and "sync-bn" in text
    for code in errors.EXIT_CODES:
        assert re.search(rf"^  {code} ", text, re.M), code


def test_training_docs_key_table_is_generated_from_the_keys():
    """docs/training.md holds config.markdown_table() verbatim (regenerate it with
    `python -c 'from wgan_fast import config; print(config.markdown_table())'`)."""
    docs = open(os.path.join(ROOT, "docs", "training.md")).read()
    assert config.markdown_table() in docs


# ---- expected failures of `train`, each one line with its exit code --------------------

@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    rng = np.random.RandomState(0)
    write_idx(root / "train-images-idx3-ubyte.gz", rng.randint(0, 255, (64, 28, 28)).astype(np.uint8), True)
    write_idx(root / "train-labels-idx1-ubyte.gz", rng.randint(0, 10, 64).astype(np.uint8), True)
    return str(root)


TINY = ["--dataset", "mnist", "--model", "mlp", "--resolution", "28", "--z-dim", "8", "--g-base", "8",
        "--d-base", "8", "--batch-size", "8", "--n-critic", "1", "--tensorboard", "false", "--device", "cpu"]


@pytest.mark.parametrize("args,code,names", [
    (["--bogus-key", "1"], 2, ["bogus_key"]),
    (["--lr-d", "-1"], 2, ["lr_d"]),
    (["--n-critic", "abc"], 2, ["n_critic"]),
    (["--model", "mlp", "--critic-norm", "instance"], 2, ["critic_norm", "mlp"]),
    (["--model", "resnet", "--resolution", "28"], 2, ["resolution", "resnet"]),
    (["--dataset", "toy-moons", "--model", "dcgan"], 2, ["model"]),
    (["--dataset", "mnist", "--loader", "dali"], 2, ["loader"]),
    (["--dataset", "cifar10", "--eval-every", "10", "--eval-features", "classifier"], 2, ["eval_features"]),
    (["--resume", "true", "--overwrite", "true"], 2, ["overwrite"]),
    (["positional"], 2, ["positional"]),
    (["--seed", "99999999999999999999"], 2, ["seed"]),
    (["--name", ".."], 2, ["name"]),
    (["--name", "a/b"], 2, ["name"]),
    (["--out-dir"], 2, ["out_dir", "needs a value"]),
])
def test_train_refuses_bad_config_in_one_line(tmp_path, args, code, names):
    r = run("train", "--out-dir", str(tmp_path), *args)
    one_line_failure(r, code, *names)
    assert not os.listdir(tmp_path)  # refused before anything ran


def test_train_names_a_bad_yaml_file(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("lr_d: [1, 2\n")
    one_line_failure(run("train", "--config", str(bad)), 2, str(bad))
    one_line_failure(run("train", "--config", str(tmp_path / "absent.yaml")), 2, "absent.yaml")
    bad.write_text("preset: [a, b]\n")
    one_line_failure(run("train", "--config", str(bad)), 2, "preset")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_device_cuda_without_a_gpu(tmp_path):
    one_line_failure(run("train", "--device", "cuda", "--out-dir", str(tmp_path)), 7, "device", "cuda")


def test_train_bad_data_is_a_data_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_failure(run("train", *TINY, "--data-dir", str(empty), "--out-dir", str(tmp_path)), 4,
                     str(empty), "train-images-idx3-ubyte")
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    write_idx(trunc / "train-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8), False)
    write_idx(trunc / "train-labels-idx1-ubyte", np.zeros(20, np.uint8), False)
    with open(trunc / "train-images-idx3-ubyte", "r+b") as f:
        f.truncate(1000)
    one_line_failure(run("train", *TINY, "--data-dir", str(trunc), "--out-dir", str(tmp_path)), 4,
                     "train-images-idx3-ubyte", "truncated")
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    (cifar / "data_batch_1").write_bytes(pickle.dumps({b"data": 1})[:10])
    one_line_failure(run("train", "--dataset", "cifar10", "--model", "mlp", "--data-dir", str(cifar),
                         "--out-dir", str(tmp_path), "--device", "cpu"), 4, "data_batch_1")
    folder = tmp_path / "images"
    folder.mkdir()
    one_line_failure(run("train", "--dataset", "folder", "--model", "mlp", "--data-dir", str(folder),
                         "--out-dir", str(tmp_path), "--device", "cpu"), 4, str(folder), "no image files")


def test_train_conditional_needs_labels_below_num_classes(tmp_path, tiny_mnist):
    one_line_failure(run("train", *TINY, "--data-dir", tiny_mnist, "--out-dir", str(tmp_path),
                         "--conditional", "true", "--num-classes", "5"), 4, "num_classes", "--num-classes 10")


def test_train_progress_is_plain_lines_in_a_log_and_resume_rules(tmp_path, tiny_mnist):
    base = [*TINY, "--data-dir", tiny_mnist, "--out-dir", str(tmp_path), "--name", "r", "--log-every", "2",
            "--sample-every", "4", "--ckpt-every", "4"]
    r = run("train", *base, "--steps", "4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "\r" not in r.stderr  # not a terminal: no carriage returns
    assert [line.split()[2] for line in r.stderr.splitlines() if line.startswith("[wgan_fast] step ")] == \
        ["2/4", "4/4"]
    # a second fresh run into the same folder is refused; nothing of the first is lost
    one_line_failure(run("train", *base, "--steps", "4"), 2, "--resume true", "--overwrite true")
    assert checkpoint.list_checkpoints(str(tmp_path / "r"))
    # resume with a key that may not change: refused before loading, naming the key and both values
    line = one_line_failure(run("train", *base, "--steps", "8", "--resume", "true", "--d-base", "16"), 2,
                            "d_base", "checkpoint: 8", "now: 16")
    assert "config.json" in line
    # keys that may change: steps, intervals, learning rates
    r = run("train", *base, "--steps", "6", "--resume", "true", "--log-every", "3", "--lr-d", "5e-5")
    assert r.returncode == 0, r.stderr[-3000:]
    state, _ = checkpoint.load_latest(str(tmp_path / "r"))
    assert state["step"] == 6 and state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(5e-5)
    # resuming from the run's own config.json works as the error message says
    r = run("train", "--config", str(tmp_path / "r" / "config.json"), "--resume", "true", "--steps", "7")
    assert r.returncode == 0, r.stderr[-3000:]
    # --overwrite starts afresh
    r = run("train", *base, "--steps", "2", "--overwrite", "true")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [os.path.basename(p) for p in checkpoint.list_checkpoints(str(tmp_path / "r"))] == ["ckpt_00000002.pt"]


def test_resume_with_only_unreadable_checkpoints_is_a_checkpoint_error(tmp_path, tiny_mnist):
    base = [*TINY, "--data-dir", tiny_mnist, "--out-dir", str(tmp_path), "--name", "r", "--steps", "2",
            "--ckpt-every", "2"]
    assert run("train", *base).returncode == 0
    (path,) = checkpoint.list_checkpoints(str(tmp_path / "r"))
    with open(path, "r+b") as f:
        f.truncate(100)
    one_line_failure(run("train", *base, "--resume", "true", "--steps", "4"), 6, path)


def test_a_nonfinite_run_stops_with_exit_3(tmp_path):
    r = run("train", "--preset", "toy-8gaussians", "--out-dir", str(tmp_path), "--lr-d", "1e30",
            "--lr-g", "1e30", "--steps", "200", "--log-every", "5", "--ckpt-every", "5", "--tensorboard", "false")
    one_line_failure(r, 3, "non-finite")


def test_the_command_list_and_an_unknown_command():
    r = run("--help")
    assert r.returncode == 0 and all(f"  {name} " in r.stdout for name in COMMANDS)
    one_line_failure(run("bogus"), 2, "bogus")
    # python -m wgan_fast.train stays, as documented
    r = subprocess.run([sys.executable, "-m", "wgan_fast.train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage:")


def test_debug_env_prints_the_traceback(tmp_path):
    r = run("train", "--lr-d", "-1", env={"WGAN_FAST_DEBUG": "1"})
    assert r.returncode == 2 and "Traceback" in r.stderr and "lr_d" in r.stderr


# ---- the other commands ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train.train(tiny_cfg(out, model="mlp", steps=2, ckpt_every=2, sample_every=2), data=TinyImages()).run_dir


@pytest.mark.parametrize("command,extra", [("sample", []), ("evaluate", ["--metrics", "fid"]),
                                           ("latent-walk", []), ("export", ["--n", "4"]),
                                           ("anomaly", ["--images", "."]), ("adapt", [])])
def test_commands_name_a_missing_run_folder(tmp_path, command, extra):
    missing = str(tmp_path / "nope")
    one_line_failure(run(command, "--run", missing, *extra), 2, missing)


def test_commands_report_an_unreadable_checkpoint(tmp_path, tiny_run):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    one_line_failure(run("sample", "--run", tiny_run, "--ckpt", str(bad)), 6, str(bad))
    torch.save({"step": 1}, tmp_path / "other.pt")
    one_line_failure(run("sample", "--run", tiny_run, "--ckpt", str(tmp_path / "other.pt")), 6,
                     "other.pt", "not a wgan_fast checkpoint")
    one_line_failure(run("sample", "--run", tiny_run, "--ckpt", str(tmp_path / "absent.pt")), 6,
                     "absent.pt")


def test_commands_report_bad_arguments_in_one_line(tiny_run):
    one_line_failure(run("sample", "--run", tiny_run, "--n", "zero"), 2, "--n")
    one_line_failure(run("sample", "--run", tiny_run, "--n", "0"), 2, "--n")
    one_line_failure(run("sample", "--run", tiny_run, "--class", "3"), 2, "--class")
    if not torch.cuda.is_available():
        one_line_failure(run("sample", "--run", tiny_run, "--device", "cuda"), 7, "cuda")


# ---- models: validation asks each model what it accepts ---------------------------------

@pytest.mark.parametrize("model", ["mlp", "dcgan", "resnet"])
def test_every_config_that_validates_builds(model):
    """Each (model, resolution, critic_norm, conditional, channels) either fails
    validation naming a key, or builds and runs a forward pass."""
    from wgan_fast import models

    for res in (16, 28, 32, 64, 96):
        for norm in ("none", "layer", "instance", "batch"):
            for cond in (False, True):
                over = dict(model=model, resolution=res, critic_norm=norm, conditional=cond, algorithm="wgan-clip",
                            g_base=4, d_base=4, z_dim=8, channels=3 if res == 96 else 1)
                try:
                    cfg = config.resolve(over)
                except config.ConfigError:
                    continue
                G, D = models.from_config(cfg)
                y = torch.zeros(2, dtype=torch.long) if cond else None
                x = G(torch.randn(2, 8), y)
                assert x.shape == (2, over["channels"], res, res)
                assert D(x, y).shape == (2,)


# ---- checkpoints that load but are not usable --------------------------------------------

def _run_with_bad_newest(tmp_path, tiny_mnist, corrupt):
    """A 2-step run (checkpoints at 1 and 2), then `corrupt(state)` written as a newer step-3 checkpoint."""
    base = [*TINY, "--data-dir", tiny_mnist, "--out-dir", str(tmp_path), "--name", "r", "--ckpt-every", "1",
            "--keep-ckpts", "1"]
    assert run("train", *base, "--steps", "2", "--keep-ckpts", "2").returncode == 0
    state = torch.load(checkpoint.path_for(str(tmp_path / "r"), 2), weights_only=True)
    torch.save(corrupt(state), checkpoint.path_for(str(tmp_path / "r"), 3))
    return base


def test_resume_passes_over_a_checkpoint_missing_an_entry_and_keeps_the_good_one(tmp_path, tiny_mnist):
    base = _run_with_bad_newest(tmp_path, tiny_mnist, lambda s: {k: v for k, v in s.items() if k != "opt_d"})
    bad = checkpoint.path_for(str(tmp_path / "r"), 3)
    r = run("train", *base, "--steps", "4", "--resume", "true")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "'opt_d'" in r.stderr and bad in r.stderr
    # resumed from step 2; the unusable step-3 file was set aside, so keep_ckpts=1 never dropped a good one for it
    assert os.path.exists(bad + ".unusable")
    state, path = checkpoint.load_latest(str(tmp_path / "r"))
    assert state["step"] == 4 and path == checkpoint.path_for(str(tmp_path / "r"), 4)


def test_resume_and_sample_refuse_checkpoints_whose_entries_do_not_fit(tmp_path, tiny_mnist):
    def shrink(s):
        return dict(s, G={k: v[:1] for k, v in s["G"].items()})
    base = _run_with_bad_newest(tmp_path, tiny_mnist, shrink)
    bad = checkpoint.path_for(str(tmp_path / "r"), 3)
    one_line_failure(run("train", *base, "--steps", "4", "--resume", "true"), 6, bad, "size mismatch")
    for name, corrupt in (("config", lambda s: dict(s, config="x")), ("step", lambda s: dict(s, step="x")),
                          ("list", lambda s: [1, 2]), ("model", lambda s: dict(s, config=dict(s["config"], model="x")))):
        torch.save(corrupt(torch.load(checkpoint.path_for(str(tmp_path / "r"), 2), weights_only=True)), bad)
        one_line_failure(run("sample", "--run", str(tmp_path / "r"), "--ckpt", bad), 6, bad)


def test_a_path_that_cannot_be_written_is_one_line_naming_it(tmp_path, tiny_mnist):
    base = [*TINY, "--data-dir", tiny_mnist, "--steps", "2"]
    afile = tmp_path / "afile"
    afile.write_text("")
    one_line_failure(run("train", *base, "--out-dir", str(afile)), 10, str(afile))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "samples").write_text("")  # a file where the run's folder of grids goes
    one_line_failure(run("train", *base, "--out-dir", str(tmp_path), "--name", "r"), 10, "samples")


def test_a_moved_run_folder_resumes_under_its_new_name(tmp_path, tiny_mnist):
    import shutil

    base = [*TINY, "--data-dir", tiny_mnist, "--out-dir", str(tmp_path), "--ckpt-every", "2"]
    assert run("train", *base, "--name", "old", "--steps", "2").returncode == 0
    shutil.move(str(tmp_path / "old"), str(tmp_path / "new"))
    r = run("train", *base, "--name", "new", "--steps", "4", "--resume", "true")
    assert r.returncode == 0, r.stderr[-2000:]
    assert checkpoint.load_latest(str(tmp_path / "new"))[0]["step"] == 4


def test_fp16_scaler_back_offs_at_the_start_are_not_a_nonfinite_run(tmp_path, tiny_mnist):
    """GradScaler's first steps overflow and are skipped while its scale comes down; with one step per
    log interval that stopped the run with exit 3."""
    r = run("train", *TINY, "--data-dir", tiny_mnist, "--out-dir", str(tmp_path), "--precision", "fp16",
            "--steps", "3", "--log-every", "1")
    assert r.returncode == 0, r.stderr[-2000:]
