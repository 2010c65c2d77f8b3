"""Run configuration: plain data, documented and validated before anything runs.

A run's config is DEFAULTS, updated by the algorithm's defaults from the
literature, a preset (`preset: name`), a YAML file, then `--key value`
overrides from the command line. Every key is declared once in KEYS, with its
group, default, allowed values and one line of meaning: `--help`, the
validation and docs/training.md's key table are all made from it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from . import data, models
from .errors import ConfigError

ALGORITHMS = ("gan", "wgan-clip", "wgan-gp", "wgan-lp", "wgan-sn")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Key:
    name: str
    default: object
    group: str
    help: str
    choices: tuple = ()
    low: float | None = None      # smallest allowed value (numbers)
    high: float | None = None     # largest allowed value (numbers)
    resume_ok: bool = False       # may differ from the checkpoint's config on --resume

    @property
    def type_name(self) -> str:
        return {bool: "bool", int: "int", float: "float", str: "str"}[type(self.default)]


GROUPS = ("run", "data", "model", "algorithm", "optimisation", "precision", "logging and checkpoints", "evaluation")

# The names come from the registries of the data and model packages, which
# also check the combinations of keys they accept (validate asks them).
DATASETS = data.DATASETS
MODELS = models.KINDS
ACTIVATIONS = models.ACTIVATIONS

KEYS = (
    # run
    Key("name", "", "run", "run folder name under out_dir (default: the preset, else algorithm-dataset)",
        resume_ok=True),
    Key("out_dir", "runs", "run", "folder that holds run folders", resume_ok=True),
    Key("preset", "", "run", "named configuration to start from (listed under presets)", resume_ok=True),
    Key("seed", 0, "run", "seed of weights, data order, noise and sample grids", low=0, high=2**32 - 1),
    Key("device", "auto", "run", "auto (CUDA when available), cpu, cuda or cuda:N", resume_ok=True),
    Key("resume", False, "run", "continue the run folder's newest readable checkpoint", resume_ok=True),
    Key("overwrite", False, "run", "start afresh in a run folder that already holds a run, deleting its "
        "checkpoints, metrics and samples", resume_ok=True),
    # data
    Key("dataset", "fashion-mnist", "data", "the training images", choices=DATASETS),
    Key("data_dir", "", "data", "folder of the dataset's files (default: $WGAN_FAST_DATA; Fashion-MNIST is "
        "also found in Debian's dataset-fashion-mnist)", resume_ok=True),
    Key("resolution", 32, "data", "image side in pixels (images are resized to it once, at load)", low=1),
    Key("channels", 1, "data", "1 (grayscale) or 3 (RGB)", choices=(1, 3)),
    Key("flip", False, "data", "random horizontal flips"),
    Key("loader", "auto", "data", "image folders: dali (NVIDIA DALI, extra [dali]), torchvision (a DataLoader) "
        "or resident (decoded once, held on the device); auto: dali when installed; array datasets are "
        "always resident", choices=("auto", "resident", "dali", "torchvision"), resume_ok=True),
    Key("crop", "center", "data", "center: square centre crop, then resize; none: resize the whole image",
        choices=("center", "none")),
    Key("on_corrupt", "skip", "data", "skip: unreadable image files are skipped and counted (at most "
        "max_corrupt of them); error: stop at the first", choices=("skip", "error"), resume_ok=True),
    Key("max_corrupt", 0.01, "data", "largest share of unreadable files that skip tolerates", low=0, high=1,
        resume_ok=True),
    Key("num_workers", 2, "data", "decoding worker processes of the torchvision loader", low=0, resume_ok=True),
    Key("conditional", False, "data", "class-conditional generator and projection critic (needs labels)"),
    Key("num_classes", 10, "data", "number of classes of a conditional model", low=2),
    # model
    Key("model", "dcgan", "model", "mlp (fully connected), dcgan (28/32/64/96 px) or resnet (32 px)",
        choices=MODELS),
    Key("z_dim", 128, "model", "latent dimension", low=1),
    Key("g_base", 64, "model", "generator width (channels of its widest layer / 8; MLP hidden size for toys)",
        low=1),
    Key("d_base", 64, "model", "critic width", low=1),
    Key("critic_norm", "none", "model", "normalisation in the critic (batch only without a penalty; the mlp "
        "critic takes none or layer)", choices=("none", "layer", "instance", "batch")),
    Key("g_activation", "auto", "model", "the generator's hidden activation (leaky_relu with activation_slope); "
        "auto: the model's own (mlp leaky_relu, dcgan and resnet relu)", choices=("auto",) + ACTIVATIONS),
    Key("d_activation", "auto", "model", "the critic's hidden activation, with an exact double backward for the "
        "penalty; auto: the model's own (mlp and dcgan leaky_relu, resnet relu)", choices=("auto",) + ACTIVATIONS),
    Key("activation_slope", 0.2, "model", "negative slope of leaky_relu in G and D", low=0, high=1),
    Key("sync_bn", False, "model", "with several processes, SyncBatchNorm in the generator so its BatchNorm "
        "statistics span the global batch (CUDA/NCCL only; without it each process normalises its own shard)"),
    # algorithm
    Key("algorithm", "wgan-gp", "algorithm", "the objective and Lipschitz constraint", choices=ALGORITHMS),
    Key("n_critic", 5, "algorithm", "critic steps per generator step", low=1),
    Key("gp_weight", 10.0, "algorithm", "gradient-penalty weight lambda (wgan-gp, wgan-lp)", low=0),
    Key("gp_center", 1.0, "algorithm", "target gradient norm of the penalty", low=0),
    Key("r1_weight", 0.0, "algorithm", "zero-centred penalty on real data (R1), weight as given (gamma/2)", low=0),
    Key("lazy_reg", 1, "algorithm", "apply the penalties every k-th critic step with weight x k", low=1),
    Key("ac_weight", 0.0, "algorithm", "conditional only: weight of the critic's auxiliary classifier "
        "(AC-GAN) cross-entropy on real images (0: no class head)", low=0),
    Key("ac_weight_g", 0.0, "algorithm", "conditional only: weight of that classifier's cross-entropy on the "
        "generator's samples in the generator loss (Gulrajani et al.: 1 and 0.1)", low=0),
    Key("clip", 0.01, "algorithm", "weight-clipping bound c (wgan-clip)", low=0),
    Key("sn_iterations", 1, "algorithm", "power iterations per critic step (wgan-sn)", low=1),
    # optimisation
    Key("batch_size", 64, "optimisation", "images per process per step", low=1),
    Key("steps", 20000, "optimisation", "generator steps in all", low=1, resume_ok=True),
    Key("max_minutes", 0.0, "optimisation", "stop after this wall time with a final log, grid and checkpoint "
        "(0: no limit)", low=0, resume_ok=True),
    Key("cpu_max_minutes", 0.0, "optimisation", "the same limit, applied only when training on a CPU", low=0,
        resume_ok=True),
    Key("optimizer", "adam", "optimisation", "Adam (fused on CUDA) or RMSprop", choices=("adam", "rmsprop")),
    Key("lr_g", 1e-4, "optimisation", "generator learning rate (a resume may lower it)", low=0, resume_ok=True),
    Key("lr_d", 1e-4, "optimisation", "critic learning rate (a resume may lower it)", low=0, resume_ok=True),
    Key("beta1", 0.0, "optimisation", "Adam beta1", low=0, high=1),
    Key("beta2", 0.9, "optimisation", "Adam beta2", low=0, high=1),
    Key("lr_decay", False, "optimisation", "decay both learning rates linearly to 0 over steps"),
    Key("ema", 0.999, "optimisation", "decay of the generator's moving average used for samples (0: none)",
        low=0, high=1),
    Key("on_nonfinite", "stop", "optimisation", "on NaN/inf: stop (exit 3, the last finite checkpoint kept) or "
        "rollback (resume from it with both learning rates halved, at most 3 times)",
        choices=("stop", "rollback"), resume_ok=True),
    # precision
    Key("precision", "auto", "precision", "autocast dtype; auto: bf16 on CUDA and on CPUs with AMX-BF16, fp32 "
        "on other CPUs (with AVX512-BF16 alone bf16 trained slower: docs/performance.md); the run's "
        "config.json says what auto became (resolved.precision)", choices=PRECISIONS),
    Key("cuda_graphs", True, "precision", "capture each training iteration as one CUDA graph where possible",
        resume_ok=True),
    # logging and checkpoints
    Key("log_every", 50, "logging and checkpoints", "generator steps per metrics.jsonl line and progress line",
        low=1, resume_ok=True),
    Key("sample_every", 500, "logging and checkpoints", "generator steps per sample grid", low=1, resume_ok=True),
    Key("ckpt_every", 1000, "logging and checkpoints", "generator steps per checkpoint", low=1, resume_ok=True),
    Key("keep_ckpts", 3, "logging and checkpoints", "newest checkpoints kept", low=1, resume_ok=True),
    Key("n_samples", 64, "logging and checkpoints", "images per sample grid", low=1, resume_ok=True),
    Key("tensorboard", True, "logging and checkpoints", "write TensorBoard events to <run>/tb", resume_ok=True),
    # evaluation
    Key("eval_every", 0, "evaluation", "generator steps per evaluation of the EMA generator (0: never); the "
        "best state is kept as best.pt", low=0, resume_ok=True),
    Key("eval_metric", "fid", "evaluation", "metric of the in-training evaluation (lower is better; best.pt keeps "
        "its best): fid, kid, or class-cov (class coverage: total variation between the domain classifier's class "
        "shares of the samples and of real images; Fashion-MNIST/MNIST)", choices=("fid", "kid", "class-cov"),
        resume_ok=True),
    Key("eval_features", "inception", "evaluation", "inception (Inception-2015-12-05, extra [eval]) or "
        "classifier (the domain classifier: cheap, Fashion-MNIST/MNIST)", choices=("inception", "classifier"),
        resume_ok=True),
    Key("eval_n", 2000, "evaluation", "generated samples per evaluation", low=4, resume_ok=True),
    Key("eval_n_real", 2000, "evaluation", "real test images per evaluation", low=4, resume_ok=True),
)

KEY = {k.name: k for k in KEYS}
DEFAULTS = {k.name: k.default for k in KEYS}
RESUME_OK = tuple(k.name for k in KEYS if k.resume_ok)

# Algorithm defaults from the literature, applied before user settings.
ALGORITHM_DEFAULTS = {
    "gan": dict(n_critic=1, optimizer="adam", lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999),
    "wgan-clip": dict(n_critic=5, optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, clip=0.01),
    "wgan-gp": dict(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9, gp_weight=10.0),
    "wgan-lp": dict(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9, gp_weight=10.0),
    "wgan-sn": dict(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9),
}


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
        if not tok.startswith("--") or len(tok) == 2:
            raise ConfigError(f"unexpected argument {tok!r}: use --key value (see --help)")
        key, eq, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val, i = argv[i + 1], i + 1
            elif key in DEFAULTS and not isinstance(DEFAULTS[key], bool):
                raise ConfigError(f"{key}: {tok} needs a value ({tok} VALUE); only true/false keys may be bare flags")
            else:
                val = "true"
        out[key] = val
        i += 1
    return out


def _unknown(keys) -> list[str]:
    return sorted(set(keys) - set(DEFAULTS))


def resolve(overrides: dict | None = None, yaml_path: str | None = None) -> dict:
    """DEFAULTS <- algorithm defaults <- preset <- YAML <- overrides, validated."""
    from .presets import PRESETS  # noqa: PLC0415

    user: dict = {}
    if yaml_path:
        user.update(load_yaml(yaml_path))
    user.update(overrides or {})
    unknown = _unknown(user)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)} (see --help for the keys)")
    preset_name = user.get("preset", "")
    if preset_name and (not isinstance(preset_name, str) or preset_name not in PRESETS):
        raise ConfigError(f"preset: unknown preset {preset_name!r} (known: {', '.join(sorted(PRESETS))})")
    preset = copy.deepcopy(PRESETS.get(preset_name, {}).get("config", {}))
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


def load_yaml(path: str, what: str = "config file") -> dict:
    """A YAML file's mapping (keys with - read as _); ConfigError naming the file (as `what`) otherwise."""
    from .errors import require  # noqa: PLC0415

    yaml = require("yaml", "core", "reading a YAML config")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of key: value, got {type(data).__name__}")
    data.pop(RESOLVED, None)  # a run's config.json: what its auto values became, not settings
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _check_key(k: Key, val) -> str | None:
    """Why `val` is not a valid value of key k, or None."""
    default = k.default
    if isinstance(default, bool):
        if not isinstance(val, bool):
            return "must be true or false"
    elif isinstance(default, int):
        if not isinstance(val, int) or isinstance(val, bool):
            return "must be an integer"
    elif isinstance(default, float):
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not math.isfinite(val):
            return "must be a finite number"
    elif isinstance(default, str) and not isinstance(val, str):
        return "must be a string"
    if k.choices and val not in k.choices:
        return f"must be one of {', '.join(map(str, k.choices))}"
    if k.low is not None and val < k.low:
        return f"must be >= {_num(k.low)}"
    if k.high is not None and val > k.high:
        return f"must be <= {_num(k.high)}"
    return None


