"""What synthetic data is worth: the nearest-neighbour search, memorization
(authenticity, the data-copying statistic), the classification accuracy score
and the augmentation gain, held to known answers on real Fashion-MNIST
subsets; their bad input, in the library and through `wgan-fast evaluate`.

Classifier trainings here use tiny budgets (tens of steps): the known answers
hold at any budget, the documented numbers come from
scripts/measure_downstream.py.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from wgan_fast import config, metrics, train
from wgan_fast.classifier import load_split
from wgan_fast.commands import evaluate
from wgan_fast.errors import UsageError
from wgan_fast.metrics import augmentation, cas, copying, knn_manifolds

from helpers import TinyImages  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"
pytestmark = pytest.mark.skipif(not os.path.exists(FASHION), reason=f"Fashion-MNIST IDX files not in {FASHION}")
TINY = cas.Budget(steps=12, batch_size=16)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):  # conftest.one_thread for every test here
    yield


@pytest.fixture(scope="module")
def fashion():
    """(train images, train labels, test images, test labels): uint8 (N, 28, 28), int64."""
    return (*load_split("fashion-mnist", train=True), *load_split("fashion-mnist", train=False))


def tiny_run(root, name, dataset="fashion-mnist", conditional=True):
    """A DCGAN trained 2 steps on random 28 px images, with the config of `dataset`."""
    cfg = config.resolve(dict(dataset=dataset, model="dcgan", resolution="28", channels="1", z_dim="16",
                              g_base="8", d_base="8", batch_size="8", steps="2", n_critic="1", log_every="1",
                              sample_every="2", ckpt_every="2", n_samples="4", out_dir=str(root),
                              tensorboard="false", name=name, conditional=str(conditional).lower()))
    return train.train(cfg, data=TinyImages((1, 28, 28))).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return dict(conditional=tiny_run(root, "cond"), unconditional=tiny_run(root, "uncond", conditional=False),
                mnist=tiny_run(root, "mnist", dataset="mnist", conditional=False))


# ---- nearest neighbours -------------------------------------------------------------------------

def test_nearest_neighbours_equal_brute_force_and_copies_sit_at_zero():
    g = torch.Generator().manual_seed(0)
    refs = torch.randn(700, 24, generator=g) * 30 + 100  # large norms: the product form cancels badly here
    queries = torch.cat([refs[:40], torch.randn(300, 24, generator=g) * 30 + 100])
    d, i = knn_manifolds.nearest_neighbours(queries, refs, 3, rows=64)
    brute = (queries[:, None].double() - refs[None].double()).norm(dim=2)
    want_d, want_i = brute.topk(3, dim=1, largest=False)
    assert torch.equal(i, want_i)
    torch.testing.assert_close(d, want_d, rtol=0, atol=1e-9)
    assert (d[:40, 0] == 0).all() and torch.equal(i[:40, 0], torch.arange(40))  # copies: exactly 0
    # searching a set against itself, each sample's own index left out
    d, i = knn_manifolds.nearest_neighbours(refs, refs, 1, exclude=torch.arange(len(refs)), rows=100)
    brute = (refs[:, None].double() - refs[None].double()).norm(dim=2).fill_diagonal_(float("inf"))
    assert torch.equal(i[:, 0], brute.argmin(1))
    with pytest.raises(ValueError, match="k=5 but only 4 refs"):
        knn_manifolds.nearest_neighbours(queries, refs[:4], 5)


# ---- memorization ---------------------------------------------------------------------------------

@pytest.mark.parametrize("features", ["pixels", "classifier"])
def test_training_images_are_copies_and_test_images_are_not(fashion, features, tmp_path):
    x, _, xt, _ = fashion
    train_images, heldout = x[:3000], xt[500:1000]
    copied = metrics.memorization(x[:500], train_images, features=features, heldout_images=heldout, cells=4,
                                  grid=str(tmp_path / "pairs.png"))
    assert copied["authenticity"] < 0.02 and copied["exact_copies"] == 500
    assert copied["copying_z"] < -8  # every U is 0: about -sqrt(3mn/(m+n+1)) = -14 with ~125 a cell
    fresh = metrics.memorization(xt[:500], train_images, features=features, heldout_images=heldout, cells=4)
    assert fresh["authenticity"] > 0.4 and abs(fresh["authenticity"] - fresh["heldout_authenticity"]) < 0.1
    assert abs(fresh["copying_z"]) < 3  # a weighted mean of cells' z, each ~N(0, 1) when nothing is copied
    assert fresh["exact_copies"] == 0 and fresh["cells_used"] == 4
    assert np.all(fresh["nn_distances"] > 0) and len(fresh["nn_indices"]) == 500
    from PIL import Image

    assert Image.open(tmp_path / "pairs.png").size == (8 * 30 + 2, 4 * 30 + 2)  # 16 pairs, 4 a row


def test_memorization_inception_features_wiring(fashion):
    x, _, xt, _ = fashion
    r = metrics.memorization(x[:4], x[:12], features="inception", heldout_images=xt[:4], cells=1, min_per_cell=1,
                             batch_size=10)
    assert r["authenticity"] == 0 and r["exact_copies"] == 4 and r["copying_z"] < 0 and r["features"] == "inception"


def test_copying_z_is_meehans_statistic_by_hand():
    """One cell: C_T is the z-scored Mann-Whitney U of the two sets' distances to the training set."""
    g = torch.Generator().manual_seed(1)
    train_f, gen_f, held_f = (torch.randn(n, 5, generator=g) for n in (200, 60, 50))
    r = copying.copying_z(gen_f, held_f, train_f, cells=1, min_per_cell=1)
    lq = torch.cdist(gen_f.double(), train_f.double()).min(1).values.numpy()
    lp = torch.cdist(held_f.double(), train_f.double()).min(1).values.numpy()
    u = sum((a > b) + 0.5 * (a == b) for a in lq for b in lp)  # pairs, one by one
    m, n = len(lq), len(lp)
    assert r["copying_z"] == pytest.approx((u - m * n / 2 + 0.5) / np.sqrt(m * n * (m + n + 1) / 12), rel=1e-9)


