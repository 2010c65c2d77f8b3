"""IDX files (MNIST, Fashion-MNIST), gzipped or not, validated."""
from __future__ import annotations

import gzip
import os

import numpy as np

from ..errors import DataError, DataNotFound

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
           0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
    """The array stored in an IDX file; a clear error naming the file when it is not one."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataNotFound(f"IDX file not found: {path}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read (corrupt or truncated gzip): {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != need:
        raise DataError(f"{path}: truncated or padded IDX data: header says {shape} ({need} bytes), "
                         f"file holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def find(root: str, stem: str) -> str | None:
    """root/stem or root/stem.gz, whichever exists."""
    for name in (stem, stem + ".gz"):
        p = os.path.join(root, name)
        if os.path.exists(p):
            return p
    return None


def load_split(root: str, train: bool):
    """(images uint8 (N, 28, 28), labels int64 (N,)) of an MNIST-format folder."""
    prefix = "train" if train else "t10k"
    img_path, lbl_path = find(root, f"{prefix}-images-idx3-ubyte"), find(root, f"{prefix}-labels-idx1-ubyte")
    if img_path is None or lbl_path is None:
        missing = [n for n, p in ((f"{prefix}-images-idx3-ubyte[.gz]", img_path),
                                  (f"{prefix}-labels-idx1-ubyte[.gz]", lbl_path)) if p is None]
        raise DataNotFound(f"{root}: missing {', '.join(missing)} (pass --data-dir FOLDER holding them)")
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8 or 0 in images.shape[1:]:
        raise DataError(f"{img_path}: expected unsigned-byte images (N, H, W) with H, W > 0, got "
                        f"{images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{lbl_path}: {len(labels)} labels for {len(images)} images in {img_path}")
    return images, labels.astype(np.int64)
