"""Train the domain classifier and record its weights.

    wgan-fast classifier-train --dataset fashion-mnist [--data-dir DIR] [--epochs 8] [--seed 0]
    wgan-fast classifier-train --dataset mnist --data-dir DIR

Seeded; light augmentation (shifts of up to 2 px, horizontal flips for
Fashion-MNIST only: a flipped digit is another glyph) and batches at the
trainer's 32 and 64 px sizes. Prints the test
accuracy, writes wgan_fast/classifier/<dataset>.pt (a plain state_dict) and
its sha256 and accuracy into weights.json.
"""
from __future__ import annotations

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

from .. import cli, errors
from . import MANIFEST, DomainClassifier, accuracy, load_split, read_manifest, sha256, to_unit_range, weights_path


def augment(x: torch.Tensor, gen: torch.Generator, flip: bool, shift: int = 2) -> torch.Tensor:
    """Random integer shifts (background fills in) and optional horizontal flips."""
    n, size = x.shape[0], x.shape[-1]
    d = torch.randint(-shift, shift + 1, (n, 2), generator=gen).float() * (2 / size)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if flip:
        theta[:, 0, 0] = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta[:, :, 2] = d
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # zero padding of (x + 1) is a background of -1 once shifted back
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


def at_trainer_size(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Two batches in three go up to 32 or 64 px as the trainer's data loader
    makes them (bilinear); the model's own resize brings them back to 28. Real
    images of a 32 px run then classify like native ones (without this, 92% at
    28 px fell to 86% at 32 px)."""
    size = (28, 32, 64)[int(torch.randint(0, 3, (1,), generator=gen))]
    return x if size == 28 else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def train(dataset: str, data_dir: str = "", epochs: int = 8, batch_size: int = 128, lr: float = 2e-3,
          seed: int = 0, log=print) -> tuple[DomainClassifier, dict]:
    """The trained model and its test accuracy at 28 px and at 32 px (the test
    images resized as the trainer's data loader resizes them)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = load_split(dataset, data_dir, train=True)
    x_test, y_test = load_split(dataset, data_dir, train=False)
    x_train, y_train = to_unit_range(x_train), torch.from_numpy(y_train)
    x_test, y_test = to_unit_range(x_test), torch.from_numpy(y_test)
    model = DomainClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * (len(x_train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(len(x_train) // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x = at_trainer_size(augment(x_train[idx], gen, flip=dataset == "fashion-mnist"), gen)
            loss = F.cross_entropy(model(x), y_train[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        model.eval()
        acc = accuracy(model, x_test, y_test)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / (i + 1):.4f}, test accuracy {acc:.4f} "
            f"({time.time() - t0:.0f} s)")
    x32 = F.interpolate(x_test, size=(32, 32), mode="bilinear", align_corners=False)
    return model, dict(test_accuracy=round(acc, 4), test_accuracy_32px=round(accuracy(model, x32, y_test), 4))


def save(model: DomainClassifier, dataset: str, accuracies: dict, args: dict) -> str:
    path = weights_path(dataset)
    tmp = path + ".tmp"
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    manifest = read_manifest()
    manifest[dataset] = dict(file=os.path.basename(path), sha256=sha256(path), **accuracies, trained_with=args)
    with open(MANIFEST + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(MANIFEST + ".tmp", MANIFEST)
    return path


def main(argv=None):
    p = cli.new_parser("classifier-train", __doc__)
    p.add_argument("--dataset", choices=("fashion-mnist", "mnist"), default="fashion-mnist")
    p.add_argument("--data-dir", default="", help="folder with the IDX files (MNIST needs it)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--min-accuracy", type=float, default=0.90, help="refuse to save weights below this")
    return errors.run("classifier.train", _main, p.parse_args(argv))


def _main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, acc = train(args.dataset, args.data_dir, args.epochs, args.batch_size, args.lr, args.seed)
    print(f"{args.dataset} test accuracy: {acc['test_accuracy']:.4f} (at 32 px: {acc['test_accuracy_32px']:.4f})")
    if acc["test_accuracy"] < args.min_accuracy:
        raise errors.BelowThreshold(f"test accuracy {acc['test_accuracy']:.4f} is below --min-accuracy "
                                    f"{args.min_accuracy}: weights not saved")
    recorded = {k: v for k, v in vars(args).items() if k != "data_dir"}
    print(f"saved {save(model, args.dataset, acc, recorded)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
