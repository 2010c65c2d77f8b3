"""Streams over image files: NVIDIA DALI (GPU decode on CUDA, CPU pipeline
elsewhere) and a torchvision DataLoader (no DALI; the benchmarks' baseline).

Both follow BatchOrder: our sampler picks each batch's files and flips from
(seed, rank, k), DALI or the DataLoader workers only read, decode, crop,
resize and normalise. So both give the same files in the same order, and a
resumed stream continues exactly where it stopped.

Files are checked once up front (PIL's verify: header and structure, no full
decode); unreadable ones are skipped and reported under the on_corrupt policy
(see formats.decode_folder), because one corrupt JPEG would otherwise stop a
DALI pipeline mid-run.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import require
from .formats import report_unreadable
from .order import BatchOrder


class _FileStream:
    """What the file streams share: position, labels of a batch, flips."""

    def _labels(self, idx: torch.Tensor):
        return torch.from_numpy(self.labels[idx.numpy()]).to(self.device) if self.labels is not None else None

    def state_dict(self):
        return {"k": self.k}


def check_files(paths, labels, on_corrupt="skip", max_corrupt=0.01):
    """Drop unreadable files (counted, named, bounded) -> (paths, labels)."""
    from PIL import Image  # noqa: PLC0415

    keep, bad = [], []
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im.verify()
        except Exception as exc:  # noqa: BLE001
            if on_corrupt == "error":
                raise ValueError(f"{p}: unreadable image ({type(exc).__name__}: {exc})") from None
            bad.append(p)
            continue
        keep.append(i)
    report_unreadable(bad, len(paths), max_corrupt)
    paths = [paths[i] for i in keep]
    labels = labels[np.asarray(keep)] if labels is not None else None
    return paths, labels


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401, PLC0415

        return True
    except ImportError:
        return False


class DALIStream(_FileStream):
    """DALI pipeline: external source (our order) -> decode (only the centre
    square, with crop="center") -> antialiased bilinear resize -> flip +
    normalise to [-1, 1], CHW float. The same geometry and filter as the PIL
    path (formats.decode_image)."""

    def __init__(self, paths, labels, resolution, channels, batch_size, device, seed=0, rank=0, world_size=1,
                 flip=False, crop="center", num_threads=2):
        require("nvidia.dali", "dali", "the DALI loader (loader=dali)")
        import nvidia.dali.math as dmath  # noqa: PLC0415
        from nvidia.dali import fn, pipeline_def, types  # noqa: PLC0415

        self.paths, self.labels = list(paths), labels
        self.order = BatchOrder(len(self.paths), batch_size, seed, rank, world_size)
        self.device, self.flip, self.k = torch.device(device), flip, 0
        self._feed_k = 0
        gpu = self.device.type == "cuda"
        channels_out = types.GRAY if channels == 1 else types.RGB
        decoder = "mixed" if gpu else "cpu"

        @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=self.device.index or 0 if gpu else None,
                      seed=seed, prefetch_queue_depth=2)
        def pipe():
            encoded, mirror = fn.external_source(source=self._feed, num_outputs=2, batch=True,
                                                 dtype=[types.UINT8, types.INT32])
            if crop == "center":
                # decode only the centred square of side min(H, W) (a region-of-interest decode:
                # on 2 CPU cores the resize, not the decode, is most of the time, and a smaller
                # decoded image shrinks both)
                shape = fn.peek_image_shape(encoded)
                side = fn.cast(dmath.min(shape[0], shape[1]), dtype=types.FLOAT)
                images = fn.decoders.image_crop(encoded, device=decoder, output_type=channels_out, crop_h=side,
                                                crop_w=side)
            else:
                images = fn.decoders.image(encoded, device=decoder, output_type=channels_out)
            # linear + antialias is a triangle filter when shrinking: PIL's (and torchvision's) bilinear
            images = fn.resize(images, resize_x=resolution, resize_y=resolution, interp_type=types.INTERP_LINEAR,
                               antialias=True)
            return fn.crop_mirror_normalize(images, mirror=mirror, mean=127.5, std=127.5, output_layout="CHW",
                                            dtype=types.FLOAT)

        self._pipe_fn = pipe
        self._build()

    def _build(self):
        self._feed_k = self.k
        self.pipe = self._pipe_fn()
        self.pipe.build()

    def _feed(self):
        # DALI calls this ahead of consumption (prefetch): it keeps its own count.
        idx = self.order.indices(self._feed_k)
        flips = self.order.flips(self._feed_k) if self.flip else torch.zeros(len(idx), dtype=torch.bool)
        self._feed_k += 1
        encoded = [np.fromfile(self.paths[i], dtype=np.uint8) for i in idx.tolist()]
        return encoded, [np.array(int(f), dtype=np.int32) for f in flips.tolist()]

    def next(self):
        (out,) = self.pipe.run()
        if self.device.type == "cuda":
            from nvidia.dali.plugin.pytorch import feed_ndarray  # noqa: PLC0415

            t = out.as_tensor()
            x = torch.empty(t.shape(), dtype=torch.float32, device=self.device)
            feed_ndarray(t, x, cuda_stream=torch.cuda.current_stream(self.device))
        else:
            x = torch.from_numpy(np.array(out.as_tensor()))
        y = self._labels(self.order.indices(self.k))
        self.k += 1
        return x, y

    def load_state_dict(self, state):
        self.k = int(state["k"])
        self._build()  # restart the pipeline's feed at k


def worker_context():
    """Workers are started from a clean forkserver, not forked from this
    process: a fork while other threads (DALI's, OpenMP's, CUDA's) hold a lock
    can leave the child deadlocked (seen here: a hang after a DALI pipeline
    had run in the same process)."""
    import multiprocessing as mp  # noqa: PLC0415

    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")


class _FileDataset(torch.utils.data.Dataset):
    def __init__(self, paths, resolution, channels, crop):
        self.paths, self.resolution, self.channels, self.crop = paths, resolution, channels, crop

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from .formats import decode_image  # noqa: PLC0415

        arr, _ = decode_image(self.paths[i], self.resolution, self.channels, self.crop)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), i


class _OrderSampler(torch.utils.data.Sampler):
    def __init__(self, order, start):
        self.order, self.start = order, start

    def __iter__(self):
        k = self.start
        while True:
            yield self.order.indices(k).tolist()
            k += 1


class DataLoaderStream(_FileStream):
    """torchvision-style DataLoader with worker processes decoding with PIL."""

    def __init__(self, paths, labels, resolution, channels, batch_size, device, seed=0, rank=0, world_size=1,
                 flip=False, crop="center", num_workers=2):
        self.paths, self.labels = list(paths), labels
        self.order = BatchOrder(len(self.paths), batch_size, seed, rank, world_size)
        self.device, self.flip, self.k = torch.device(device), flip, 0
        self.args = (resolution, channels, crop)
        self.num_workers = num_workers
        self._it = None

    def _iterator(self):
        loader = torch.utils.data.DataLoader(
            _FileDataset(self.paths, *self.args), batch_sampler=_OrderSampler(self.order, self.k),
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.num_workers > 0, prefetch_factor=4 if self.num_workers > 0 else None,
            multiprocessing_context=worker_context() if self.num_workers > 0 else None)
        return iter(loader)

    def next(self):
        if self._it is None:
            self._it = self._iterator()
        xb, idx = next(self._it)
        x = xb.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if self.flip:
            mask = self.order.flips(self.k).to(self.device).view(-1, 1, 1, 1)
            x = torch.where(mask, x.flip(3), x)
        y = self._labels(idx)
        self.k += 1
        return x, y

    def load_state_dict(self, state):
        self.k, self._it = int(state["k"]), None