# ---- classification accuracy score ------------------------------------------------------------------

def test_cas_of_real_images_with_true_and_shuffled_labels(fashion):
    x, y, xt, yt = fashion
    budget = cas.Budget(steps=60, batch_size=64)
    true = metrics.classification_accuracy_score(x[:2000], y[:2000], xt[:1000], yt[:1000], budget=budget,
                                                 baseline=(x[2000:], y[2000:]))
    shuffled = metrics.classification_accuracy_score(x[:2000], np.random.default_rng(0).permutation(y[:2000]),
                                                     xt[:1000], yt[:1000], budget=budget)
    assert true["accuracy"] > 0.70, true  # measured 0.76 at this budget; 0.85+ at the default budget
    assert abs(true["baseline_accuracy"] - true["accuracy"]) < 0.06  # another 2000 real images, same budget
    # chance is 0.1; one shuffle maps each visual class to some label, so a single score sits in steps of ~0.1
    assert shuffled["accuracy"] < 0.25, shuffled
    assert true["n_train"] == 2000 and true["n_test"] == 1000 and true["budget"]["steps"] == 60


def test_classifier_training_is_seeded(fashion):
    x, y, xt, yt = fashion
    w = []
    for global_seed, seed in ((0, 3), (123, 3), (0, 4)):  # the caller's global RNG state must not matter
        torch.manual_seed(global_seed)
        model = cas.train_classifier(torch.tensor(x[:200]).unsqueeze(1), torch.tensor(y[:200]), seed=seed,
                                     budget=TINY)
        w.append(model.head[1].weight)
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


# ---- augmentation gain --------------------------------------------------------------------------

