"""Run configuration: plain data, validated before anything runs.

A run's config is DEFAULTS, updated by a preset (`preset: name`), then by a
YAML file, then by `--key value` overrides from the command line. Every key
must be known; values are parsed to the type of their default and checked.
"""
from __future__ import annotations

import copy
import math

ALGORITHMS = ("gan", "wgan-clip", "wgan-gp", "wgan-lp", "wgan-sn")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

DEFAULTS = dict(
    name="",                     # run folder name under out_dir (default: preset or algorithm + dataset)
    out_dir="runs",
    preset="",
    seed=0,
    device="auto",               # auto | cpu | cuda
    # data
    dataset="fashion-mnist",     # fashion-mnist | mnist | cifar10 | stl10 | celeba | folder | toy-8gaussians | toy-moons | toy-scurve
    data_dir="",
    resolution=32,
    channels=1,
    flip=False,
    loader="auto",               # auto | resident | dali | torchvision (image folders: dali when installed)
    crop="center",               # center (square centre crop, then resize) | none (resize the whole image)
    on_corrupt="skip",           # skip (counted and reported, at most max_corrupt of the files) | error
    max_corrupt=0.01,
    num_workers=2,
    conditional=False,
    num_classes=10,
    # models
    model="dcgan",               # mlp | dcgan | resnet
    z_dim=128,
    g_base=64,
    d_base=64,
    critic_norm="none",          # none | layer | instance | batch (batch only without a penalty)
    # algorithm
    algorithm="wgan-gp",
    n_critic=5,
    gp_weight=10.0,
    gp_center=1.0,
    r1_weight=0.0,               # zero-centred penalty on real data (R1), weight gamma/2 applied as given
    lazy_reg=1,                  # penalty every k critic steps with weight x k
    clip=0.01,
    sn_iterations=1,
    # optimisation
    batch_size=64,
    steps=20000,                 # generator steps
    max_minutes=0.0,             # stop after this wall time (0: no limit), with a final log, grid and checkpoint
    cpu_max_minutes=0.0,         # the same limit, applied only when training on CPU (the default preset: 9.5)
    optimizer="adam",            # adam | rmsprop
    lr_g=1e-4,
    lr_d=1e-4,
    beta1=0.0,
    beta2=0.9,
    lr_decay=False,              # linear decay to 0 over `steps`
    ema=0.999,                   # generator EMA decay (0 disables)
    precision="auto",            # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    cuda_graphs=True,            # capture each training iteration as a CUDA graph where possible (wgan_fast/graphs.py)
    # logging and checkpoints
    log_every=50,
    sample_every=500,
    ckpt_every=1000,
    keep_ckpts=3,
    n_samples=64,
    on_nonfinite="stop",         # stop | rollback (to the last checkpoint with lr x 0.5)
    # evaluation during training (wgan_fast.metrics): every eval_every generator steps
    # (0: never), the EMA generator's eval_metric on eval_n samples against eval_n_real
    # real images of the test split; the best-scoring state is kept as best.pt
    eval_every=0,
    eval_metric="fid",           # fid | kid
    eval_features="inception",   # inception | classifier (the domain classifier: cheap, Fashion-MNIST only)
    eval_n=2000,
    eval_n_real=2000,
    resume=False,
    tensorboard=True,
)

# Algorithm defaults from the literature, applied before user settings.
ALGORITHM_DEFAULTS = {
    "gan": dict(n_critic=1, optimizer="adam", lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999),
    "wgan-clip": dict(n_critic=5, optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, clip=0.01),
    "wgan-gp": dict(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9, gp_weight=10.0),
    "wgan-lp": dict(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9, gp_weight=10.0),
    "wgan-sn": dict(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9),
}


class ConfigError(ValueError):
    """A config value that cannot run; the message names the key."""


def _parse(key: str, text, default):
    if not isinstance(text, str):
        return text
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
    return text


def parse_overrides(argv: list[str]) -> dict:
    """`--key value` / `--key=value` / `--flag` pairs to a dict (keys with - or _)."""
    out, i = {}, 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}: use --key value")
        key, eq, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val, i = argv[i + 1], i + 1
            else:
                val = "true"
        out[key] = val
        i += 1
    return out


def resolve(overrides: dict | None = None, yaml_path: str | None = None) -> dict:
    """DEFAULTS <- algorithm defaults <- preset <- YAML <- overrides, validated."""
    from .presets import PRESETS  # noqa: PLC0415

    user: dict = {}
    if yaml_path:
        user.update(load_yaml(yaml_path))
    user.update(overrides or {})
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)} (known: {', '.join(sorted(DEFAULTS))})")
    preset_name = user.get("preset", "")
    if preset_name and preset_name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {preset_name!r} (known: {', '.join(sorted(PRESETS))})")
    preset = copy.deepcopy(PRESETS.get(preset_name, {}))
    algorithm = user.get("algorithm", preset.get("algorithm", DEFAULTS["algorithm"]))
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm: must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    cfg = dict(DEFAULTS)
    cfg.update(ALGORITHM_DEFAULTS[algorithm])
    cfg.update(preset)
    for key, val in user.items():
        cfg[key] = _parse(key, val, DEFAULTS[key])
    validate(cfg)
    return cfg