def validate(cfg: dict) -> None:
    """Raise ConfigError naming the key of the first value that cannot run."""
    unknown = _unknown(cfg)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)} (see --help for the keys)")
    for k in KEYS:
        why = _check_key(k, cfg[k.name])
        if why:
            raise ConfigError(f"{k.name}: {why}, got {cfg[k.name]!r}")

    def need(cond, key, why):
        if not cond:
            raise ConfigError(f"{key}: {why}, got {cfg[key]!r}")

    name = cfg["name"]
    need(name not in (".", "..") and "/" not in name and "\\" not in name, "name",
         "must be one folder name under out_dir (no /, not . or ..)")
    device = cfg["device"]
    need(device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()), "device",
         "must be auto, cpu, cuda or cuda:N")
    for key in ("lr_g", "lr_d"):
        need(cfg[key] > 0, key, "must be > 0")
    for key in ("beta1", "beta2", "ema"):
        need(cfg[key] < 1, key, "must be < 1")
    if cfg["algorithm"] == "wgan-clip":
        need(cfg["clip"] > 0, "clip", "must be > 0 for wgan-clip")
    penalised = cfg["algorithm"] in ("wgan-gp", "wgan-lp") or cfg["r1_weight"] > 0
    if penalised and cfg["critic_norm"] == "batch":
        raise ConfigError(
            "critic_norm: BatchNorm in a critic trained with a gradient penalty mixes samples and breaks the "
            "per-sample penalty; use none, layer or instance")
    if (cfg["ac_weight"] > 0 or cfg["ac_weight_g"] > 0) and not cfg["conditional"]:
        raise ConfigError(f"ac_weight: the auxiliary classifier needs class labels: set conditional true, or "
                          f"ac_weight and ac_weight_g to 0 (got {cfg['ac_weight']!r}, {cfg['ac_weight_g']!r})")
    need(cfg["ac_weight_g"] == 0 or cfg["ac_weight"] > 0, "ac_weight",
         f"must be > 0 when ac_weight_g is ({cfg['ac_weight_g']!r}): an untrained class head gives the generator "
         f"noise to follow")
    if cfg["resume"] and cfg["overwrite"]:
        raise ConfigError("overwrite: resume=true continues the run folder, overwrite=true deletes it; choose one")
    toy = cfg["dataset"].startswith("toy-")
    if cfg["eval_every"] and toy:
        raise ConfigError("eval_every: image metrics do not apply to the 2-D toy datasets; set it to 0")
    if cfg["eval_every"] and cfg["eval_metric"] == "class-cov" and cfg["dataset"] not in ("fashion-mnist", "mnist"):
        raise ConfigError(f"eval_metric: class-cov needs the domain classifier, which knows fashion-mnist and mnist, "
                          f"not {cfg['dataset']}; use fid or kid")
    if cfg["eval_every"] and cfg["eval_features"] == "classifier" and cfg["dataset"] not in ("fashion-mnist", "mnist"):
        raise ConfigError(f"eval_features: the domain classifier knows fashion-mnist and mnist, not "
                          f"{cfg['dataset']}; use inception")
    if cfg["eval_every"] and cfg["eval_metric"] == "kid" and cfg["eval_n"] < 8:
        raise ConfigError("eval_n: KID needs at least 8 samples")
    data.check_config(cfg)
    models.check_config(cfg)


