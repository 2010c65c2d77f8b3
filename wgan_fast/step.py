"""One critic step and one generator step for every algorithm.

Real and fake go through the critic in one concatenated forward (one set of
launches instead of two). That is exactly equivalent for critics without
BatchNorm (a per-sample critic); a BatchNorm critic (allowed only without a
penalty) gets separate forwards so each batch is normalised on its own, as
in the separate-forward formulation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import losses, ops
from .models import has_batchnorm


class Metrics:
    """Sums kept on the device; fetched once per log interval (one host sync)."""

    NAMES = ("loss_d", "loss_g", "wdist", "penalty", "gnorm_mean", "gnorm_sq", "d_real", "d_fake", "n_critic",
             "n_pen", "n_gen", "n_skipped", "ac_real", "ac_fake")

    def __init__(self, device):
        self.buf = torch.zeros(len(self.NAMES), device=device, dtype=torch.float64)
        self.index = {n: i for i, n in enumerate(self.NAMES)}

    def add(self, **values):
        for name, v in values.items():
            self.buf[self.index[name]] += v.detach().to(torch.float64) if torch.is_tensor(v) else v

    def fetch_and_reset(self) -> dict:
        d = dict(zip(self.NAMES, self.buf.tolist()))
        self.buf.zero_()
        nc, npen, ng = max(d["n_critic"], 1), max(d["n_pen"], 1), max(d["n_gen"], 1)
        out = {k: d[k] / nc for k in ("loss_d", "wdist", "penalty", "d_real", "d_fake")}
        out["loss_g"] = d["loss_g"] / ng
        out["gnorm_mean"] = d["gnorm_mean"] / npen
        out["gnorm_std"] = max(d["gnorm_sq"] / npen - out["gnorm_mean"] ** 2, 0.0) ** 0.5
        out["critic_steps"], out["skipped_steps"] = d["n_critic"], d["n_skipped"]
        if d["ac_real"] or d["ac_fake"]:  # the auxiliary classifier's cross-entropies (ac_weight > 0 only)
            out["ac_real"], out["ac_fake"] = d["ac_real"] / nc, d["ac_fake"] / ng
        return out


@dataclass
class Parts:
    """What a step needs besides the batch: models, optimisers, precision."""

    cfg: dict
    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    autocast: Callable
    sync_grads: Callable  # all-reduce of a module's gradients (no-op on one process)
    metrics: Metrics


def _critic_scores(D, real, fake, labels, logits: bool):
    """Scores of real and fake, and with `logits` the class head's logits of the real images (else None)."""
    if has_batchnorm(D):
        if logits:
            (d_real, real_logits), d_fake = D(real, labels, return_logits=True), D(fake, labels)
            return d_real, d_fake, real_logits
        return D(real, labels), D(fake, labels), None
    x, both = torch.cat([real, fake]), None if labels is None else torch.cat([labels, labels])
    out = D(x, both, return_logits=True) if logits else (D(x, both),)
    n = real.shape[0]
    return out[0][:n], out[0][n:], out[1][:n] if logits else None


def critic_step(p: Parts, real, labels, z, alpha, critic_iter: int):
    cfg, D, algo = p.cfg, p.D, p.cfg["algorithm"]
    with torch.no_grad(), p.autocast():
        fake = p.G(z, labels).to(real.dtype)
    ac = cfg["ac_weight"]
    with p.autocast():
        d_real, d_fake, real_logits = _critic_scores(D, real, fake, labels, logits=ac > 0)
        d_real, d_fake = d_real.float(), d_fake.float()
        if algo == "gan":
            loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        else:
            loss = d_fake.mean() - d_real.mean()
        if ac > 0:  # the class head learns real images' classes only (fakes' would teach it the generator's errors)
            ac_real = F.cross_entropy(real_logits.float(), labels)
            loss = loss + ac * ac_real
    penalty, norms = torch.zeros((), device=real.device), None
    lazy = cfg["lazy_reg"]  # the penalty every k-th critic step, weighted x k
    if critic_iter % lazy == 0:
        kw = {} if labels is None else {"labels": labels}
        if algo in ("wgan-gp", "wgan-lp") and cfg["gp_weight"] > 0:
            with p.autocast():
                penalty, norms = losses.gradient_penalty(
                    D, real, fake, weight=cfg["gp_weight"] * lazy, center=cfg["gp_center"],
                    one_sided=algo == "wgan-lp", alpha=alpha, scaler=p.scaler_d, **kw)
        if cfg["r1_weight"] > 0:  # zero-centred penalty on real data: x_hat = real
            ones = torch.ones(real.shape[0], device=real.device)
            with p.autocast():
                r1, r1_norms = losses.gradient_penalty(D, real, real, weight=cfg["r1_weight"] * lazy, center=0.0,
                                                       alpha=ones, scaler=p.scaler_d, **kw)
            penalty, norms = penalty + r1, (r1_norms if norms is None else norms)
    p.opt_d.zero_grad(set_to_none=True)
    p.scaler_d.scale(loss + penalty).backward()  # one backward: every gradient, penalty's included
    p.sync_grads(D)
    p.scaler_d.step(p.opt_d)
    p.scaler_d.update()
    if algo == "wgan-clip":
        ops.clip_(list(D.parameters()), cfg["clip"])
    keep = _keep(p.scaler_d, loss + penalty)
    p.metrics.add(loss_d=keep(loss + penalty), wdist=keep(d_real.mean() - d_fake.mean()), penalty=keep(penalty),
                  d_real=keep(d_real.mean()), d_fake=keep(d_fake.mean()), n_critic=keep(1.0))
    if ac > 0:
        p.metrics.add(ac_real=keep(ac_real))
    if norms is not None:
        p.metrics.add(gnorm_mean=keep(norms.float().mean()), gnorm_sq=keep(norms.float().square().mean()),
                      n_pen=keep(1.0))
    if p.scaler_d.is_enabled():
        p.metrics.add(n_skipped=1.0 - keep(1.0))


def _keep(scaler, total):
    """Under fp16 a step whose scaled gradients overflowed is skipped by the
    GradScaler (never applied) and left out of the metrics, counted as
    skipped; elsewhere a non-finite value is kept so the log check stops the run."""
    if not scaler.is_enabled():
        return lambda v: v.detach() if torch.is_tensor(v) else v
    ok = torch.isfinite(total.detach())
    return lambda v: torch.where(ok, v.detach() if torch.is_tensor(v) else torch.tensor(v, device=ok.device),
                                 torch.zeros((), device=ok.device))


def generator_step(p: Parts, z, labels):
    p.D.requires_grad_(False)  # no critic weight gradients in the generator step
    ac = p.cfg["ac_weight_g"]
    with p.autocast():
        fake = p.G(z, labels)
        out = p.D(fake, labels, return_logits=True) if ac > 0 else (p.D(fake, labels),)
        scores = out[0].float()
        loss = F.softplus(-scores).mean() if p.cfg["algorithm"] == "gan" else -scores.mean()
        if ac > 0:  # samples the class head files under the class they were made for
            ac_fake = F.cross_entropy(out[1].float(), labels)
            loss = loss + ac * ac_fake
    p.opt_g.zero_grad(set_to_none=True)
    p.scaler_g.scale(loss).backward()
    p.D.requires_grad_(True)
    p.sync_grads(p.G)
    p.scaler_g.step(p.opt_g)
    p.scaler_g.update()
    keep = _keep(p.scaler_g, loss)
    p.metrics.add(loss_g=keep(loss), n_gen=keep(1.0))
    if ac > 0:
        p.metrics.add(ac_fake=keep(ac_fake))