def test_augmentation_gain_statistics_and_plot(runs, tmp_path):
    from scipy import stats

    r = metrics.augmentation_gain(runs["conditional"], real_per_class=(2, 5), synthetic_per_class=3, seeds=(0, 1, 2),
                                  budget=TINY, n_test=300, plot=str(tmp_path / "gain.png"))
    assert r["labels_from"].startswith("generated for") and r["n_synthetic"] == 30 and r["n_test"] == 300
    for k in (2, 5):
        s = r["sizes"][k]
        real, aug = np.array(s["real"]), np.array(s["augmented"])
        assert len(real) == len(aug) == 3 and ((real >= 0) & (real <= 1)).all()
        assert s["gain"] == pytest.approx((aug - real).mean())
        assert s["real_std"] == pytest.approx(real.std(ddof=1))
        lo, hi = stats.ttest_rel(aug, real).confidence_interval(0.95)  # scipy's paired t interval
        assert s["gain_ci95"] == pytest.approx([lo, hi])
    assert os.path.getsize(tmp_path / "gain.png") > 1000


def test_real_subsets_are_class_balanced_and_drawn_per_seed(fashion):
    x, y = torch.tensor(fashion[0]), torch.tensor(fashion[1])
    a, ya = augmentation.balanced_subset(x, y, 7, seed=0)
    b, _ = augmentation.balanced_subset(x, y, 7, seed=0)
    c, _ = augmentation.balanced_subset(x, y, 7, seed=1)
    assert torch.bincount(ya).tolist() == [7] * 10 and torch.equal(a, b) and not torch.equal(a, c)


def test_unconditional_run_is_labelled_by_the_domain_classifier(runs):
    r = metrics.augmentation_gain(runs["unconditional"], real_per_class=(1,), synthetic_per_class=2, seeds=(0,),
                                  budget=TINY, n_test=100)
    assert r["labels_from"].startswith("domain classifier") and r["n_synthetic"] == 20
    assert r["sizes"][1]["gain_ci95"] is None  # one seed: no interval


# ---- bad input ------------------------------------------------------------------------------------

def test_bad_input_is_a_usage_error_naming_the_argument(fashion, runs):
    x, y, xt, yt = fashion
    score = metrics.classification_accuracy_score
    with pytest.raises(UsageError, match=r"^labels: \(99,\) labels for 100 images"):
        score(x[:100], y[:99], xt[:10], yt[:10], budget=TINY)
    with pytest.raises(UsageError, match=r"^test_labels: label 10 is outside the classifier's classes 0\.\.9"):
        score(x[:100], y[:100], xt[:10], np.r_[yt[:9], 10], budget=TINY)
    with pytest.raises(UsageError, match=r"^images: expected images .* got shape \(100, 2, 28, 28\)"):
        score(np.zeros((100, 2, 28, 28), np.uint8), y[:100], xt[:10], yt[:10], budget=TINY)
    with pytest.raises(UsageError, match=r"^test_images: .*H, W >= 8.* got shape \(10, 1, 4, 4\)"):
        score(x[:100], y[:100], np.zeros((10, 4, 4), np.uint8), yt[:10], budget=TINY)
    with pytest.raises(UsageError, match=r"^real_per_class: asks for 7000 real images per class, but class \d+ "
                                         r"of the training split has only 6000"):
        metrics.augmentation_gain(runs["conditional"], real_per_class=(10, 7000), budget=TINY)
    with pytest.raises(UsageError, match=r"^run: .*mnist.* is unconditional.*no domain classifier|^run: .*unconditional.*"
                                         r"mnist"):
        metrics.augmentation_gain(runs["mnist"], real_per_class=(1,), budget=TINY)
    with pytest.raises(UsageError, match=r"^train_images: images of shape \(1, 20, 20\)"):
        metrics.memorization(x[:10], np.zeros((10, 20, 20), np.uint8), features="pixels", heldout_images=xt[:10])
    with pytest.raises(UsageError, match=r"^features: must be one of inception, classifier, pixels"):
        metrics.memorization(x[:10], x[:10], features="dino")


def run_cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WGAN_FAST_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "wgan_fast", "evaluate", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_command_bad_input_is_one_line_with_exit_code_2(runs):
    failures = [(("--run", runs["conditional"], "--metrics", "augmentation", "--real-per-class", "10,7000"),
                 "real_per_class: asks for 7000"),
                (("--run", runs["mnist"], "--metrics", "cas"), "run: "),
                (("--run", runs["conditional"], "--metrics", "cas,ssim"), "--metrics: unknown 'ssim'")]
    for args, match in failures:
        r = run_cli(*args, "--device", "cpu", "--n", "20")
        lines = [line for line in r.stderr.splitlines() if line.strip() and "warning" not in line]
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert len(lines) == 1 and lines[0].startswith("wgan_fast.evaluate: usage error: ") and match in lines[0], \
            lines


