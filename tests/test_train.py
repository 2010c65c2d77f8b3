"""The trainer on tiny data: every algorithm x model trains, resume is exact,
faults are caught, bad configs are refused before anything runs."""
import json
import os

import pytest
import torch

from wgan_fast import checkpoint, config, train

from helpers import TinyImages, distributed_threads, tiny_cfg  # noqa: E402


ALGOS = ["gan", "wgan-clip", "wgan-gp", "wgan-lp", "wgan-sn"]
MODELS = [("mlp", 28), ("dcgan", 28), ("dcgan", 32), ("resnet", 32)]


@pytest.mark.parametrize("model,res", MODELS)
@pytest.mark.parametrize("algorithm", ALGOS)
def test_every_algorithm_and_model_trains(tmp_path, algorithm, model, res):
    cfg = tiny_cfg(tmp_path, algorithm=algorithm, model=model, resolution=res, conditional=model == "dcgan")
    shape = (1, res, res)
    run_dir = train.train(cfg, data=TinyImages(shape)).run_dir
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert all(isinstance(v, (int, float)) and v == v for v in r.values()), r  # no NaN
    assert len({round(r["loss_d"], 6) for r in rows}) > 1  # the losses move
    state, _ = checkpoint.load_latest(run_dir)
    assert state["step"] == 3
    if algorithm == "wgan-clip":  # every critic weight stays in bounds
        assert all(t.abs().max() <= cfg["clip"] for k, t in state["D"].items() if t.is_floating_point())
    if algorithm == "wgan-sn":  # sigma ~ 1: the normalised weights have unit spectral norm
        from wgan_fast import models, nn as wnn

        _, D = models.from_config(cfg, torch.device("cpu"))
        D.load_state_dict(state["D"])
        for _ in range(30):
            wnn.power_iteration_(D)
        layers = wnn.spectral_norm_layers(D)
        assert layers, "wgan-sn must normalise the critic's layers"
        for module, name, _, _ in layers:
            w = getattr(module, name).detach().flatten(1)
            assert abs(torch.linalg.matrix_norm(w, 2).item() - 1) < 3e-2  # power iteration: a lower bound of sigma
    assert os.path.exists(os.path.join(run_dir, "samples", "step_00000003.png"))
    assert os.path.exists(os.path.join(run_dir, "samples.gif"))
    assert os.path.exists(os.path.join(run_dir, "losses.png"))


