"""FID of the same images through the TorchScript Inception and the rebuilt one
(metrics/inception_fast.py), with the time each took: N Fashion-MNIST test
images against N training images (real against real: a small FID, so a relative
change shows at its largest).

    python benchmarks/inception_fid_agreement.py [--n 2000] [--threads 1] [--out results/x.json]
"""
import argparse
import json
import os
import time

import numpy as np
import torch

from wgan_fast import metrics
from wgan_fast.data import idx

FASHION = "/usr/share/datasets/fashion-mnist"


def images(stem: str, n: int) -> torch.Tensor:
    return torch.from_numpy(idx.read_idx(os.path.join(FASHION, f"{stem}-images-idx3-ubyte.gz"))[:n].copy())[:, None]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    test, train = images("t10k", args.n), images("train", args.n)
    report = dict(n=args.n, threads=args.threads, torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M"))
    for variant in ("stock", "fast"):
        net = metrics.InceptionFeatures(device="cpu", fast=variant == "fast")
        t = time.perf_counter()
        f_test, f_train = net(test), net(train)
        seconds = time.perf_counter() - t
        report[variant] = dict(fid=metrics.fid_from_features(f_test, f_train), seconds=seconds,
                               images_per_s=2 * args.n / seconds)
        report[variant + "_features"] = np.concatenate([f_test, f_train])
        print(variant, {k: round(v, 4) for k, v in report[variant].items()}, flush=True)
    diff = np.abs(report.pop("fast_features") - report.pop("stock_features"))
    report["max_abs_feature_difference"] = float(diff.max())
    report["fid_relative_change"] = report["fast"]["fid"] / report["stock"]["fid"] - 1
    report["speedup"] = report["stock"]["seconds"] / report["fast"]["seconds"]
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
