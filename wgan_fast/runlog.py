"""What a run leaves in its folder: metrics.jsonl, TensorBoard events, sample
grids, and at the end a time-lapse GIF of the grids and a loss plot."""
from __future__ import annotations

import glob
import json
import os
import sys
import time

import torch

from .atomic import atomic_path, write_text


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 0..255, rounded (as torchvision's save_image)."""
    return _byte(images.float().cpu() * 0.5 + 0.5)


def _byte(x01: torch.Tensor) -> torch.Tensor:
    return x01.mul(255).add(0.5).clamp(0, 255).byte()


def grid_image(images: torch.Tensor, nrow: int, padding: int = 2):
    """[-1, 1] images (N, C, H, W) -> one PIL image of them in a grid, `nrow` per row."""
    from PIL import Image  # noqa: PLC0415
    from torchvision.utils import make_grid  # noqa: PLC0415

    grid = make_grid(images.float().cpu() * 0.5 + 0.5, nrow=nrow, padding=padding)
    return Image.fromarray(_byte(grid).permute(1, 2, 0).numpy())


def save_grid(images: torch.Tensor, path: str, nrow: int) -> str:
    """[-1, 1] images as a uint8 PNG grid (written atomically)."""
    with atomic_path(path) as tmp:
        grid_image(images, nrow).save(tmp, format="PNG")
    return path


def save_gif(frames: list, path: str, duration_ms: int = 300) -> str:
    """PIL images (or paths of them) as a looping GIF."""
    from PIL import Image  # noqa: PLC0415

    images = [(Image.open(f) if isinstance(f, str) else f).convert("P") for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def read_metrics(path: str) -> list[dict]:
    """The rows of a metrics.jsonl; a last line cut short by a kill is left out."""
    rows = []
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1 and any(rest.strip() for rest in lines[i + 1:]):
                raise ValueError(f"{path}: line {i + 1} is not JSON") from None
    return rows


class RunLog:
    """What rank 0 writes during a run. A resumed run (start_step > 0) first
    drops the metrics rows and TensorBoard events written after its checkpoint
    by the interrupted run, so the series has each step once."""

    def __init__(self, run_dir: str, cfg: dict, total_steps: int, enabled: bool = True, start_step: int = 0,
                 resolved: dict | None = None):
        self.dir, self.enabled, self.total = run_dir, enabled, total_steps
        self.t0 = self.t_last = time.time()
        self.tb = self.bar = None
        if not enabled:
            return
        os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
        # the config as given, and under "resolved" what its auto values became on this machine
        shown = dict(cfg, resolved=resolved) if resolved else cfg
        write_text(os.path.join(run_dir, "config.json"), json.dumps(shown, indent=1, sort_keys=True))
        metrics = os.path.join(run_dir, "metrics.jsonl")
        if start_step and os.path.exists(metrics):
            kept = [r for r in read_metrics(metrics) if r.get("step", 0) <= start_step]
            write_text(metrics, "".join(json.dumps(r) + "\n" for r in kept))
        if cfg.get("tensorboard"):
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

                self.tb = SummaryWriter(os.path.join(run_dir, "tb"), purge_step=start_step + 1 if start_step else None)
            except ImportError as exc:
                print(f"[wgan_fast] TensorBoard logging off: {exc}", file=sys.stderr)

    def metrics(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        with open(os.path.join(self.dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

    def progress(self, step: int, values: dict, start_step: int, limit_minutes: float = 0.0) -> None:
        """One progress update per log interval: a tqdm bar on a terminal, a
        plain line in a file or CI log (no carriage returns)."""
        if not self.enabled:
            return
        now = time.time()
        rate = (step - start_step) / max(now - self.t0, 1e-9)
        eta = (self.total - step) / max(rate, 1e-9)
        if limit_minutes > 0:  # a wall-time limit ends the run first
            eta = min(eta, max(0.0, limit_minutes * 60 - (now - self.t0)))
        stats = (f"W={values.get('wdist', 0):.3f} D={values.get('loss_d', 0):.3f} G={values.get('loss_g', 0):.3f} "
                 f"gp={values.get('penalty', 0):.3f} {values.get('images_per_s', 0):.0f} img/s")
        if values.get("skipped_files"):
            stats += f" skipped files={int(values['skipped_files'])}"
        if not sys.stderr.isatty():
            print(f"[wgan_fast] step {step}/{self.total} {rate:.2f} it/s ETA {eta / 60:.1f} min {stats}",
                  file=sys.stderr, flush=True)
            return
        if self.bar is None:
            from tqdm import tqdm  # noqa: PLC0415

            self.bar = tqdm(total=self.total, initial=start_step, file=sys.stderr, unit="step", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}")
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(f"{rate:.2f} it/s ETA {eta / 60:.1f} min {stats}", refresh=True)

    def samples(self, step: int, images: torch.Tensor, nrow: int) -> str | None:
        if not self.enabled:
            return None
        path = save_grid(images, os.path.join(self.dir, "samples", f"step_{step:08d}.png"), nrow)
        if self.tb is not None:
            from torchvision.utils import make_grid  # noqa: PLC0415

            self.tb.add_image("samples", make_grid(images.float().cpu() * 0.5 + 0.5, nrow=nrow), step)
        return path

    def toy_plot(self, step: int, real: torch.Tensor, fake: torch.Tensor, critic) -> str | None:
        """Scatter of real vs generated 2-D points over the critic's contours."""
        if not self.enabled:
            return None
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        real, fake = real.float().cpu(), fake.float().cpu()
        lim = float(torch.cat([real, fake]).abs().max().clamp(max=6)) * 1.1
        xs = torch.linspace(-lim, lim, 100)
        grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
        with torch.no_grad():
            dev = next(critic.parameters()).device
            scores = critic(grid.to(dev)).float().cpu().reshape(100, 100)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.contourf(xs, xs, scores, levels=20, cmap="viridis", alpha=0.7)
        ax.scatter(real[:, 0], real[:, 1], s=2, c="orange", label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=2, c="white", label="generated")
        ax.set_title(f"step {step}")
        ax.legend(loc="upper right")
        path = os.path.join(self.dir, "samples", f"step_{step:08d}.png")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
        return path

    def finish(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        self._gif()
        self._loss_plot()

    def _gif(self) -> None:
        frames = sorted(glob.glob(os.path.join(self.dir, "samples", "step_*.png")))
        if frames:
            save_gif(frames, os.path.join(self.dir, "samples.gif"))

    def _loss_plot(self) -> None:
        path = os.path.join(self.dir, "metrics.jsonl")
        if not os.path.exists(path):
            return
        all_rows = read_metrics(path)
        rows = [r for r in all_rows if "loss_d" in r]  # training intervals
        evals = [r for r in all_rows if any(k.startswith("eval_") for k in r)]  # evaluations during training
        if not rows:
            return
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        fig, ax = plt.subplots(1, 3 if evals else 2, figsize=(15 if evals else 10, 3.5))
        steps = [r["step"] for r in rows]
        for key in ("loss_d", "loss_g"):
            ax[0].plot(steps, [r[key] for r in rows], label=key)
        ax[1].plot(steps, [r["wdist"] for r in rows], label="E[D(real)] - E[D(fake)]")
        if evals:
            key = next(k for k in evals[0] if k.startswith("eval_") and k not in ("eval_n", "eval_n_real", "eval_features"))
            ax[2].plot([r["step"] for r in evals], [r[key] for r in evals], "o-",
                       label=f"{key[5:]} ({evals[0]['eval_n']} vs {evals[0]['eval_n_real']} images)")
        for a in ax:
            a.set_xlabel("generator step")
            a.legend()
        fig.tight_layout()
        with atomic_path(os.path.join(self.dir, "losses.png")) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
