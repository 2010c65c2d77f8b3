"""`wgan-fast <command> [args]` (or `python -m wgan_fast <command> [args]`):
every command of the package behind one name."""
from __future__ import annotations

import importlib
import sys

# command -> (module with main(argv), one line of help)
COMMANDS = {
    "train": ("wgan_fast.train", "train a GAN into a run folder (also: torchrun ... -m wgan_fast.train)"),
    "evaluate": ("wgan_fast.commands.evaluate", "FID, KID, precision/recall, IS, class accuracy of a run"),
    "sample": ("wgan_fast.commands.sample", "a grid of samples from a run"),
    "latent-walk": ("wgan_fast.commands.latent_walk", "lerp/slerp walks through a run's latent space (grids, GIFs)"),
    "export": ("wgan_fast.commands.export", "a synthetic dataset (PNG class folders or .npz) from a run"),
    "adapt": ("wgan_fast.commands.adapt", "latent-space adaptation: sample from the latents the classifier likes"),
    "anomaly": ("wgan_fast.commands.anomaly", "rank images by a run's critic score (ROC-AUC against a reference)"),
    "study": ("wgan_fast.study.cli", "run, report, inspect a study: a grid or search of runs on Optuna"),
    "classifier-train": ("wgan_fast.classifier.train", "train the Fashion-MNIST/MNIST domain classifier"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_line}" for name, (_, help_line) in COMMANDS.items()]
    return ("usage: wgan-fast <command> [--help] [args ...]\n       python -m wgan_fast <command> [args ...]\n\n"
            "commands:\n" + "\n".join(lines))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        from .cli import print_text  # noqa: PLC0415

        print_text(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"wgan-fast: usage error: unknown command {argv[0]!r} (commands: {', '.join(COMMANDS)})",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