def test_resume_is_bit_exact(tmp_path):
    full = tiny_cfg(tmp_path, steps=6, ckpt_every=3, name="full")
    train.train(full, data=TinyImages())
    part = tiny_cfg(tmp_path, steps=6, ckpt_every=3, name="part")
    # an interrupted run: stops after step 3 (its checkpoint is the latest)
    train.train(dict(part, steps=3), data=TinyImages())
    train.train(dict(part, resume=True), data=TinyImages())
    a, _ = checkpoint.load_latest(os.path.join(tmp_path, "full"))
    b, _ = checkpoint.load_latest(os.path.join(tmp_path, "part"))
    assert a["step"] == b["step"] == 6
    for key in ("G", "D", "G_ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_resume_keeps_each_step_once_in_metrics(tmp_path):
    """A run killed after logging past its last checkpoint (and mid-line) resumes
    with a metrics series that has each step once, in order."""
    cfg = tiny_cfg(tmp_path, steps=6, ckpt_every=3, log_every=1)
    run_dir = train.train(cfg, data=TinyImages()).run_dir
    os.unlink(checkpoint.path_for(run_dir, 6))  # as if killed between logging step 6 and its checkpoint
    with open(os.path.join(run_dir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 7, "loss_d": 0.')  # and a line cut short
    train.train(dict(cfg, resume=True), data=TinyImages())
    steps = [json.loads(line)["step"] for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_nonfinite_loss_stops_with_a_pointer_to_the_last_checkpoint(tmp_path):
    cfg = tiny_cfg(tmp_path, steps=6, ckpt_every=2, log_every=1)
    with pytest.raises(train.NonFiniteError, match="non-finite .* at generator step 3.*ckpt_00000002.pt"):
        train.train(cfg, data=TinyImages(nan_after=4))  # batches 4.. are NaN: step 3 has 2 critic batches each


def test_rollback_lowers_the_learning_rate(tmp_path, monkeypatch):
    cfg = tiny_cfg(tmp_path, steps=4, ckpt_every=1, log_every=1, on_nonfinite="rollback")
    seen = []
    real_train = train.train

    def fake_data_train(c, data=None, callbacks=()):
        seen.append(c["lr_d"])
        return real_train(c, data=TinyImages(nan_after=4 if len(seen) == 1 else None), callbacks=callbacks)

    monkeypatch.setattr(train.loop, "train", fake_data_train)
    train.train_with_rollback(cfg)
    assert seen == [cfg["lr_d"], cfg["lr_d"] * 0.5]
    # the halved rates are the ones trained with (the loaded optimiser state must not restore the old ones)
    state, _ = checkpoint.load_latest(os.path.join(tmp_path, "run"))
    assert state["step"] == 4
    for opt, sched, key in (("opt_d", "sched_d", "lr_d"), ("opt_g", "sched_g", "lr_g")):
        assert state[opt]["param_groups"][0]["lr"] == pytest.approx(cfg[key] * 0.5)
        assert state[sched]["base_lrs"] == [pytest.approx(cfg[key] * 0.5)]


def test_no_checkpoint_is_written_from_a_nonfinite_state(tmp_path):
    """Checkpoints every 2 steps, logs every 5: the NaN from step 3 on is caught
    before step 4's checkpoint, which is never written."""
    cfg = tiny_cfg(tmp_path, steps=8, ckpt_every=2, log_every=5, keep_ckpts=1)
    with pytest.raises(train.NonFiniteError, match="step 4, found before writing its checkpoint.*ckpt_00000002.pt"):
        train.train(cfg, data=TinyImages(nan_after=4))
    run_dir = os.path.join(tmp_path, "run")
    assert [os.path.basename(p) for p in checkpoint.list_checkpoints(run_dir)] == ["ckpt_00000002.pt"]
    state, _ = checkpoint.load_latest(run_dir)
    assert all(torch.isfinite(t).all() for k in ("G", "D", "G_ema") for t in state[k].values() if t.is_floating_point())


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
    run = tmp_path / "r"
    for step in (1, 2):  # the entries every checkpoint holds (checkpoint.MODEL_KEYS)
        checkpoint.save({"step": step, "config": {}, "G": {"w": torch.ones(3)}, "D": {}}, str(run), step, keep=3)
    latest = checkpoint.path_for(str(run), 2)
    with open(latest, "r+b") as f:  # truncate: a disk that filled up
        f.truncate(20)
    with pytest.warns(RuntimeWarning, match="ckpt_00000002.pt is unreadable"):
        state, path = checkpoint.load_latest(str(run))
    assert state["step"] == 1 and path.endswith("ckpt_00000001.pt")
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]


def test_keep_last_k(tmp_path):
    for s in range(1, 6):
        checkpoint.save({"step": s}, str(tmp_path), s, keep=2)
    assert [os.path.basename(p) for p in checkpoint.list_checkpoints(str(tmp_path))] == ["ckpt_00000004.pt", "ckpt_00000005.pt"]


@pytest.mark.parametrize("override,key", [
    ({"lr_d": "-1"}, "lr_d"), ({"n_critic": "0"}, "n_critic"), ({"algorithm": "wgan-xyz"}, "algorithm"),
    ({"bogus_key": "1"}, "bogus_key"), ({"critic_norm": "batch"}, "critic_norm"), ({"resolution": "50"}, "resolution"),
    ({"batch_size": "abc"}, "batch_size"), ({"preset": "nope"}, "preset"),
])
def test_invalid_config_names_the_key(override, key):
    with pytest.raises(config.ConfigError, match=key):
        config.resolve(override)


def test_main_refuses_bad_config_before_running(tmp_path, capsys):
    assert train.main(["--lr-d", "-1", "--out-dir", str(tmp_path)]) == 2
    assert "lr_d" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_presets_resolve():
    """Every preset applies its own keys over the defaults, has a line of help,
    and builds its models at its resolution (a forward pass of each)."""
    from wgan_fast import models
    from wgan_fast.presets import PRESETS

    for name, preset in PRESETS.items():
        cfg = config.resolve({"preset": name})
        assert preset["help"].strip(), name
        for key, value in preset["config"].items():
            assert cfg[key] == value, (name, key)
        G, D = models.from_config(dict(cfg, g_base=2, d_base=2))
        y = torch.zeros(2, dtype=torch.long) if cfg["conditional"] else None
        x = G(torch.randn(2, cfg["z_dim"]), y)
        shape = (2, 2) if cfg["dataset"].startswith("toy-") else (2, cfg["channels"], cfg["resolution"], cfg["resolution"])
        assert x.shape == shape and D(x, y).shape == (2,), name


def _ddp_worker(rank, world, port, cfg, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    full = TinyImages(shape=(1, 28, 28), batch=cfg["batch_size"] * world)

    class Shard(TinyImages):  # this rank's slice of each global batch
        def next(self):
            x, y = full.next()
            b = cfg["batch_size"]
            return x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b]

    try:
        train.train(cfg, data=Shard())
    finally:
        train.teardown_distributed()
    # the group is freed: no thread of it runs on into interpreter shutdown (where a gloo worker
    # dropping a finished collective's tensors aborts the process)
    left = distributed_threads()
    assert not left, f"rank {rank}: still running after teardown: {left}"


@pytest.mark.parametrize("algorithm", ["wgan-gp", "wgan-sn"])
def test_two_process_gloo_equals_one_process_on_the_concatenated_batch(tmp_path, algorithm):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = dict(algorithm=algorithm, model="mlp", ema=0.0, steps=3, n_critic=2, ckpt_every=3, device="cpu")
    two = tiny_cfg(tmp_path, name="ddp", batch_size=4, **common)
    mp.spawn(_ddp_worker, args=(2, port, two, None), nprocs=2, join=True)
    one = tiny_cfg(tmp_path, name="single", batch_size=8, **common)
    train.train(one, data=TinyImages(shape=(1, 28, 28), batch=8))
    a, _ = checkpoint.load_latest(os.path.join(tmp_path, "ddp"))
    b, _ = checkpoint.load_latest(os.path.join(tmp_path, "single"))
    # Gradients agree to float rounding (all-reduce vs. batch-mean order). Adam
    # turns an update into ~lr * sign(g), so an element whose gradient is ~0
    # (below Adam's eps) can move by up to lr either way: allow that for a
    # handful of elements, demand agreement to 1e-6 everywhere else.
    lr_bound = 2 * one["steps"] * max(one["lr_d"], one["lr_g"])
    total = off = 0
    for key in ("G", "D"):
        for name in a[key]:
            diff = (a[key][name] - b[key][name]).abs()
            assert diff.max() <= lr_bound, f"{key}.{name}: {diff.max()}"
            total, off = total + diff.numel(), off + int((diff > 1e-6).sum())
    assert off <= 1e-4 * total, f"{off} of {total} parameters differ by more than 1e-6"
    assert len(a["rng"]) == 2 and len(a["data"]) == 2  # every rank's state is in the checkpoint


def test_toy_8gaussians_covers_every_mode(tmp_path):
    """Quality: a short CPU run puts a fair share of samples on each of the 8 modes."""
    from wgan_fast import models
    from wgan_fast.data import toys

    cfg = config.resolve({"preset": "toy-8gaussians", "steps": "500", "out_dir": str(tmp_path), "name": "toy",
                          "tensorboard": "false"})
    run_dir = train.train(cfg).run_dir
    state, _ = checkpoint.load_latest(run_dir)
    G = models.MLPGenerator((2,), z_dim=cfg["z_dim"], hidden=(cfg["g_base"],) * 3, tanh=False)
    G.load_state_dict(state["G"])
    with torch.no_grad():
        pts = G(torch.randn(8000, cfg["z_dim"], generator=torch.Generator().manual_seed(1)))
    counts = torch.bincount(toys.mode_of(pts), minlength=8).float() / len(pts)
    assert counts.min() > 0.5 / 8, f"a mode is starved: shares {counts.tolist()}"
    angle = torch.arange(8) * (2 * torch.pi / 8)
    centers = torch.stack([angle.cos(), angle.sin()], 1) * 2.0
    near = (torch.cdist(pts, centers).min(1).values < 0.5).float().mean()
    assert near > 0.5, f"only {near:.2f} of the samples lie near a mode"
    assert os.path.exists(os.path.join(run_dir, "samples", "step_00000500.png"))  # the contour plot


def test_wgan_gp_critic_step_known_answer():
    """One critic step on a tiny critic equals a hand-written WGAN-GP step."""
    from contextlib import nullcontext

    from torch import nn

    from wgan_fast import step as step_mod

    class TinyCritic(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))

        def forward(self, x, labels=None):
            return self.net(x).squeeze(1)

    torch.manual_seed(0)
    cfg = config.resolve({"algorithm": "wgan-gp", "gp_weight": "10"})
    D, D_ref = TinyCritic(), TinyCritic()
    D_ref.load_state_dict(D.state_dict())
    G = lambda z, y=None: z.view(-1, 1, 2, 2)  # noqa: E731  (an identity "generator")
    real, z, alpha = torch.randn(5, 1, 2, 2), torch.randn(5, 4), torch.rand(5)
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    parts = step_mod.Parts(cfg, G, D, opt, opt, scaler, scaler, nullcontext, lambda m: None, step_mod.Metrics("cpu"))
    step_mod.critic_step(parts, real, None, z, alpha, critic_iter=0)
    # by hand
    fake = z.view(-1, 1, 2, 2)
    x_hat = (alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake).requires_grad_()
    (g,) = torch.autograd.grad(D_ref(x_hat).sum(), x_hat, create_graph=True)
    gp = 10 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    loss = D_ref(fake).mean() - D_ref(real).mean() + gp
    loss.backward()
    with torch.no_grad():
        for p in D_ref.parameters():
            p -= 0.1 * p.grad
    for a, b in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(a, b)
    m = parts.metrics.fetch_and_reset()
    assert abs(m["loss_d"] - loss.item()) < 1e-5 and abs(m["penalty"] - gp.item()) < 1e-5


def test_n_critic_schedule(tmp_path):
    cfg = tiny_cfg(tmp_path, n_critic=3, steps=4, log_every=4)
    run_dir = train.train(cfg, data=TinyImages()).run_dir
    (row,) = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert row["critic_steps"] == 12  # 3 critic updates per generator update


def test_kill_9_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "wgan_fast.train", "--preset", "toy-8gaussians", "--steps", "100000",
            "--ckpt-every", "5", "--log-every", "5", "--sample-every", "100000", "--out-dir", str(tmp_path),
            "--name", "k", "--tensorboard", "false"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "k"
    deadline = time.time() + 120
    while len(checkpoint.list_checkpoints(str(run_dir))) < 3 and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state, path = checkpoint.load_latest(str(run_dir))  # every final-named file is whole
    assert state is not None and state["step"] % 5 == 0
    for p in checkpoint.list_checkpoints(str(run_dir)):
        torch.load(p, weights_only=True)
    again = list(args)
    again[again.index("--steps") + 1] = str(state["step"] + 10)
    resumed = subprocess.run(again + ["--resume", "true"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final, _ = checkpoint.load_latest(str(run_dir))
    assert final["step"] == state["step"] + 10
    assert not list(run_dir.glob(".ckpt_*.tmp"))


def test_sync_bn_is_refused_for_several_cpu_processes(tmp_path, monkeypatch):
    """torch's SyncBatchNorm runs on CUDA only: several CPU processes are refused
    before any process group or data exists; one process trains (a no-op)."""
    from wgan_fast.errors import DeviceError

    cfg = tiny_cfg(tmp_path, sync_bn=True, device="cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DeviceError, match="sync_bn: .*CUDA tensors only"):
        train.setup_distributed(cfg)
    assert not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "1")
    run_dir = train.train(cfg, data=TinyImages()).run_dir
    assert checkpoint.load_latest(run_dir)[0]["step"] == cfg["steps"]
