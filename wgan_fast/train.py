"""Train a (Wasserstein) GAN.

    torchrun --nproc_per_node=N -m wgan_fast.train [--config run.yaml] [--key value ...]
    python -m wgan_fast.train                      # the flagship default, one process

config -> data -> models -> steps -> logs/checkpoints, top to bottom.
"""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist

from . import checkpoint, config, errors, models
from .errors import CheckpointError, DeviceError, NonFiniteError, UsageError
from .runlog import RunLog
from .runtime import resolve_device
from .step import Metrics, Parts, critic_step, generator_step


# ---- process, device, precision ---------------------------------------------------

def setup_distributed(cfg):
    """(rank, world_size, device). torchrun's env selects DDP: NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = resolve_device(cfg["device"])  # DeviceError when CUDA is asked for and absent
    use_cuda = want.type == "cuda"
    device = torch.device("cuda", local if cfg["device"] in ("auto", "cuda") else want.index or 0) if use_cuda \
        else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if cfg["sync_bn"] and world > 1 and not use_cuda:
        raise DeviceError("sync_bn: torch's SyncBatchNorm synchronises CUDA tensors only (NCCL); on the CPU (gloo) "
                          "each process normalises its own shard: set --sync-bn false")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, device


def make_autocast(cfg, device):
    precision = cfg["precision"]
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return precision, nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return precision, lambda: torch.autocast(device.type, dtype=dtype)


def flat_all_reduce(world):
    """Average a module's gradients over ranks with one flat all-reduce.

    Used instead of a DDP wrapper: the penalty's create_graph gradient and the
    several critic forwards per step are then no concern of DDP's reducer, and
    every gradient (penalty's included) is reduced exactly once.
    """
    if world == 1:
        return lambda module: None

    def sync(module):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    return sync


# ---- data and models -----------------------------------------------------------------

def make_data(cfg, device, rank, world, start_step):
    from . import toys  # noqa: PLC0415

    if cfg["dataset"] in toys.TOYS:
        return toys.ToyStream(cfg["dataset"], cfg["batch_size"], device, cfg["seed"], rank, step=start_step)
    from . import data  # noqa: PLC0415

    return data.make_stream(cfg, device=device, rank=rank, world_size=world)


make_models = models.from_config


def make_optimizer(cfg, params, lr, device, capturable=False):
    """Adam (fused on CUDA) or RMSprop; `capturable` (CUDA graphs): state and
    learning rate live on the device, the LR schedule fills the lr tensor."""
    if capturable:
        lr = torch.tensor(lr, device=device)
    if cfg["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, **({"capturable": True, "foreach": True} if capturable else {}))
    fused = {"fused": True, "capturable": capturable} if device.type == "cuda" else {}
    return torch.optim.Adam(params, lr=lr, betas=(cfg["beta1"], cfg["beta2"]), **fused)


def ema_weight(decay, step):
    """How far the EMA moves towards the model at `step`. Warm-up: early on the
    average follows the model closely, so short runs (a CPU's ten minutes)
    still sample from a trained generator."""
    return 1 - min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema, model, weight):
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, weight)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


# ---- checkpoint state --------------------------------------------------------------

def rng_state(noise_gen, device):
    state = {"torch": torch.get_rng_state(), "noise": noise_gen.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, noise_gen, device):
    torch.set_rng_state(state["torch"])
    noise_gen.set_state(state["noise"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_to_all(obj, world):
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def set_learning_rate(opt, sched, lr):
    """Make `lr` the base learning rate of a loaded optimiser and its schedule
    (their state dicts restore the old one: a resume that lowers lr_d/lr_g, or a
    rollback, must not train on at the old rate)."""
    sched.base_lrs = [lr] * len(sched.base_lrs)
    now = lr * sched.lr_lambdas[0](sched.last_epoch)
    for group in opt.param_groups:
        group["initial_lr"] = lr
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(now)
        else:
            group["lr"] = now


def nonfinite_parts(named: dict) -> list[str]:
    """Names of the modules and optimisers (by their key in `named`) holding a
    NaN or inf; one host synchronisation."""
    flags = {}
    for name, obj in named.items():
        if isinstance(obj, torch.optim.Optimizer):
            tensors = [t for st in obj.state.values() for t in st.values() if torch.is_tensor(t)]
        else:
            tensors = list(obj.state_dict().values())
        tensors = [t for t in tensors if t.is_floating_point()]
        if tensors:
            flags[name] = torch.stack([torch.isfinite(t).all() for t in tensors]).all()
    if not flags:
        return []
    ok = torch.stack(list(flags.values())).tolist()
    return [name for name, good in zip(flags, ok) if not good]


# ---- the run folder -----------------------------------------------------------------

def run_name(cfg):
    return cfg["name"] or cfg["preset"] or f"{cfg['algorithm']}-{cfg['dataset']}"


# what the trainer writes into a run folder (removed by --overwrite true)
RUN_OUTPUTS = ("ckpt_*.pt", ".ckpt_*.tmp", checkpoint.BEST, "metrics.jsonl", "config.json", "samples", "tb",
               "samples.gif", "losses.png")


def prepare_run_folder(cfg, run_dir, resume, rank, world):
    """(state, checkpoint path) to resume from, or (None, None) for a fresh run.

    A resume compares the checkpoint's config with this one before anything
    loads; a fresh run refuses a folder that holds a run unless overwrite."""
    found = checkpoint.list_checkpoints(run_dir)
    if resume:
        state, path = checkpoint.load_latest(run_dir, map_location="cpu")
        if state is None and found:
            raise CheckpointError(f"{run_dir}: none of its {len(found)} checkpoint(s) can be read (newest: "
                                  f"{found[-1]}); resume from an intact copy, or start afresh with --overwrite true")
        if state is None:
            if rank == 0:
                print(f"[wgan_fast] --resume: no checkpoint in {run_dir} yet; starting at step 0", file=sys.stderr)
            return None, None
        differences = config.resume_differences(state.get("config", {}), cfg)
        if differences:
            raise config.ConfigError(
                f"resume: {path} was trained with another config: {'; '.join(differences)}. Resume with the run's "
                f"own settings (--config {os.path.join(run_dir, 'config.json')}), or train a new run (--name)")
        return state, path
    holds_run = found or os.path.exists(os.path.join(run_dir, "metrics.jsonl"))
    if holds_run and not cfg["overwrite"]:
        raise UsageError(f"{run_dir} already holds a run ({len(found)} checkpoint(s)): continue it with --resume true, "
                         f"start it afresh with --overwrite true, or choose another --name")
    if holds_run and rank == 0:
        import glob  # noqa: PLC0415
        import shutil  # noqa: PLC0415

        for pattern in RUN_OUTPUTS:
            for path in glob.glob(os.path.join(run_dir, pattern)):
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    if world > 1:
        dist.barrier()  # no rank writes before rank 0 has cleared the folder
    return None, None


# ---- the run ----------------------------------------------------------------------


def train(cfg: dict, data=None) -> str:
    """Train per `cfg`; `data` may inject a batch stream (tests), else one is made from cfg."""
    rank, world, device = setup_distributed(cfg)
    run_dir = os.path.join(cfg["out_dir"], run_name(cfg))
    torch.manual_seed(cfg["seed"] * 1000 + rank)
    precision, autocast = make_autocast(cfg, device)

    # resume: the newest checkpoint that loads (also when torchrun --max-restarts restarted us)
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    state, ckpt_path = prepare_run_folder(cfg, run_dir, cfg["resume"] or restarted, rank, world)
    start = int(state["step"]) if state else 0

    data = data if data is not None else make_data(cfg, device, rank, world, start)
    G, D = make_models(cfg, device)
    if cfg["sync_bn"] and world > 1:  # BatchNorm statistics over the global batch (CUDA only, checked above)
        G = torch.nn.SyncBatchNorm.convert_sync_batchnorm(G)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if world > 1:  # identical start on every rank
        for t in list(G.state_dict().values()) + list(D.state_dict().values()):
            dist.broadcast(t, 0)
        G_ema.load_state_dict(G.state_dict())
    from . import graphs  # noqa: PLC0415

    no_graphs = graphs.unsupported_reason(cfg, device, world, precision) if cfg["cuda_graphs"] else "cuda_graphs=false"
    if cfg["cuda_graphs"] and no_graphs and device.type == "cuda" and rank == 0:
        print(f"[wgan_fast] CUDA graphs off: {no_graphs}", file=sys.stderr)
    opt_g = make_optimizer(cfg, G.parameters(), cfg["lr_g"], device, capturable=not no_graphs)
    opt_d = make_optimizer(cfg, D.parameters(), cfg["lr_d"], device, capturable=not no_graphs)
    fp16 = precision == "fp16"
    scaler_g, scaler_d = torch.amp.GradScaler(device.type, enabled=fp16), torch.amp.GradScaler(device.type, enabled=fp16)
    decay = (lambda s: max(0.0, 1.0 - s / cfg["steps"])) if cfg["lr_decay"] else (lambda s: 1.0)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, decay)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, decay)
    # Noise, class labels and penalty alphas are drawn for the global batch
    # (world x B) from one generator seeded alike on every rank; each rank takes
    # its own slice. Every rank so draws different noise, and a run on N
    # processes sees exactly the randomness of one process on the N-fold batch.
    noise_gen = torch.Generator(device=device).manual_seed(cfg["seed"] * 1000 + 1)
    num_classes = cfg["num_classes"] if cfg["conditional"] else 0
    # fixed noise for the sample grids: one row per class when conditional
    fixed_gen = torch.Generator(device="cpu").manual_seed(cfg["seed"] + 12345)
    n_fixed = cfg["n_samples"] if not num_classes else num_classes * max(1, cfg["n_samples"] // num_classes)
    fixed_z = torch.randn(n_fixed, cfg["z_dim"], generator=fixed_gen).to(device)
    fixed_gen_dev = torch.Generator(device=device).manual_seed(cfg["seed"] + 54321)
    fixed_y = (torch.arange(num_classes).repeat_interleave(n_fixed // num_classes).to(device) if num_classes else None)

    if state:
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"]), G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        scaler_g.load_state_dict(state["scaler_g"]), scaler_d.load_state_dict(state["scaler_d"])
        sched_g.load_state_dict(state["sched_g"]), sched_d.load_state_dict(state["sched_d"])
        set_learning_rate(opt_g, sched_g, cfg["lr_g"]), set_learning_rate(opt_d, sched_d, cfg["lr_d"])
        data.load_state_dict(state["data"][rank])
        set_rng_state(state["rng"][rank], noise_gen, device)

    metrics = Metrics(device)
    parts = Parts(cfg, G, D, opt_g, opt_d, scaler_g, scaler_d, autocast, flat_all_reduce(world), metrics)
    log = RunLog(run_dir, cfg, cfg["steps"], enabled=rank == 0, start_step=start)
    B, n_critic = cfg["batch_size"], cfg["n_critic"]
    sn = cfg["algorithm"] == "wgan-sn"
    if sn:
        from . import nn as wnn  # noqa: PLC0415
    t_start, t_log, images = time.time(), time.time(), 0
    limit_min = cfg["max_minutes"] or (cfg["cpu_max_minutes"] if device.type == "cpu" else 0.0)
    last_good = ckpt_path

    best = dict(state.get("best", {})) if state else {}  # the best evaluation so far: {"step", metric}

    def save(step):
        # nothing non-finite is ever written, so rotation never drops the last finite checkpoint for a NaN one
        bad = nonfinite_parts(dict(G=G, D=D, G_ema=G_ema, opt_g=opt_g, opt_d=opt_d))
        if not torch.isfinite(metrics.buf).all():
            bad.append("losses")
        if bad:
            where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"
            raise NonFiniteError(f"non-finite {', '.join(bad)} at generator step {step}, found before writing its "
                                 f"checkpoint ({where}); resume with --resume true after lowering lr_d/lr_g, or set "
                                 f"--on-nonfinite rollback")
        st = dict(step=step, config=cfg, G=G.state_dict(), D=D.state_dict(), G_ema=G_ema.state_dict(),
                  opt_g=opt_g.state_dict(), opt_d=opt_d.state_dict(), scaler_g=scaler_g.state_dict(),
                  scaler_d=scaler_d.state_dict(), sched_g=sched_g.state_dict(), sched_d=sched_d.state_dict(),
                  data=gather_to_all(data.state_dict(), world), rng=gather_to_all(rng_state(noise_gen, device), world),
                  best=best)
        return checkpoint.save(st, run_dir, step, cfg["keep_ckpts"]) if rank == 0 else None

    evaluator = None

    def evaluate(step):
        """Score the EMA generator; keep the best state as best.pt (rank 0 only)."""
        nonlocal evaluator
        from . import metrics, run_folder  # noqa: PLC0415

        if evaluator is None:
            evaluator = metrics.Evaluator(cfg, device, metrics=(cfg["eval_metric"],), n_real=cfg["eval_n_real"],
                                          split="test", features=cfg["eval_features"])
        G_eval = G_ema if cfg["ema"] > 0 else G.eval()
        result = evaluator.score(lambda n: run_folder.sample_images(
            G_eval, n, z_dim=cfg["z_dim"], num_classes=num_classes, device=device, seed=cfg["seed"]), cfg["eval_n"])
        G.train()
        key = cfg["eval_metric"]
        values = {f"eval_{key}": result[key], "eval_n": result["n_fake"], "eval_n_real": result["n_real"]}
        if math.isfinite(result[key]) and (not best or result[key] < best[key]):
            best.clear()
            best.update({"step": step, key: result[key]})
            # the models only (no optimiser, data or RNG state: gathering those is collective, and
            # best.pt is for sampling and evaluation; resuming uses the ckpt_*.pt files)
            checkpoint.atomic_save(dict(step=step, config=cfg, G=G.state_dict(), D=D.state_dict(),
                                        G_ema=G_ema.state_dict(), best=dict(best)),
                                   os.path.join(run_dir, checkpoint.BEST))
        values[f"best_{key}"] = best.get(key, float("nan"))
        log.metrics(step, values)

    mine = slice(rank * B, (rank + 1) * B)

    def noise():
        z = torch.randn(world * B, cfg["z_dim"], device=device, generator=noise_gen)[mine]
        y = torch.randint(0, num_classes, (world * B,), device=device, generator=noise_gen)[mine] if num_classes else None
        alpha = torch.rand(world * B, device=device, generator=noise_gen)[mine]
        return z, y, alpha

    ema_w = torch.zeros((), device=device)  # a tensor, so a captured EMA update reads this step's weight
    phase = 0  # critic steps before this iteration, modulo lazy_reg (always 0 when graphs are on)

    def iteration(*inputs):
        """n_critic critic steps and one generator step; every varying input is a tensor (CUDA graphs)."""
        reals, labels, zs, alphas = (inputs[k * n_critic:(k + 1) * n_critic] for k in range(4))
        z_g, y_g = inputs[4 * n_critic], inputs[4 * n_critic + 1]
        for i in range(n_critic):
            if sn:
                wnn.power_iteration_(D)  # one power iteration per critic step, shared by every forward in it
            critic_step(parts, reals[i], labels[i], zs[i], alphas[i], critic_iter=phase + i)
        generator_step(parts, z_g, y_g)
        if cfg["ema"] > 0:
            ema_update(G_ema, G, ema_w)

    run_iteration = (lambda inputs: iteration(*inputs)) if no_graphs else graphs.GraphedIteration(iteration)
    step = start
    while step < cfg["steps"]:
        batches = [data.next() for _ in range(n_critic)]
        reals = [x for x, _ in batches]
        labels = [y if num_classes else None for _, y in batches]
        zs, alphas = zip(*[noise()[::2] for _ in range(n_critic)])
        z_g, y_g, _ = noise()
        ema_w.fill_(ema_weight(cfg["ema"], step))
        phase = (step * n_critic) % cfg["lazy_reg"]
        run_iteration([*reals, *labels, *zs, *alphas, z_g, y_g])
        images += sum(x.shape[0] for x in reals) * world
        sched_g.step(), sched_d.step()
        step += 1
        out_of_time = limit_min > 0 and (time.time() - t_start) / 60 >= limit_min
        if world > 1 and limit_min > 0:  # every rank stops at the same step (one sync per step, only with a limit)
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        if step % cfg["log_every"] == 0 or step == cfg["steps"] or out_of_time:
            values = metrics.fetch_and_reset()
            now = time.time()
            values.update(lr_g=sched_g.get_last_lr()[0], lr_d=sched_d.get_last_lr()[0],
                          images_per_s=images / max(now - t_log, 1e-9),
                          skipped_files=getattr(data, "skipped_files", 0))  # unreadable image files so far
            t_log, images = now, 0
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if values["skipped_steps"] > 0 and values["critic_steps"] == 0:
                bad.append("loss (every fp16 step of the interval overflowed)")
            if bad:
                where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"
                raise NonFiniteError(f"non-finite {', '.join(bad)} at generator step {step}; training stopped "
                                     f"before using the NaN weights ({where}); resume with --resume true after "
                                     f"lowering lr_d/lr_g, or set --on-nonfinite rollback")
            log.metrics(step, values)
            log.progress(step, values, start, limit_min)
        if step % cfg["sample_every"] == 0 or step == cfg["steps"] or out_of_time:
            with torch.no_grad():
                grid = G_ema(fixed_z, fixed_y) if cfg["ema"] > 0 else G.eval()(fixed_z, fixed_y)
                G.train()
            if grid.dim() == 4:
                log.samples(step, grid, nrow=(n_fixed // num_classes) if num_classes else int(n_fixed ** 0.5))
            elif rank == 0:  # 2-D toy: real vs generated over the critic's contours
                from . import toys  # noqa: PLC0415

                real_pts = toys.sample(cfg["dataset"], 1024, torch.Generator().manual_seed(cfg["seed"]))
                with torch.no_grad():
                    fake_pts = G(torch.randn(len(real_pts), cfg["z_dim"], device=device, generator=fixed_gen_dev))
                log.toy_plot(step, real_pts, fake_pts, D)
        if cfg["eval_every"] and rank == 0 and (step % cfg["eval_every"] == 0 or step == cfg["steps"] or out_of_time):
            t_eval = time.time()
            evaluate(step)
            t_log += time.time() - t_eval  # images/s counts training time only
        if step % cfg["ckpt_every"] == 0 or step == cfg["steps"] or out_of_time:
            last_good = save(step) or last_good
        if out_of_time:
            break
    log.finish()
    return run_dir


def train_with_rollback(cfg):
    """Run; on a non-finite loss with on_nonfinite=rollback, resume from the last
    good checkpoint with both learning rates halved (at most 3 times)."""
    for attempt in range(4):
        try:
            return train(cfg)
        except NonFiniteError as exc:
            if cfg["on_nonfinite"] != "rollback" or attempt == 3:
                raise
            print(f"\n[wgan_fast] {exc}\n[wgan_fast] rolling back with lr x 0.5", file=sys.stderr)
            cfg = dict(cfg, resume=True, overwrite=False, lr_g=cfg["lr_g"] * 0.5, lr_d=cfg["lr_d"] * 0.5)
    return None


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
    from .presets import PRESETS  # noqa: PLC0415

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
        print(usage())
        return 0
    return errors.run("train", _main, argv)


def _main(argv) -> int:
    overrides = config.parse_overrides(argv)
    yaml_path = overrides.pop("config", None)
    if not overrides.get("preset") and not yaml_path and "dataset" not in overrides:
        overrides.setdefault("preset", "fashion-wgan-gp")
    cfg = config.resolve(overrides, yaml_path)
    if resolve_device(cfg["device"]).type == "cpu":
        from .runtime import keep_freed_memory  # noqa: PLC0415

        keep_freed_memory()  # no page faults on every step's fresh activations
    try:
        run_dir = train_with_rollback(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if run_dir:
        print(f"[wgan_fast] run folder: {run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
