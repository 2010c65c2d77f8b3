"""Images/s of each loader at batch 64 and 256, 64x64 output.

DALI (CPU pipeline here; GPU decode on CUDA machines) against a torchvision-
style DataLoader with 2 worker processes on the same JPEG folder (CelebA-like
178x218 JPEGs, generated once per session), and the GPU/CPU-resident draw.
"""
import numpy as np
import pytest
import torch

from bench_utils import DEVICES, sync
from wgan_fast.data import files, formats
from wgan_fast.data.resident import ResidentStream

N_FILES = 512


@pytest.fixture(scope="session")
def jpeg_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("jpegs") / "all"  # one class folder, so ImageFolder reads it too
    root.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (218 // 8, 178 // 8, 3), dtype=np.uint8)
    for i in range(N_FILES):  # smooth-ish images so JPEG sizes are realistic (~10 KB)
        arr = np.kron(np.roll(base, i, axis=0), np.ones((8, 8, 1), dtype=np.uint8))
        Image.fromarray(arr).resize((178, 218)).save(root / f"{i:06d}.jpg", quality=90)
    paths, _, _ = formats.list_images(str(root))
    return paths


def _run(benchmark, stream, batch, case, variant, baseline, n_batches=8):
    stream.next()  # warm-up: workers started, pipeline built

    def draw():
        for _ in range(n_batches):
            x, _ = stream.next()
        sync(x.device)

    benchmark.group = case
    benchmark.extra_info.update(case=case, variant=variant, baseline=baseline)
    benchmark.pedantic(draw, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["images_per_s"] = n_batches * batch / benchmark.stats.stats.median


class _StockTorchvision:
    """The stock way: ImageFolder + Resize/CenterCrop/ToTensor/Normalize, DataLoader(num_workers=2)."""

    def __init__(self, root, batch):
        import torchvision.transforms as T
        from torchvision.datasets import ImageFolder

        tf = T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
        # forkserver only so that forking after DALI's threads cannot hang this benchmark process
        self.loader = torch.utils.data.DataLoader(ImageFolder(root, tf), batch_size=batch, shuffle=True,
                                                  num_workers=2, persistent_workers=True, drop_last=True,
                                                  multiprocessing_context=files.worker_context())
        self.it = iter(self.loader)

    def next(self):
        try:
            return next(self.it)
        except StopIteration:  # a new epoch, as `for epoch: for x in loader` does: the persistent workers stay
            self.it = iter(self.loader)
            return next(self.it)


@pytest.mark.parametrize("batch", [64, 256])
@pytest.mark.parametrize("variant", ["dali", "ours-dataloader", "stock-torchvision"])
def test_jpeg_folder(benchmark, jpeg_folder, batch, variant):
    """DALI and our DataLoader fallback against the stock torchvision pipeline."""
    import os

    if variant == "dali" and not files.dali_available():
        pytest.skip("DALI not installed")
    if variant == "dali":
        stream = files.DALIStream(jpeg_folder, None, 64, 3, batch, "cpu", num_threads=2)
    elif variant == "ours-dataloader":
        stream = files.DataLoaderStream(jpeg_folder, None, 64, 3, batch, "cpu", num_workers=2)
    else:
        stream = _StockTorchvision(os.path.dirname(os.path.dirname(jpeg_folder[0])), batch)
    # two epochs a round: the steady state, epoch ends included
    _run(benchmark, stream, batch, f"cpu jpeg 178x218 -> 64x64 B={batch}", variant,
         "stock-torchvision" if variant != "stock-torchvision" else None, n_batches=2 * N_FILES // batch)


@pytest.mark.parametrize("batch", [64, 256])
@pytest.mark.parametrize("device", DEVICES)
def test_resident_draw(benchmark, device, batch):
    images = torch.randint(0, 256, (20000, 3, 64, 64), dtype=torch.uint8)
    stream = ResidentStream(images, None, batch, device, flip=True)
    _run(benchmark, stream, batch, f"{device} resident 3x64x64 B={batch}", "resident", None, n_batches=20)
