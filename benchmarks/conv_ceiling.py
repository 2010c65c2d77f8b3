"""What fp32 convolution reaches on this CPU: the FLOP rate of single convolutions of
Inception-v3's shapes (channels_last, oneDNN, bias), timed in isolation, beside the
rate the whole rebuilt Inception (metrics/inception_fast.py) reaches on 28 px images
resized to 299. The gap between the two bounds what a faster fp32 Inception could gain.

    python benchmarks/conv_ceiling.py [--threads 2] [--images 48]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from wgan_fast import metrics

INCEPTION_V3_MACS = 5.71e9  # multiply-adds per 299 px image (torchvision's model card)
# (in, out, kernel, input side, padding): the stem's widest, a 3x3 of each block size, two 1x1 convolutions
SHAPES = [(32, 64, 3, 147, 1), (80, 192, 3, 73, 0), (192, 192, 3, 35, 1), (288, 384, 3, 35, 1),
          (768, 192, 1, 17, 0), (1280, 384, 1, 8, 0)]


def median_seconds(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


@torch.inference_mode()
def conv_rate(cin, cout, k, side, pad, n=8) -> float:
    x = torch.randn(n, cin, side, side).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, k, k).contiguous(memory_format=torch.channels_last)
    b = torch.randn(cout)
    out = side + 2 * pad - k + 1
    return 2 * n * cout * cin * k * k * out * out / median_seconds(lambda: F.conv2d(x, w, b, 1, pad))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=48)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    convs = {f"{ci}->{co} {k}x{k} at {s}": conv_rate(ci, co, k, s, pad) / 1e9 for ci, co, k, s, pad in SHAPES}
    net = metrics.InceptionFeatures(device="cpu", fast=True)
    images = torch.rand(args.images, 1, 28, 28) * 2 - 1
    seconds = median_seconds(lambda: net(images), repeats=3)
    report = dict(threads=args.threads, torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M"),
                  conv_gflops=convs, network_images_per_s=args.images / seconds,
                  network_gflops=2 * INCEPTION_V3_MACS * args.images / seconds / 1e9)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
