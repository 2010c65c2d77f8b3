"""Labelled images for the downstream metrics: a run's samples with their
labels, and its dataset's real labelled splits at the run's resolution."""
from __future__ import annotations

import torch

from .. import data, run_folder
from ..classifier import NUM_CLASSES, load_classifier, predict
from ..errors import DataNotFound, UsageError
from .checks import as_images
from .reference import split_arrays

LABELS_GENERATED_FOR = "generated for (conditional run)"
LABELS_FROM_CLASSIFIER = "domain classifier (unconditional run: its samples have no labels)"


def as_run(run, device=None) -> run_folder.Run:
    """A Run, or the run folder `run` loaded (on `device`, default cpu)."""
    return run if isinstance(run, run_folder.Run) else run_folder.load_run(run, device or "cpu")


def labelling_classifier(run: run_folder.Run):
    """The domain classifier that labels an unconditional run's samples; a UsageError naming `run`
    when its dataset has none."""
    try:
        return load_classifier(run.cfg["dataset"], run.device)
    except (UsageError, DataNotFound) as exc:
        raise UsageError(f"run: {run.run_dir} is unconditional, so its samples need labels from a domain "
                         f"classifier, and there is none usable for {run.cfg['dataset']} ({exc})") from None


def labelled_samples(run: run_folder.Run, per_class: int, *, seed: int = 0, classifier=None):
    """(uint8 images (N, C, H, W), int64 labels, where the labels came from) of `run`.

    Conditional: `per_class` samples generated for each class. Unconditional:
    per_class x 10 samples labelled by the domain classifier (not balanced).
    """
    if run.num_classes:
        if run.num_classes > NUM_CLASSES:
            raise UsageError(f"run: {run.run_dir} has num_classes={run.num_classes}; the classifier has "
                             f"{NUM_CLASSES} classes")
        labels = torch.arange(run.num_classes).repeat_interleave(per_class)
        images, _ = run_folder.generate(run, len(labels), labels=labels, seed=seed)
        return as_images(images, "generated images"), labels, LABELS_GENERATED_FOR
    classifier = classifier or labelling_classifier(run)
    images, _ = run_folder.generate(run, per_class * NUM_CLASSES, seed=seed)
    images = as_images(images, "generated images")
    logits, _ = predict(classifier, images.float() / 127.5 - 1)
    return images, logits.argmax(1), LABELS_FROM_CLASSIFIER


def real_labelled(cfg: dict, split: str):
    """(uint8 images (N, channels, resolution, resolution) as the trainer sees them, int64 labels) of
    the run's dataset split."""
    if cfg["dataset"] not in data.ARRAY_DATASETS:
        raise UsageError(f"run: dataset {cfg['dataset']} has no labelled {split} split here (needs one of "
                         f"{', '.join(data.ARRAY_DATASETS)})")
    images, labels = split_arrays(cfg, split)
    if labels is None or (labels < 0).any():
        raise UsageError(f"run: the {cfg['dataset']} {split} split has unlabelled images")
    return data.to_resolution(images, cfg["resolution"], cfg["channels"]), torch.as_tensor(labels).long()