def load_yaml(path: str) -> dict:
    import yaml  # noqa: PLC0415

    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def validate(cfg: dict) -> None:
    """Raise ConfigError naming the key of the first value that cannot run."""
    from . import models  # noqa: PLC0415
    from .models.dcgan import GEOMETRY  # noqa: PLC0415

    def need(cond, key, why):
        if not cond:
            raise ConfigError(f"{key}: {why}, got {cfg[key]!r}")

    for key, default in DEFAULTS.items():
        val = cfg[key]
        if isinstance(default, bool):
            need(isinstance(val, bool), key, "must be true or false")
        elif isinstance(default, int):
            need(isinstance(val, int) and not isinstance(val, bool), key, "must be an integer")
        elif isinstance(default, float):
            need(isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val), key,
                 "must be a finite number")
        elif isinstance(default, str):
            need(isinstance(val, str), key, "must be a string")
    need(cfg["algorithm"] in ALGORITHMS, "algorithm", f"must be one of {ALGORITHMS}")
    need(cfg["precision"] in PRECISIONS, "precision", f"must be one of {PRECISIONS}")
    need(cfg["device"] in ("auto", "cpu", "cuda") or cfg["device"].startswith("cuda:"), "device", "must be auto, cpu or cuda[:N]")
    need(cfg["model"] in models.KINDS, "model", f"must be one of {models.KINDS}")
    need(cfg["critic_norm"] in models.CRITIC_NORMS, "critic_norm", f"must be one of {models.CRITIC_NORMS}")
    need(cfg["optimizer"] in ("adam", "rmsprop"), "optimizer", "must be adam or rmsprop")
    need(cfg["on_nonfinite"] in ("stop", "rollback"), "on_nonfinite", "must be stop or rollback")
    need(cfg["loader"] in ("auto", "resident", "dali", "torchvision"), "loader", "must be auto, resident, dali or torchvision")
    need(cfg["crop"] in ("center", "none"), "crop", "must be center or none")
    need(cfg["on_corrupt"] in ("skip", "error"), "on_corrupt", "must be skip or error")
    need(0 <= cfg["max_corrupt"] <= 1, "max_corrupt", "must be in [0, 1]")
    need(cfg["num_workers"] >= 0, "num_workers", "must be >= 0")
    need(cfg["eval_every"] >= 0, "eval_every", "must be >= 0 (0: no evaluation during training)")
    need(cfg["eval_metric"] in ("fid", "kid"), "eval_metric", "must be fid or kid")
    need(cfg["eval_features"] in ("inception", "classifier"), "eval_features", "must be inception or classifier")
    need(cfg["eval_n"] >= 4, "eval_n", "must be >= 4")
    need(cfg["eval_n_real"] >= 4, "eval_n_real", "must be >= 4")
    known = ("fashion-mnist", "mnist", "cifar10", "stl10", "celeba", "folder", "toy-8gaussians", "toy-moons",
             "toy-scurve")
    need(cfg["dataset"] in known, "dataset", f"must be one of {', '.join(known)}")
    for key in ("lr_g", "lr_d"):
        need(cfg[key] > 0, key, "must be > 0")
    for key in ("n_critic", "batch_size", "steps", "log_every", "sample_every", "ckpt_every", "keep_ckpts",
                "n_samples", "z_dim", "g_base", "d_base", "lazy_reg", "sn_iterations", "resolution"):
        need(cfg[key] >= 1, key, "must be >= 1")
    need(cfg["channels"] in (1, 3), "channels", "must be 1 or 3")
    need(0 <= cfg["beta1"] < 1 and 0 <= cfg["beta2"] < 1, "beta1" if not 0 <= cfg["beta1"] < 1 else "beta2", "must be in [0, 1)")
    need(0 <= cfg["ema"] < 1, "ema", "must be in [0, 1)")
    need(cfg["gp_weight"] >= 0, "gp_weight", "must be >= 0")
    need(cfg["gp_center"] >= 0, "gp_center", "must be >= 0")
    need(cfg["r1_weight"] >= 0, "r1_weight", "must be >= 0")
    need(cfg["max_minutes"] >= 0, "max_minutes", "must be >= 0")
    need(cfg["cpu_max_minutes"] >= 0, "cpu_max_minutes", "must be >= 0")
    if cfg["algorithm"] == "wgan-clip":
        need(cfg["clip"] > 0, "clip", "must be > 0 for wgan-clip")
    if cfg["conditional"]:
        need(cfg["num_classes"] >= 2, "num_classes", "must be >= 2 for a conditional model")
    toy = cfg["dataset"].startswith("toy-")
    if toy:
        need(cfg["model"] == "mlp", "model", "2-D toy datasets use the mlp model")
    elif cfg["model"] == "dcgan":
        need(cfg["resolution"] in GEOMETRY, "resolution", f"the dcgan model makes {sorted(GEOMETRY)} px")
    elif cfg["model"] == "resnet":
        need(cfg["resolution"] == 32, "resolution", "the resnet model makes 32 px")
    penalised = cfg["algorithm"] in ("wgan-gp", "wgan-lp") or cfg["r1_weight"] > 0
    if penalised and cfg["critic_norm"] == "batch":
        raise ConfigError(
            "critic_norm: BatchNorm in a critic trained with a gradient penalty mixes samples and breaks the "
            "per-sample penalty; use none, layer or instance"
        )
