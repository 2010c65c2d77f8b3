"""Load a trained run folder (`runs/<name>/`) for evaluation and generation.

`load_run(run_dir)` rebuilds the generator, its EMA and the critic from the
checkpoint's own config and loads their weights; `generate(run, n)` draws
images from it. Every command that reads a run (evaluate, sample,
interpolate, export, adapt, anomaly) goes through here, so they all refuse a
bad folder with the same clear messages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import checkpoint, config, models
from .errors import CheckpointError, CheckpointNotFound, UsageError, head


@dataclass
class Run:
    run_dir: str
    ckpt_path: str
    step: int
    cfg: dict
    G: torch.nn.Module       # the trained generator (eval mode)
    G_ema: torch.nn.Module   # its exponential moving average (== G when the run kept none)
    D: torch.nn.Module       # the critic (eval mode)
    device: torch.device

    @property
    def num_classes(self) -> int:
        return self.cfg["num_classes"] if self.cfg["conditional"] else 0

    @property
    def z_dim(self) -> int:
        return self.cfg["z_dim"]


def load_run(run_dir: str, device="cpu", ckpt: str | None = None) -> Run:
    """The newest readable checkpoint of `run_dir` (or the file `ckpt`), as a Run."""
    device = torch.device(device)
    if not os.path.isdir(run_dir):
        raise UsageError(f"run folder not found: {run_dir} (--run takes a folder under runs/)")
    if ckpt:
        if not os.path.isfile(ckpt):
            raise CheckpointNotFound(f"checkpoint not found: {ckpt}")
        state, path = checkpoint.load_file(ckpt, map_location=device), ckpt
    else:
        state, path = checkpoint.load_latest(run_dir, map_location=device)
        if state is None:
            found = checkpoint.list_checkpoints(run_dir)
            raise CheckpointNotFound(
                f"no readable checkpoint in {run_dir} "
                + (f"({len(found)} file(s) failed to load)" if found else "(no ckpt_*.pt files: was it trained?)"))
    why = checkpoint.missing_entries(state)
    if why:
        raise CheckpointError(f"{path} is not a wgan_fast checkpoint ({why})")
    cfg = _config_of(state, path)
    G, D = models.from_config(cfg, device)
    G_ema = models.from_config(cfg, device)[0]
    for name, module, weights in (("G", G, state["G"]), ("D", D, state["D"]),
                                  ("G_ema", G_ema, state.get("G_ema", state["G"]))):
        try:
            module.load_state_dict(weights)
        except RuntimeError as exc:
            arch = f"model={cfg['model']}, resolution={cfg['resolution']}, channels={cfg['channels']}"
            raise CheckpointError(f"{path}: the {name} weights do not fit the architecture of the run's config "
                             f"({arch}): {head(exc)}") from None
    if not cfg.get("ema", 0):
        G_ema = G
    for m in (G, G_ema, D):
        m.eval().requires_grad_(False)
    return Run(run_dir, path, int(state["step"]), cfg, G, G_ema, D, device)


def _config_of(state, path) -> dict:
    """The checkpoint's config, with the defaults of keys it predates, checked
    like a new run's (a file from elsewhere must not reach the model builders)."""
    cfg = {**config.DEFAULTS, **{k: v for k, v in state["config"].items() if k in config.DEFAULTS}}
    try:
        config.validate(cfg)
    except config.ConfigError as exc:
        raise CheckpointError(f"{path}: its config cannot be used ({exc})") from None
    return cfg


def generate(run: Run, n: int, *, labels: torch.Tensor | None = None, seed: int = 0, batch_size: int = 256,
             ema: bool = True, z: torch.Tensor | None = None):
    """`sample_images` of the run's EMA generator (or its raw one with ema=False)."""
    return models.sample_images(run.G_ema if ema else run.G, n, z_dim=run.z_dim, num_classes=run.num_classes,
                         device=run.device, labels=labels, seed=seed, batch_size=batch_size, z=z)
