"""Readers of the real dataset formats, validated, to uint8 arrays + labels.

CIFAR-10 python pickles, STL-10 binaries, and image files (CelebA's
img_align_celeba, Animals-10, any folder) listed with their labels. Every
failure names the file.
"""
from __future__ import annotations

import os
import pickle
import warnings

import numpy as np

from ..errors import DataError, DataNotFound
from .unreadable import on_corrupt_error, report_unreadable, why

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


# ---- CIFAR-10 ---------------------------------------------------------------------

def read_cifar10(root: str, train: bool = True):
    """(images uint8 (N, 32, 32, 3), labels int64) from the python pickle batches."""
    folder = os.path.join(root, "cifar-10-batches-py") if os.path.isdir(os.path.join(root, "cifar-10-batches-py")) else root
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    images, labels = [], []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise DataNotFound(f"CIFAR-10 batch not found: {path} (expected the python version, "
                                    f"cifar-10-batches-py/{name})")
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DataError(f"{path}: not a readable CIFAR-10 pickle (truncated or corrupt): {exc}") from None
        data = batch.get(b"data") if isinstance(batch, dict) else None
        lbls = batch.get(b"labels") if isinstance(batch, dict) else None
        if data is None or lbls is None:
            raise DataError(f"{path}: a CIFAR-10 batch needs b'data' and b'labels' entries")
        data, lbls = _integers(data, path, "data"), _integers(lbls, path, "labels")
        if data.ndim != 2 or data.shape[1] != 3072 or (data.size and (data.min() < 0 or data.max() > 255)):
            raise DataError(f"{path}: data must be (N, 3072) bytes 0..255, got shape {data.shape}")
        data = data.astype(np.uint8)
        if lbls.ndim != 1:
            raise DataError(f"{path}: b'labels' must be a list of integers, got shape {lbls.shape}")
        if len(lbls) != len(data):
            raise DataError(f"{path}: {len(lbls)} labels for {len(data)} images")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(lbls, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _integers(value, path, entry):
    """A pickle entry as an integer array, or a DataError naming the file."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "iu":
        raise DataError(f"{path}: its b'{entry}' entry is not an array of integers")
    return arr


# ---- STL-10 -------------------------------------------------------------------------

STL_SIZE = 3 * 96 * 96


def read_stl10(root: str, splits=("train", "unlabeled")):
    """(images uint8 (N, 96, 96, 3), labels int64 with -1 for unlabeled) from the binaries."""
    folder = os.path.join(root, "stl10_binary") if os.path.isdir(os.path.join(root, "stl10_binary")) else root
    images, labels = [], []
    for split in splits:
        xpath = os.path.join(folder, f"{split}_X.bin")
        if not os.path.exists(xpath):
            raise DataNotFound(f"STL-10 file not found: {xpath}")
        raw = np.fromfile(xpath, dtype=np.uint8)
        if raw.size == 0 or raw.size % STL_SIZE:
            raise DataError(f"{xpath}: {raw.size} bytes is not a whole number of 3x96x96 images (truncated?)")
        # stored column-major per image: (N, C, W, H) -> (N, H, W, C)
        x = raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
        if split == "unlabeled":
            y = np.full(len(x), -1, dtype=np.int64)
        else:
            ypath = os.path.join(folder, f"{split}_y.bin")
            if not os.path.exists(ypath):
                raise DataNotFound(f"STL-10 label file not found: {ypath}")
            y = np.fromfile(ypath, dtype=np.uint8).astype(np.int64) - 1  # 1..10 -> 0..9
            if len(y) != len(x):
                raise DataError(f"{ypath}: {len(y)} labels for {len(x)} images in {xpath}")
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# ---- image files ----------------------------------------------------------------

def list_images(root: str):
    """(paths, labels or None, class names) of an image folder.

    Class sub-folders give labels (sorted names -> 0..K-1); a flat folder (or
    CelebA's img_align_celeba) is unlabeled.
    """
    if not os.path.isdir(root):
        raise DataNotFound(f"image folder not found: {root}")
    celeba = os.path.join(root, "img_align_celeba")
    if os.path.isdir(celeba):
        root = celeba
    entries = sorted(os.listdir(root))
    # hidden folders (.ipynb_checkpoints, .git, ...) are no classes
    classes = [e for e in entries if os.path.isdir(os.path.join(root, e)) and not e.startswith(".")]
    loose = [e for e in entries if e.lower().endswith(IMAGE_EXTENSIONS) and not os.path.isdir(os.path.join(root, e))]
    if classes and loose:  # which did the user mean? neither set may be dropped without a word
        raise DataError(f"{root} holds both image files ({len(loose)}, e.g. {loose[0]}) and sub-folders ("
                        f"{', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''}), which read as classes: "
                        f"move the images into class folders, or the folders out")
    if classes:
        paths, labels = [], []
        for k, c in enumerate(classes):
            for dirpath, _, files in sorted(os.walk(os.path.join(root, c))):
                for f in sorted(files):
                    if f.lower().endswith(IMAGE_EXTENSIONS):
                        paths.append(os.path.join(dirpath, f))
                        labels.append(k)
        result = (paths, np.asarray(labels, dtype=np.int64), classes)
    else:
        result = ([os.path.join(root, e) for e in loose], None, [])
    if not result[0]:
        raise DataError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    return result


# The filter that brings image files to the resolution (with the crop, part of the
# reference-statistics cache key: other pixels, other statistics).
RESIZE_FILTER = "bilinear-aa"


def decode_image(path: str, resolution: int, channels: int, crop: str = "center"):
    """One file -> uint8 (resolution, resolution, channels): centre square crop
    (crop="center") or the whole image (crop="none"), then an antialiased
    bilinear resize (RESIZE_FILTER; the DALI pipeline applies the same).
    Returns (array, was_smaller)."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")  # grayscale and RGB mixed: one channel count out
        w, h = im.size
        if crop == "center":
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        smaller = min(im.size) < resolution
        im = im.resize((resolution, resolution), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return (arr[..., None] if channels == 1 else arr), smaller


def decode_each(paths, resolution, channels, crop, on_failure, on_small="upscale"):
    """Decode every file -> uint8 (N, resolution, resolution, channels). A file
    that does not decode is left zero and passed to on_failure(index, reason),
    which may raise. on_small="upscale" resizes images smaller than the
    resolution up with a counted warning; "error" refuses them."""
    out = np.zeros((len(paths), resolution, resolution, channels), dtype=np.uint8)
    small = []
    for i, p in enumerate(paths):
        try:
            out[i], smaller = decode_image(p, resolution, channels, crop)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt files
            on_failure(i, why(exc))
            continue
        if smaller and on_small == "error":
            raise DataError(f"{p}: smaller than the requested {resolution}x{resolution}")
        if smaller:
            small.append(p)
    if small:
        warnings.warn(f"upscaled {len(small)} image(s) smaller than {resolution}x{resolution}, e.g. {small[0]}",
                      RuntimeWarning, stacklevel=3)
    return out


def decode_folder(paths, labels, resolution, channels, crop="center", on_corrupt="skip", max_corrupt=0.01,
                  on_small="upscale"):
    """Decode every file; corrupt files are skipped and reported (or raise).

    on_corrupt="skip" skips unreadable files, warns with their count and names,
    and raises if more than `max_corrupt` of the files are unreadable (the
    default never hides more than it reports); "error" raises on the first.
    on_small: see decode_each.
    """
    failed = {}

    def on_failure(i, reason):
        if on_corrupt == "error":
            raise on_corrupt_error(paths[i], reason)
        failed[i] = reason

    images = decode_each(paths, resolution, channels, crop, on_failure, on_small)
    bad = [paths[i] for i in failed]
    report_unreadable(bad, len(paths), max_corrupt)
    if len(failed) == len(paths):
        raise DataError("no readable images")
    if failed:  # (a copy only then: a resident folder can be most of the memory)
        keep = np.asarray([i for i in range(len(paths)) if i not in failed], dtype=np.int64)
        images, labels = images[keep], (labels[keep] if labels is not None else None)
    return images, labels, bad
