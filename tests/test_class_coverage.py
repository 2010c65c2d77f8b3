"""Class coverage (metrics/class_coverage.py): known answers by hand, on real
Fashion-MNIST images through the domain classifier, in `evaluate` and as the
in-training evaluation metric."""
import json
import os

import numpy as np
import pytest
import torch

from wgan_fast import config, metrics, train
from wgan_fast.commands import evaluate
from wgan_fast.data import idx
from wgan_fast.errors import ConfigError
from wgan_fast.metrics.class_coverage import class_coverage, class_shares

from helpers import TinyImages

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.exists(FASHION), reason=f"Fashion-MNIST IDX files not in {FASHION}")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WGAN_FAST_CACHE", str(tmp_path / "cache"))


def test_known_answers_by_hand():
    same = class_coverage([0, 1, 2, 2], [2, 1, 0, 2], 3)
    assert same["class_cov"] == 0 and same["class_kl"] < 0.05 and same["class_min_share"] == 0.25
    assert same["class_shares"] == [0.25, 0.25, 0.5]
    # all samples in class 0 against a uniform reference: TV = 1 - 1/k, the others missing
    one = class_coverage([0] * 8, [0, 1, 2, 3], 4)
    assert one["class_cov"] == pytest.approx(0.75) and one["class_min_share"] == 0
    # KL(real || smoothed generated): finite, and by hand: q = 1/4, p = (8.5/10, 0.5/10 x 3)
    expected = 0.25 * np.log(0.25 / 0.85) + 3 * 0.25 * np.log(0.25 / 0.05)
    assert one["class_kl"] == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        class_shares([0, 4], 4)


def fashion(split, n=None, label=None):
    stem = "t10k" if split == "test" else "train"
    x = idx.read_idx(os.path.join(FASHION, f"{stem}-images-idx3-ubyte.gz"))
    if label is not None:
        x = x[idx.read_idx(os.path.join(FASHION, f"{stem}-labels-idx1-ubyte.gz")) == label]
    return torch.from_numpy(x[:n].copy())[:, None]


def fashion_cfg(**kw):
    return config.resolve(dict(dict(dataset="fashion-mnist", resolution="28", channels="1", model="dcgan"), **kw))


@needs_fashion
def test_real_images_cover_every_class_and_one_class_does_not():
    ev = metrics.Evaluator(fashion_cfg(), "cpu", metrics=("class-cov",), n_real=1000)
    real = ev.score(fashion("train", 1000).float() / 127.5 - 1, 1000)  # other real images than the reference
    assert real["class_cov"] < 0.05 and real["class_kl"] < 0.02 and real["n_real"] == 1000
    assert 0.07 < real["class_min_share"] <= 0.1 < max(real["class_shares"]) < 0.13
    trousers = ev.score(fashion("train", 300, label=1).float() / 127.5 - 1, 300)
    assert trousers["class_min_share"] == 0 and trousers["class_shares"][1] > 0.9
    assert trousers["class_cov"] > 0.8 and trousers["class_kl"] > 1


@needs_fashion
def test_class_coverage_in_training_and_in_evaluate(tmp_path, capsys):
    cfg = fashion_cfg(z_dim="16", g_base="8", d_base="8", batch_size="8", steps="2", n_critic="1", log_every="1",
                      eval_every="2", eval_metric="class-cov", eval_n="50", eval_n_real="100", out_dir=str(tmp_path),
                      tensorboard="false", name="cov")
    run_dir = train.train(cfg, data=TinyImages((1, 28, 28))).run_dir
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    (row,) = [r for r in rows if "eval_class_cov" in r]
    assert 0 <= row["eval_class_cov"] <= 1 and row["best_class_cov"] == row["eval_class_cov"]
    assert 0 <= row["eval_class_min_share"] <= 0.1 and row["eval_n_real"] == 100
    assert os.path.exists(os.path.join(run_dir, "best.pt"))

    rc = evaluate.main(["--run", run_dir, "--n", "40", "--n-real", "100", "--metrics", "class-cov", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "class-cov" in out and "min class share" in out and "shares by class:" in out, out
    # named after the network that labelled the samples (no Inception was run)
    report = json.load(open(os.path.join(run_dir, "eval", "step_00000002_n40_test_classifier.json")))
    assert len(report["metrics"]["class_shares"]) == 10 and report["network"].startswith("classifier-fashion-mnist")
    assert report["features"] == "classifier"


def test_class_coverage_needs_the_classifier_dataset():
    with pytest.raises(ConfigError, match="eval_metric: class-cov needs the domain classifier"):
        config.resolve(dict(dataset="cifar10", model="resnet", eval_every="100", eval_metric="class-cov"))
