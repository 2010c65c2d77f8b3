"""`python -m wgan_fast.train` (and `torchrun ... -m wgan_fast.train`): the
command line of the trainer: its --help, the config from arguments, one-line
expected failures (wgan_fast.errors)."""
from __future__ import annotations

import os
import sys

from .. import cli, config, errors
from ..requirements import check_config_requirements
from ..runtime import resolve_device
from . import distributed
from .loop import train_with_rollback


EXAMPLES = """\
examples:
  python -m wgan_fast.train                                   # the default: preset fashion-wgan-gp
  python -m wgan_fast.train --preset fashion-cwgan-gp --steps 20000 --eval-every 2000
  python -m wgan_fast.train --dataset folder --data-dir ~/images --resolution 64 --channels 3 --name faces
  torchrun --nproc_per_node=4 -m wgan_fast.train --preset cifar10-wgan-gp --data-dir ~/data/cifar10
  python -m wgan_fast.train --name faces --dataset folder --data-dir ~/images --resolution 64 --channels 3 \\
      --resume true --steps 200000                            # continue runs/faces to 200k steps"""


def usage() -> str:
    """The text of `python -m wgan_fast.train --help`."""
    from ..presets import PRESETS  # noqa: PLC0415

    width = max(map(len, PRESETS))
    presets = "\n".join(f"  {name:<{width}}  {p['help']}" for name, p in PRESETS.items())
    algos = "\n".join(f"  {name:<9}  " + ", ".join(f"{k}={v}" for k, v in d.items())
                       for name, d in config.ALGORITHM_DEFAULTS.items())
    return f"""\
usage: python -m wgan_fast.train [--config FILE.yaml] [--key value ...]
       torchrun --nproc_per_node=N -m wgan_fast.train [--config FILE.yaml] [--key value ...]

Train a (Wasserstein) GAN into OUT_DIR/NAME/: config.json, metrics.jsonl, sample grids in samples/, checkpoints
ckpt_*.pt, TensorBoard events in tb/, and at the end samples.gif and losses.png. With no arguments it trains the
flagship default, preset fashion-wgan-gp.

A run's config is the defaults below, then the algorithm's defaults, then --preset, then --config (a YAML mapping of
key: value), then --key value pairs (--lr-d 2e-4 or --lr_d=2e-4; a bare --flag means true). Everything is checked
before anything runs; an error names the key.

{EXAMPLES}

presets (--preset NAME):
{presets}

algorithm defaults (applied under the preset and your keys):
{algos}

keys (--key VALUE):
{config.help_text()}
resume: --resume true continues the run folder's newest readable checkpoint (also after a torchrun restart). Only
  keys marked [may change on resume] may differ from the checkpoint's config; any other difference is refused before
  anything loads, naming each key with both values. A fresh run refuses a folder that already holds a run unless
  --overwrite true.

several processes (torchrun): each process trains on batch_size images, gradients are averaged over processes with
  one all-reduce, and noise is drawn for the global batch, so N processes at batch B reproduce one process at batch
  N*B, except for BatchNorm: the DCGAN and ResNet generators' BatchNorm normalises each process's own shard, so the
  two drift apart slowly (measured: 3e-3 after 6 steps). --sync-bn true makes the generator's BatchNorm use the
  global batch's statistics (torch's SyncBatchNorm: CUDA/NCCL only; refused on the CPU). Critics have no BatchNorm
  when a penalty is used.

{errors.exit_codes_text()}
  WGAN_FAST_DEBUG=1 prints the traceback of an expected failure too."""


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        cli.print_text(usage())
        return 0
    return errors.run("train", _main, argv)


def _main(argv) -> int:
    overrides = config.parse_overrides(argv)
    yaml_path = overrides.pop("config", None)
    if not overrides.get("preset") and not yaml_path and "dataset" not in overrides:
        overrides.setdefault("preset", "fashion-wgan-gp")
    cfg = config.resolve(overrides, yaml_path)
    check_config_requirements(cfg)  # a missing optional part: one line now, not at the end of the run
    if resolve_device(cfg["device"]).type == "cpu":
        from ..runtime import keep_freed_memory  # noqa: PLC0415

        keep_freed_memory()  # no page faults on every step's fresh activations
    try:
        result = train_with_rollback(cfg)
    finally:
        distributed.teardown()
    if result is not None and int(os.environ.get("RANK", "0")) == 0:
        print(f"[wgan_fast] run folder: {result.run_dir} ({result.step} steps, stopped by: {result.stop_reason})",
              file=sys.stderr)
    return 0
