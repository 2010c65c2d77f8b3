"""Named studies: the comparisons this project's reports ran, on Fashion-MNIST
(any dataset by `--set base.dataset=... --set base.data_dir=...`).

`study run loss-comparison` runs one; `study run loss-comparison --show`
prints its YAML to copy and edit. Budgets are sized for the 2-core CPU (a few
minutes a trial); raise them on a GPU with --set budget.steps=N.
"""
from __future__ import annotations

import copy
import os

from .. import config
from ..errors import ConfigError

# one DCGAN pair at Fashion-MNIST's native 28 px; each algorithm keeps its own
# optimiser settings from the literature (config.ALGORITHM_DEFAULTS)
_DCGAN_FASHION = {"dataset": "fashion-mnist", "model": "dcgan", "resolution": 28, "channels": 1, "batch_size": 64,
                  "log_every": 50, "sample_every": 500, "ckpt_every": 500}
# FID over the domain classifier's features: cheap enough to measure every 500 steps on a CPU
# (--set objective.features=inception for Inception features, extra [eval])
_FID = {"metric": "fid", "features": "classifier", "n": 2000, "every": 500, "direction": "minimize"}


def _search_space() -> dict:
    space = {"lr_d": {"low": 1e-5, "high": 1e-3, "log": True}, "lr_g": {"low": 1e-5, "high": 1e-3, "log": True},
             "batch_size": {"choices": [32, 64, 128]}}
    for key in ("g_activation", "d_activation"):  # the models' activations, where this version has them
        if key in config.KEY and config.KEY[key].choices:
            space[key] = {"choices": list(config.KEY[key].choices)}
    return space


def _grid_study(name: str, description: str, base: dict, grid: dict) -> dict:
    """Two seeds, 4 minutes a trial (at most 40k steps), FID every 500 steps, no pruning."""
    return {"name": name, "description": description, "base": base, "grid": grid, "seeds": [0, 1],
            "budget": {"minutes": 4.0, "steps": 40000}, "objective": dict(_FID), "pruner": "none"}


STUDY_PRESETS = {
    "loss-comparison": _grid_study(
        "loss-comparison", "GAN vs WGAN-clip vs WGAN-GP vs WGAN-SN on one DCGAN, Fashion-MNIST, the same budget, "
        "FID over time", dict(_DCGAN_FASHION), {"algorithm": ["gan", "wgan-clip", "wgan-gp", "wgan-sn"]}),
    "penalty-weight": _grid_study(
        "penalty-weight", "WGAN-GP's penalty weight lambda in {0.1, 1, 10, 100}, DCGAN, Fashion-MNIST",
        dict(_DCGAN_FASHION, algorithm="wgan-gp", n_critic=1, lr_d=4e-4, lr_g=1e-4),
        {"gp_weight": [0.1, 1.0, 10.0, 100.0]}),
    "lr-batch-search": {
        "name": "lr-batch-search",
        "description": "TPE search over the learning rates, the batch size (and the activations where the models "
                       "have them) of WGAN-GP, DCGAN, Fashion-MNIST; median pruning on FID",
        "base": dict(_DCGAN_FASHION, algorithm="wgan-gp", n_critic=1),
        "search": _search_space(),
        "n_trials": 20,
        "seeds": [0],
        "budget": {"minutes": 3.0, "steps": 40000},
        "objective": dict(_FID),
        "pruner": {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 500},
    },
    # how the CPU default (presets.py fashion-wgan-gp) was chosen: quality per minute of one core
    "cpu-default-search": {
        "name": "cpu-default-search",
        "description": "TPE search for the CPU default: what moves FID per minute of WGAN-GP with a DCGAN pair on "
                       "Fashion-MNIST (learning rates, betas, n_critic, batch size, widths, EMA decay, lazy penalty, "
                       "the critic's activation, bf16); 4 minutes a trial, median pruning on FID",
        "base": dict(_DCGAN_FASHION, algorithm="wgan-gp", n_critic=1, lr_d=4e-4, lr_g=1e-4),
        "search": {"lr_g": {"low": 5e-5, "high": 1e-3, "log": True}, "lr_d": {"low": 1e-4, "high": 2e-3, "log": True},
                   "beta1": {"choices": [0.0, 0.5]}, "beta2": {"choices": [0.9, 0.99]},
                   "n_critic": {"choices": [1, 2]}, "batch_size": {"choices": [32, 64, 128]},
                   "g_base": {"choices": [32, 64]}, "d_base": {"choices": [32, 64]},
                   "ema": {"choices": [0.99, 0.995, 0.999]}, "lazy_reg": {"choices": [1, 4]},
                   "d_activation": {"choices": ["auto", "elu", "silu"]}, "precision": {"choices": ["fp32", "bf16"]}},
        "n_trials": 30,
        "seeds": [0],
        "budget": {"minutes": 4.0, "steps": 40000},
        "objective": dict(_FID),
        "pruner": {"name": "median", "n_startup_trials": 6, "n_warmup_steps": 1000},
    },
}


def definition_of(path_or_name: str) -> dict:
    """The raw definition in a YAML file, or a copy of the named preset."""
    if not os.path.exists(path_or_name) and path_or_name in STUDY_PRESETS:
        return copy.deepcopy(STUDY_PRESETS[path_or_name])
    if not os.path.exists(path_or_name) and not path_or_name.endswith((".yaml", ".yml")):
        raise ConfigError(f"{path_or_name}: neither a study YAML file nor a study preset "
                          f"(presets: {', '.join(STUDY_PRESETS)})")
    return config.load_yaml(path_or_name, what="study file")
