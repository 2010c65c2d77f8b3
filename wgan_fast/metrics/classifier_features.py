"""Features and logits of our small domain classifier (wgan_fast.classifier)
for a dataset, with the same 8-bit quantisation as the Inception path."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from .inception import eight_bit_levels


class ClassifierFeatures:
    """Callable: images (uint8 or float in [-1, 1], NCHW) -> penultimate features (N, D) float64 numpy."""

    def __init__(self, dataset: str, device, batch_size: int = 500):
        from ..classifier import load_classifier  # noqa: PLC0415 - optional part, built separately

        self.model = load_classifier(dataset, device)  # FileNotFoundError when it has no weights
        self.device, self.batch_size = torch.device(device), batch_size
        self.num_classes = self.model.head[-1].out_features
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        self.sha256 = h.hexdigest()
        self.tag = f"classifier-{dataset}-{self.sha256[:12]}"

    @torch.inference_mode()
    def _run(self, images, head: bool) -> np.ndarray:
        images = torch.as_tensor(images)
        if len(images) == 0:
            raise ValueError("no images to compute features of")
        out = []
        for batch in images.split(self.batch_size):
            x = (eight_bit_levels(batch) / 127.5 - 1).to(self.device)
            out.append((self.model(x) if head else self.model.features(x)).double().cpu())
        return torch.cat(out).numpy()

    def __call__(self, images) -> np.ndarray:
        return self._run(images, head=False)

    def logits(self, images) -> np.ndarray:
        return self._run(images, head=True)