def resume_differences(saved: dict, now: dict) -> list[str]:
    """'key (checkpoint: a, now: b)' for each key that differs between a
    checkpoint's config and this run's and may not change on resume. A key the
    checkpoint does not name (older versions) counts as its default."""
    out = []
    for k in KEYS:
        if k.resume_ok:
            continue
        before = saved.get(k.name, k.default)
        if before != now[k.name]:
            out.append(f"{k.name} (checkpoint: {_show(before)}, now: {_show(now[k.name])})")
    return out


def _precision_here() -> str:
    from .runtime import auto_precision, cpu_bf16_features  # noqa: PLC0415

    bf16 = ", ".join(sorted(cpu_bf16_features())).upper().replace("_", "-") or "no bf16 instructions"
    return f"auto = {auto_precision('cpu')} on this CPU ({bf16}), {auto_precision('cuda')} on CUDA"


# what an `auto` value becomes on this machine, shown under the key in --help
RESOLVED_HERE = {"precision": _precision_here}
# the key of config.json holding what the run's auto values became (informative; ignored when read back)
RESOLVED = "resolved"


def help_text() -> str:
    """Every key by group: type, default, allowed values, meaning (for --help)."""
    lines = []
    for group in GROUPS:
        lines.append(f"{group}:")
        for k in (k for k in KEYS if k.group == group):
            allowed = f" {{{','.join(map(str, k.choices))}}}" if k.choices else ""
            lines.append(f"  --{k.name.replace('_', '-')} {k.type_name.upper()}{allowed}  "
                         f"(default: {_show(k.default)}){'  [may change on resume]' if k.resume_ok else ''}")
            lines.append(f"      {k.help}")
            if k.name in RESOLVED_HERE:
                lines.append(f"      here: {RESOLVED_HERE[k.name]()}")
        lines.append("")
    return "\n".join(lines)


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if value == "" else str(value)


def markdown_table() -> str:
    """The key table of docs/training.md (a test keeps the two equal)."""
    rows = ["| key | type | default | allowed | resume | meaning |", "|---|---|---|---|---|---|"]
    for group in GROUPS:
        rows.append(f"| **{group}** | | | | | |")
        for k in (k for k in KEYS if k.group == group):
            allowed = ", ".join(f"`{c}`" for c in k.choices) if k.choices else _range(k)
            rows.append(f"| `{k.name}` | {k.type_name} | `{_show(k.default)}` | {allowed} | "
                        f"{'may change' if k.resume_ok else ''} | {k.help.replace('|', '/')} |")
    return "\n".join(rows)


def _num(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range(k: Key) -> str:
    if k.low is not None and k.high is not None:
        return f"{_num(k.low)} to {_num(k.high)}"
    if k.low is not None:
        return f">= {_num(k.low)}"
    return ""
