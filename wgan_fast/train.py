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

from . import checkpoint, config, models
from .errors import MissingDependency
from .requirements import check_config_requirements
from .runlog import RunLog
from .step import Metrics, Parts, critic_step, generator_step


class NonFiniteError(RuntimeError):
    pass


# ---- process, device, precision ---------------------------------------------------

def setup_distributed(cfg):
    """(rank, world_size, device). torchrun's env selects DDP: NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = cfg["device"]
    use_cuda = torch.cuda.is_available() if want == "auto" else want.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise config.ConfigError("device: CUDA requested but torch.cuda.is_available() is False")
    device = torch.device("cuda", local if want in ("auto", "cuda") else torch.device(want).index or 0) if use_cuda \
        else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
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


def make_models(cfg, device):
    toy = cfg["dataset"].startswith("toy-")
    num_classes = cfg["num_classes"] if cfg["conditional"] else 0
    if toy:
        G = models.MLPGenerator((2,), z_dim=cfg["z_dim"], hidden=(cfg["g_base"],) * 3, num_classes=num_classes,
                                tanh=False)
        D = models.MLPCritic((2,), hidden=(cfg["d_base"],) * 3, num_classes=num_classes)
    else:
        G, D = models.build(cfg["model"], resolution=cfg["resolution"], channels=cfg["channels"], z_dim=cfg["z_dim"],
                            num_classes=num_classes, critic_norm=cfg["critic_norm"], g_base=cfg["g_base"],
                            d_base=cfg["d_base"])
    if cfg["algorithm"] == "wgan-sn":
        from . import nn as wnn  # noqa: PLC0415

        for m in D.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.ConvTranspose2d)):
                # only power_iteration_ iterates: every forward of a critic step shares one sigma
                wnn.spectral_norm(m, n_power_iterations=cfg["sn_iterations"], iterate_on_forward=False)
    G, D = G.to(device), D.to(device)
    if device.type == "cuda" and not toy and cfg["model"] != "mlp":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return G, D


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


# ---- the run ----------------------------------------------------------------------

def run_name(cfg):
    return cfg["name"] or cfg["preset"] or f"{cfg['algorithm']}-{cfg['dataset']}"


def train(cfg: dict, data=None) -> str:
    """Train per `cfg`; `data` may inject a batch stream (tests), else one is made from cfg."""
    rank, world, device = setup_distributed(cfg)
    run_dir = os.path.join(cfg["out_dir"], run_name(cfg))
    torch.manual_seed(cfg["seed"] * 1000 + rank)
    precision, autocast = make_autocast(cfg, device)

    # resume: the newest checkpoint that loads (also when torchrun --max-restarts restarted us)
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    resume = cfg["resume"] or restarted
    state, ckpt_path = (checkpoint.load_latest(run_dir, map_location=device) if resume else (None, None))
    if cfg["resume"] and state is None and rank == 0:
        print(f"[wgan_fast] --resume: no readable checkpoint in {run_dir}; starting from step 0", file=sys.stderr)
    start = int(state["step"]) if state else 0

    data = data if data is not None else make_data(cfg, device, rank, world, start)
    G, D = make_models(cfg, device)
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
        data.load_state_dict(state["data"][rank])
        set_rng_state(state["rng"][rank], noise_gen, device)

    metrics = Metrics(device)
    parts = Parts(cfg, G, D, opt_g, opt_d, scaler_g, scaler_d, autocast, flat_all_reduce(world), metrics)
    log = RunLog(run_dir, cfg, cfg["steps"], enabled=rank == 0)
    B, n_critic = cfg["batch_size"], cfg["n_critic"]
    sn = cfg["algorithm"] == "wgan-sn"
    if sn:
        from . import nn as wnn  # noqa: PLC0415
    t_start, t_log, images = time.time(), time.time(), 0
    limit_min = cfg["max_minutes"] or (cfg["cpu_max_minutes"] if device.type == "cpu" else 0.0)
    last_good = ckpt_path

    best = dict(state.get("best", {})) if state else {}  # the best evaluation so far: {"step", metric}

    def save(step):
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
        if not best or result[key] < best[key]:
            best.clear()
            best.update({"step": step, key: result[key]})
            # the models only (no optimiser, data or RNG state: gathering those is collective, and
            # best.pt is for sampling and evaluation; resuming uses the ckpt_*.pt files)
            checkpoint.atomic_save(dict(step=step, config=cfg, G=G.state_dict(), D=D.state_dict(),
                                        G_ema=G_ema.state_dict(), best=dict(best)),
                                   os.path.join(run_dir, checkpoint.BEST))
        values[f"best_{key}"] = best[key]
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
                          images_per_s=images / max(now - t_log, 1e-9))
            t_log, images = now, 0
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if values["skipped_steps"] > 0 and values["critic_steps"] == 0:
                bad.append("loss (every fp16 step of the interval overflowed)")
            if bad:
                where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"
                raise NonFiniteError(f"non-finite {', '.join(bad)} at generator step {step}; training stopped "
                                     f"before using the NaN weights ({where}). Resume with --resume after lowering "
                                     f"lr_d/lr_g, or set --on-nonfinite rollback.")
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
            cfg = dict(cfg, resume=True, lr_g=cfg["lr_g"] * 0.5, lr_d=cfg["lr_d"] * 0.5)
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        overrides = config.parse_overrides(argv)
        yaml_path = overrides.pop("config", None)
        if not overrides.get("preset") and not yaml_path and "dataset" not in overrides:
            overrides.setdefault("preset", "fashion-wgan-gp")
        cfg = config.resolve(overrides, yaml_path)
        check_config_requirements(cfg)
    except config.ConfigError as exc:
        print(f"wgan_fast.train: invalid config: {exc}", file=sys.stderr)
        return 2
    except MissingDependency as exc:  # (errors.run reports it so once main goes through it)
        print(f"wgan_fast.train: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    if cfg["device"] == "cpu" or (cfg["device"] == "auto" and not torch.cuda.is_available()):
        from .runtime import keep_freed_memory  # noqa: PLC0415

        keep_freed_memory()  # no page faults on every step's fresh activations
    try:
        run_dir = train_with_rollback(cfg)
    except NonFiniteError as exc:
        print(f"\nwgan_fast.train: {exc}", file=sys.stderr)
        return 3
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if run_dir:
        print(f"[wgan_fast] run folder: {run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
