"""Evaluation during training: the metric is logged every eval_every steps and
the best-scoring models are kept as best.pt."""
import json
import os

import pytest
import torch

from helpers import TinyImages, tiny_cfg
from wgan_fast import checkpoint, config, run_folder, train
from wgan_fast.data import DEBIAN_FASHION_MNIST


@pytest.mark.filterwarnings("ignore:FID from 6 real")
@pytest.mark.skipif(not os.path.isdir(DEBIAN_FASHION_MNIST),
                    reason=f"needs the Fashion-MNIST test split ({DEBIAN_FASHION_MNIST}) as the reference set")
def test_eval_every_logs_metric_and_keeps_best(tmp_path, monkeypatch):
    monkeypatch.setenv("WGAN_FAST_CACHE", str(tmp_path / "cache"))
    cfg = tiny_cfg(tmp_path, dataset="fashion-mnist", steps=4, eval_every=2, eval_n=6, eval_n_real=6)
    run_dir = train.train(cfg, data=TinyImages((1, 28, 28))).run_dir
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    evals = [r for r in rows if "eval_fid" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["eval_n"] == 6 and r["eval_n_real"] == 6 and r["eval_fid"] > 0 for r in evals)
    best = min(evals, key=lambda r: r["eval_fid"])
    assert evals[-1]["best_fid"] == pytest.approx(best["eval_fid"])
    state = torch.load(os.path.join(run_dir, checkpoint.BEST), weights_only=True)
    assert state["step"] == best["step"] and state["best"]["fid"] == pytest.approx(best["eval_fid"])
    run = run_folder.load_run(run_dir, ckpt=os.path.join(run_dir, checkpoint.BEST))
    assert run.step == best["step"]
    # the best score survives a resume (kept in the training checkpoints)
    latest, _ = checkpoint.load_latest(run_dir)
    assert latest["best"]["fid"] == pytest.approx(best["eval_fid"])


@pytest.mark.parametrize("key,value", [("eval_every", "-1"), ("eval_metric", "is"), ("eval_features", "vgg"),
                                       ("eval_n", "2")])
def test_eval_config_validated(key, value):
    with pytest.raises(config.ConfigError, match=key):
        config.resolve({key: value})


def test_callbacks_hear_every_log_and_can_stop_the_run(tmp_path):
    heard = []

    def stop_at_three(event):
        heard.append((event.kind, event.step, sorted(event.values)))
        return event.step == 3

    cfg = tiny_cfg(tmp_path, steps=10, log_every=1, sample_every=100, ckpt_every=100)
    result = train.train(cfg, data=TinyImages((1, 28, 28)), callbacks=[stop_at_three])
    assert [(k, s) for k, s, _ in heard] == [("log", 1), ("log", 2), ("log", 3)]
    assert (result.step, result.stop_reason) == (3, "callback")
    assert result.last_values and result.seconds > 0
    # a stopped run ends as any other: a checkpoint and a sample grid of its last step, resumable
    latest, path = checkpoint.load_latest(result.run_dir)
    assert latest["step"] == 3 and path.endswith("ckpt_00000003.pt")
    assert os.path.isfile(os.path.join(result.run_dir, "samples", "step_00000003.png"))
    resumed = train.train(dict(cfg, resume=True), data=TinyImages((1, 28, 28)))
    assert (resumed.step, resumed.stop_reason) == (10, "steps")


@pytest.mark.skipif(not os.path.isdir(DEBIAN_FASHION_MNIST),
                    reason=f"needs the Fashion-MNIST test split ({DEBIAN_FASHION_MNIST}) as the reference set")
def test_a_callback_stops_on_an_evaluation_and_the_result_holds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WGAN_FAST_CACHE", str(tmp_path / "cache"))
    evals = []

    def stop_on_first_eval(event):
        if event.kind == "eval":
            evals.append((event.step, dict(event.values)))
            return True
        return False

    cfg = tiny_cfg(tmp_path, dataset="fashion-mnist", steps=8, eval_every=2, eval_n=10, eval_n_real=10,
                   eval_features="classifier", sample_every=100, ckpt_every=100)
    result = train.train(cfg, data=TinyImages((1, 28, 28)), callbacks=[stop_on_first_eval])
    assert [s for s, _ in evals] == [2] and (result.step, result.stop_reason) == (2, "callback")
    assert result.last_eval["eval_fid"] == pytest.approx(evals[0][1]["eval_fid"]) and result.last_eval["eval_fid"] > 0
    assert result.last_eval["eval_features"] == "classifier"
    assert result.best["step"] == 2 and result.best["fid"] == pytest.approx(result.last_eval["eval_fid"])
