"""Everything a run carries from one step to the next (models, optimisers,
scalers, schedules, data position, noise generator, best evaluation), built
from the config, and its state_dict: the checkpoint."""
from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from .. import models
from ..runtime import auto_precision
from .distributed import broadcast_from_rank0, gather_to_all


def autocast_of(cfg, device):
    """(precision, a context-manager factory); auto: runtime.auto_precision."""
    precision = cfg["precision"]
    if precision == "auto":
        precision = auto_precision(device.type)
    if precision == "fp32":
        return precision, nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return precision, lambda: torch.autocast(device.type, dtype=dtype)


def make_optimizer(cfg, params, lr, device, capturable=False):
    """Adam (fused on CUDA) or RMSprop; `capturable` (CUDA graphs): state and
    learning rate live on the device, the LR schedule fills the lr tensor."""
    if capturable:
        lr = torch.tensor(lr, device=device)
    if cfg["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, **({"capturable": True, "foreach": True} if capturable else {}))
    fused = {"fused": True, "capturable": capturable} if device.type == "cuda" else {}
    return torch.optim.Adam(params, lr=lr, betas=(cfg["beta1"], cfg["beta2"]), **fused)


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


@dataclass
class TrainState:
    cfg: dict
    device: torch.device
    rank: int
    world: int
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    sched_g: torch.optim.lr_scheduler.LambdaLR
    sched_d: torch.optim.lr_scheduler.LambdaLR
    data: object                 # the batch stream: next(), state_dict(), load_state_dict()
    noise_gen: torch.Generator   # noise, labels and penalty alphas, seeded alike on every rank
    step: int = 0                # generator steps done
    best: dict = field(default_factory=dict)  # the best evaluation so far: {"step": s, metric: value}

    @classmethod
    def create(cls, cfg, device, rank, world, data, precision, capturable):
        """Models (identical on every rank), optimisers, scalers and schedules of a fresh run."""
        G, D = models.from_config(cfg, device)
        if cfg["sync_bn"] and world > 1:  # BatchNorm statistics over the global batch (CUDA only, checked earlier)
            G = torch.nn.SyncBatchNorm.convert_sync_batchnorm(G)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        broadcast_from_rank0((G, D), world)
        G_ema.load_state_dict(G.state_dict())
        opt_g = make_optimizer(cfg, G.parameters(), cfg["lr_g"], device, capturable)
        opt_d = make_optimizer(cfg, D.parameters(), cfg["lr_d"], device, capturable)
        fp16 = precision == "fp16"
        decay = (lambda s: max(0.0, 1.0 - s / cfg["steps"])) if cfg["lr_decay"] else (lambda s: 1.0)
        # Noise, labels and alphas are drawn for the global batch (world x B) from one
        # generator seeded alike on every rank, each rank taking its slice: N processes
        # see exactly the randomness of one process on the N-fold batch.
        noise_gen = torch.Generator(device=device).manual_seed(cfg["seed"] * 1000 + 1)
        return cls(cfg, device, rank, world, G, D, G_ema, opt_g, opt_d,
                   torch.amp.GradScaler(device.type, enabled=fp16), torch.amp.GradScaler(device.type, enabled=fp16),
                   torch.optim.lr_scheduler.LambdaLR(opt_g, decay), torch.optim.lr_scheduler.LambdaLR(opt_d, decay),
                   data, noise_gen)

    def _rng_state(self):
        state = {"torch": torch.get_rng_state(), "noise": self.noise_gen.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def state_dict(self) -> dict:
        """The checkpoint (collective with several ranks: every rank's data and RNG state)."""
        return dict(step=self.step, config=self.cfg, G=self.G.state_dict(), D=self.D.state_dict(),
                    G_ema=self.G_ema.state_dict(), opt_g=self.opt_g.state_dict(), opt_d=self.opt_d.state_dict(),
                    scaler_g=self.scaler_g.state_dict(), scaler_d=self.scaler_d.state_dict(),
                    sched_g=self.sched_g.state_dict(), sched_d=self.sched_d.state_dict(),
                    data=gather_to_all(self.data.state_dict(), self.world),
                    rng=gather_to_all(self._rng_state(), self.world), best=dict(self.best))

    def models_state_dict(self) -> dict:
        """The models only (best.pt: for sampling and evaluation, not for resuming)."""
        return dict(step=self.step, config=self.cfg, G=self.G.state_dict(), D=self.D.state_dict(),
                    G_ema=self.G_ema.state_dict(), best=dict(self.best))

    def load_state_dict(self, state: dict) -> None:
        for name in ("G", "D", "G_ema", "opt_g", "opt_d", "scaler_g", "scaler_d", "sched_g", "sched_d"):
            getattr(self, name).load_state_dict(state[name])
        set_learning_rate(self.opt_g, self.sched_g, self.cfg["lr_g"])
        set_learning_rate(self.opt_d, self.sched_d, self.cfg["lr_d"])
        self.data.load_state_dict(state["data"][self.rank])
        rng = state["rng"][self.rank]
        torch.set_rng_state(rng["torch"])
        self.noise_gen.set_state(rng["noise"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step, self.best = int(state["step"]), dict(state.get("best", {}))

    def nonfinite_parts(self) -> list[str]:
        return nonfinite_parts(dict(G=self.G, D=self.D, G_ema=self.G_ema, opt_g=self.opt_g, opt_d=self.opt_d))