def test_command_end_to_end(runs, tmp_path, capsys):
    out = tmp_path / "report.json"
    rc = evaluate.main(["--run", runs["conditional"], "--metrics", "cas,augmentation,memorization", "--device", "cpu",
                        "--n", "60", "--n-test", "200", "--n-train", "600", "--real-per-class", "2",
                        "--synthetic-per-class", "2", "--seeds", "0,1", "--cas-steps", "10", "--cas-batch-size", "16",
                        "--memorization-features", "pixels", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    for row in (r"CAS +0\.\d{4} +60 generated, 200 real test", r"CAS real baseline +0\.\d{4} +60 real train",
                r"augmentation gain @2/class +[+-]0\.\d{4} ", r"authenticity +[01]\.\d{4} +60 generated vs 600 train",
                r"copying z \(C_T\) +[+-]\d+\.\d{3} "):
        assert re.search("^" + row, text, re.MULTILINE), (row, text)
    m = json.loads(out.read_text())["metrics"]
    assert m["cas"]["n_train"] == 60 and m["cas"]["n_test"] == 200 and "baseline_accuracy" in m["cas"]
    assert m["augmentation"]["sizes"]["2"]["real"] and m["memorization"]["n_train"] == 600
    assert m["memorization"]["features"] == "pixels" and "nn_distances" not in m["memorization"]
    assert os.path.exists(tmp_path / "report_augmentation.png")
    assert os.path.exists(tmp_path / "report_memorization_pairs.png")


def test_measure_downstream_script_quick(runs, tmp_path):
    """scripts/measure_downstream.py (the docs' numbers come from it) end to end at --quick counts: JSON with
    every row the docs quote, both figures per run, the markdown tables; a run folder that is not one is one line."""
    script = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "measure_downstream.py")
    out, figures = tmp_path / "downstream.json", tmp_path / "figures"  # made by the script
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, script, runs["conditional"], runs["unconditional"], "--quick", "--reference",
                        "--nn-timing", "--out", str(out), "--figures", str(figures)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [x["conditional"] for x in result["runs"]] == [True, False]
    for x, name in zip(result["runs"], ("cond", "uncond")):
        assert x["cas"]["n_train"] == 100 and 0 <= x["cas"]["accuracy"] <= 1 and "baseline_accuracy" in x["cas"]
        assert sorted(x["augmentation"]["sizes"], key=int) == ["2", "5"] and x["augmentation"]["seeds"] == [0, 1]
        assert x["memorization"]["n_generated"] == 100 and x["memorization"]["n_train"] == 2000
        assert (figures / f"augmentation_{name}.png").stat().st_size > 1000
        assert (figures / f"memorization_{name}.png").stat().st_size > 1000
    assert result["runs"][1]["cas"]["labels_from"] != result["runs"][0]["cas"]["labels_from"]
    ref = result["reference"]
    assert ref["cas_true_labels"]["accuracy"] > ref["cas_shuffled_labels"]["accuracy"]
    assert ref["memorization_real_test"]["n_generated"] == 5000
    assert {(t["features"], t["search_dtype"]) for t in result["nn_timing"]} == {
        (f, d) for f in ("pixels", "classifier") for d in ("float32", "float64")}
    assert all(t["queries"] == 500 and t["refs"] == 3000 and t["seconds"] >= 0 for t in result["nn_timing"])
    for row in (r"^\| CAS \| 0\.\d{4} \| 100 generated", r"^\| 2 \| 0\.\d{4} ± 0\.\d{4} \| ",
                r"^\| authenticity of real test images \| ", r"^nearest neighbours, 500 among 3000, classifier"):
        assert re.search(row, r.stdout, re.MULTILINE), row
    bad = subprocess.run([sys.executable, script, str(tmp_path / "no_such_run"), "--quick"], capture_output=True,
                         text=True, env=env, timeout=120)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and len(lines) == 1, bad.stderr[-2000:]
    assert "no_such_run" in lines[0]
