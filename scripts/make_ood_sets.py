"""Image folders for measuring `wgan-fast anomaly` (docs/generation.md).

    python scripts/make_ood_sets.py OUT_DIR [--data-dir DIR]

OUT_DIR/fashion-test: the 10,000 Fashion-MNIST test images (in-distribution).
OUT_DIR/digits: scikit-learn's 1,797 8x8 digits (0..16 scaled to 0..255, white
on black like Fashion-MNIST), upscaled bicubic to 28x28 (out-of-distribution).
"""
import argparse
import os

import numpy as np
from PIL import Image

from wgan_fast.classifier import load_split


def write(folder, images):
    os.makedirs(folder, exist_ok=True)
    for i, im in enumerate(images):
        im.save(os.path.join(folder, f"{i:05d}.png"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--data-dir", default="")
    args = p.parse_args()
    from sklearn.datasets import load_digits  # noqa: PLC0415

    x, _ = load_split("fashion-mnist", args.data_dir, train=False)
    write(os.path.join(args.out_dir, "fashion-test"), [Image.fromarray(a) for a in x])
    digits = (load_digits().images * (255 / 16)).round().astype(np.uint8)
    write(os.path.join(args.out_dir, "digits"), [Image.fromarray(a).resize((28, 28), Image.BICUBIC) for a in digits])
    print(f"{args.out_dir}: fashion-test ({len(x)} images), digits ({len(digits)} images)")


if __name__ == "__main__":
    main()
