"""Streams over image files: NVIDIA DALI (GPU decode on CUDA, CPU pipeline
elsewhere) and a torchvision DataLoader (no DALI; the benchmarks' baseline).

Both follow BatchOrder: our sampler picks each batch's files and flips from
(seed, rank, k), DALI or the DataLoader workers only read, decode, crop,
resize and normalise. So both give the same files in the same order, and a
resumed stream continues exactly where it stopped.

Files are checked up front cheaply (unreadable.scan_problem) and again by the
decoder while training: a file that fails either is skipped, counted
(`skipped_files`) and bounded under the on_corrupt/max_corrupt policy, and in
a batch replaced by the same substitute in every loader (see unreadable.py).
Which files those are is part of the state, so a resumed stream continues
exactly.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from ..errors import require
from .order import BatchOrder
from .unreadable import UnreadableFiles, on_corrupt_error, report_unreadable, scan_problem, why


class _FileStream:
    """What the file streams share: position, the unreadable files, labels of a batch."""

    def _setup(self, paths, labels, batch_size, device, seed, rank, world_size, flip, unreadable):
        self.paths, self.labels = list(paths), labels
        self.order = BatchOrder(len(self.paths), batch_size, seed, rank, world_size)
        self.device, self.flip, self.k = torch.device(device), flip, 0
        self.unreadable = unreadable if unreadable is not None else UnreadableFiles(self.paths)

    @property
    def skipped_files(self) -> int:
        """Files skipped so far: by the scan and while streaming."""
        return self.unreadable.count

    def _labels(self, idx):
        return torch.from_numpy(self.labels[np.asarray(idx)]).to(self.device) if self.labels is not None else None

    def state_dict(self):
        return {"k": self.k, "unreadable": self.unreadable.state_dict()}

    def load_state_dict(self, state):
        self.k = int(state["k"])
        self.unreadable.load_state_dict(state.get("unreadable", {}))
        self._restart()


def check_files(paths, labels, on_corrupt="skip", max_corrupt=0.01):
    """The up-front check of every file -> (the readable paths, their labels,
    UnreadableFiles counting the others and holding the policy for later finds)."""
    keep, bad = [], []
    for i, p in enumerate(paths):
        reason = scan_problem(p)
        if reason is None:
            keep.append(i)
        elif on_corrupt == "error":
            raise on_corrupt_error(p, reason)
        else:
            bad.append(p)
    report_unreadable(bad, len(paths), max_corrupt)
    kept = [paths[i] for i in keep]
    labels = labels[np.asarray(keep, dtype=np.int64)] if labels is not None else None
    return kept, labels, UnreadableFiles(kept, bad, len(paths), on_corrupt, max_corrupt)


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401, PLC0415

        return True
    except ImportError:
        return False


def _dali_reason(exc: BaseException) -> str:
    """Which DALI operator failed (the error's full text quotes our pipeline
    definition over many lines, and its sample number is the probe's)."""
    op = re.search(r"operator `([^`]+)`", str(exc))
    return f"DALI's {op.group(1) if op else 'pipeline'} failed on it"


class DALIStream(_FileStream):
    """DALI pipeline: external source (our order) -> decode (only the centre
    square, with crop="center") -> antialiased bilinear resize -> flip +
    normalise to [-1, 1], CHW float. The same geometry and filter as the PIL
    path (formats.decode_image).

    A file DALI cannot decode fails the whole pipeline, which is then no
    longer valid. The batches fed since the consumer's position (DALI
    prefetches) are then decoded file by file in a one-image pipeline of the
    same operators, the failing files marked unreadable, and the pipeline
    rebuilt with its feed back at the consumer's position: the batch comes out
    again with each such file replaced."""

    def __init__(self, paths, labels, resolution, channels, batch_size, device, seed=0, rank=0, world_size=1,
                 flip=False, crop="center", num_threads=2, unreadable=None):
        require("nvidia.dali", "dali", "the DALI loader (loader=dali)")
        import nvidia.dali.math as dmath  # noqa: PLC0415
        from nvidia.dali import fn, pipeline_def, types  # noqa: PLC0415

        self._setup(paths, labels, batch_size, device, seed, rank, world_size, flip, unreadable)
        gpu = self.device.type == "cuda"
        channels_out = types.GRAY if channels == 1 else types.RGB
        decoder = "mixed" if gpu else "cpu"

        @pipeline_def(num_threads=num_threads, device_id=self.device.index or 0 if gpu else None, seed=seed)
        def pipe(source):
            encoded, mirror = fn.external_source(source=source, num_outputs=2, batch=True,
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
        self._probe_pipe, self._probe_bytes = None, None
        self._restart()

    def _restart(self):
        """A new pipeline whose feed starts at the consumer's position."""
        self.pipe = None  # the old one's threads go first
        self._feed_k, self._fed = self.k, {}  # the files fed per batch (substitutes included), for the labels
        self.pipe = self._pipe_fn(self._feed, batch_size=self.order.B, prefetch_queue_depth=2)
        self.pipe.build()

    def _read(self, i):
        try:
            return np.fromfile(self.paths[i], dtype=np.uint8)
        except OSError:  # gone since the scan: an empty sample fails the decoder, the probe says why
            return np.zeros(0, dtype=np.uint8)

    def _feed(self):
        # DALI calls this ahead of consumption (prefetch): it keeps its own count.
        k = self._feed_k
        idx = self.unreadable.batch(self.order, k)
        flips = self.order.flips(k) if self.flip else torch.zeros(len(idx), dtype=torch.bool)
        self._fed[k], self._feed_k = idx, k + 1
        return [self._read(i) for i in idx], [np.array(int(f), dtype=np.int32) for f in flips.tolist()]

    def _probe(self, i):
        """Why file i fails this stream's operators on its own, or None."""
        try:
            self._probe_bytes = np.fromfile(self.paths[i], dtype=np.uint8)
        except OSError as exc:
            return why(exc)
        if self._probe_pipe is None:
            self._probe_pipe = self._pipe_fn(lambda: ([self._probe_bytes], [np.array(0, dtype=np.int32)]),
                                             batch_size=1, prefetch_queue_depth=1)
            self._probe_pipe.build()
        try:
            self._probe_pipe.run()  # one run, one call of the source: this file
        except RuntimeError as exc:
            self._probe_pipe = None  # no longer valid
            return _dali_reason(exc)
        return None

    def _recover(self) -> bool:
        """After a failed run: mark the failing files of the first fed batch
        that has any and restart at the consumer's batch (False: none fails
        alone, so the failure is not a file's)."""
        try:
            for k in range(self.k, self._feed_k):
                failing = {i: r for i in dict.fromkeys(self._fed[k]) if (r := self._probe(i)) is not None}
                for i, reason in failing.items():
                    self.unreadable.mark(i, reason)
                if failing:
                    self._restart()
                    return True
            return False
        finally:
            self._probe_pipe = None  # its threads, until the next failure

    def next(self):
        while True:
            try:
                (out,) = self.pipe.run()
                break
            except RuntimeError:
                if not self._recover():
                    raise
        if self.device.type == "cuda":
            from nvidia.dali.plugin.pytorch import feed_ndarray  # noqa: PLC0415

            t = out.as_tensor()
            x = torch.empty(t.shape(), dtype=torch.float32, device=self.device)
            feed_ndarray(t, x, cuda_stream=torch.cuda.current_stream(self.device))
        else:
            x = torch.from_numpy(np.array(out.as_tensor()))
        y = self._labels(self._fed.pop(self.k))
        self.k += 1
        return x, y


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

    def decode(self, i):
        """File i -> uint8 (C, H, W)."""
        from .formats import decode_image  # noqa: PLC0415

        arr, _ = decode_image(self.paths[i], self.resolution, self.channels, self.crop)
        return torch.from_numpy(np.array(arr.transpose(2, 0, 1), order="C"))  # a writable copy (PIL's is not)

    def __getitem__(self, i):
        """(image, i, "") or, for a file that does not decode, (zeros, i, why):
        the stream marks it and fills the slot in the main process."""
        try:
            return self.decode(i), i, ""
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for a file it cannot decode
            return torch.zeros(self.channels, self.resolution, self.resolution, dtype=torch.uint8), i, why(exc)


class _OrderSampler(torch.utils.data.Sampler):
    """Batch k's files from k = start on, known-unreadable ones already replaced."""

    def __init__(self, order, start, unreadable):
        self.order, self.start, self.unreadable = order, start, unreadable

    def __iter__(self):
        k = self.start
        while True:
            yield self.unreadable.batch(self.order, k)
            k += 1


class DataLoaderStream(_FileStream):
    """torchvision-style DataLoader with worker processes decoding with PIL.

    The sampler runs ahead of the consumer, so a file found unreadable in one
    batch may already sit in a later one: each slot whose worker could not
    decode it is refilled here with its substitute."""

    def __init__(self, paths, labels, resolution, channels, batch_size, device, seed=0, rank=0, world_size=1,
                 flip=False, crop="center", num_workers=2, unreadable=None):
        self._setup(paths, labels, batch_size, device, seed, rank, world_size, flip, unreadable)
        self.dataset = _FileDataset(self.paths, resolution, channels, crop)
        self.num_workers = num_workers
        self._it = None

    def _iterator(self):
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=_OrderSampler(self.order, self.k, self.unreadable),
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.num_workers > 0, prefetch_factor=4 if self.num_workers > 0 else None,
            multiprocessing_context=worker_context() if self.num_workers > 0 else None)
        return iter(loader)

    def _restart(self):
        self._it = None

    def next(self):
        if self._it is None:
            self._it = self._iterator()
        xb, idx, reasons = next(self._it)
        for j, reason in enumerate(reasons):
            if reason:
                self.unreadable.mark(int(idx[j]), reason)
                i, image = self.unreadable.replace(self.order, self.k, j, self.dataset.decode)
                xb[j], idx[j] = image, i
        x = xb.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if self.flip:
            mask = self.order.flips(self.k).to(self.device).view(-1, 1, 1, 1)
            x = torch.where(mask, x.flip(3), x)
        y = self._labels(idx)
        self.k += 1
        return x, y
