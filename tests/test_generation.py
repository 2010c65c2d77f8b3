"""The generation commands end to end on tiny run folders: sample, latent-walk,
export, anomaly, adapt; the domain classifier; clear errors on bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from wgan_fast import data, errors, run_folder, train
from wgan_fast.commands import adapt, anomaly, export, latent_walk, sample
from wgan_fast import classifier as clf
from wgan_fast.runlog import grid_image

from helpers import TinyImages, tiny_cfg, write_idx  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An unconditional and a conditional tiny Fashion-MNIST-shaped run (random data, 3 steps)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, conditional in (("uncond", False), ("cond", True)):
        cfg = tiny_cfg(root, dataset="fashion-mnist", name=name, conditional=conditional)
        out[name] = train.train(cfg, data=TinyImages()).run_dir
    return out


def png(path):
    return np.asarray(Image.open(path).convert("L"))


# ---- the domain classifier ---------------------------------------------------------

@pytest.mark.skipif(not os.path.exists(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")),
                    reason=f"Fashion-MNIST test set not in {FASHION} (Debian dataset-fashion-mnist): accuracy "
                           "of the committed classifier not checked")
def test_committed_classifier_reaches_90_percent_on_the_fashion_mnist_test_set():
    model = clf.load_classifier("fashion-mnist", "cpu")
    images, y = clf.load_split("fashion-mnist", train=False)
    x, y = clf.to_unit_range(images), torch.from_numpy(y)
    assert len(x) == 10000
    acc = clf.accuracy(model, x, y)
    # at 32 px, resized as the trainer resizes its data, it sees the same garments
    x32 = data.to_resolution(images, 32, 1).float() / 127.5 - 1
    acc32 = clf.accuracy(model, x32, y)
    print(f"Fashion-MNIST test accuracy of the committed classifier: {acc:.4f} (at 32 px: {acc32:.4f})")
    assert acc >= 0.90 and acc32 >= 0.90


def test_classifier_inputs_and_weights_file(tmp_path, monkeypatch):
    model = clf.load_classifier("fashion-mnist", "cpu")
    gray = torch.rand(5, 1, 32, 32) * 2 - 1
    logits, feats = model(gray), model.features(gray)
    assert logits.shape == (5, 10) and feats.shape == (5, clf.FEATURES)
    torch.testing.assert_close(model(gray.repeat(1, 3, 1, 1)), logits)  # RGB with equal channels == gray
    assert os.path.getsize(clf.weights_path("fashion-mnist")) < 5 * 2 ** 20
    with pytest.raises(errors.UsageError, match="no domain classifier for dataset 'cifar10'"):
        clf.load_classifier("cifar10")
    with pytest.raises(ValueError, match="expected images"):
        model(torch.zeros(2, 2, 28, 28))
    # a damaged weights file is refused by its sha256
    damaged = tmp_path / "fashion_mnist.pt"
    damaged.write_bytes(open(clf.weights_path("fashion-mnist"), "rb").read()[:-10] + b"0123456789")
    monkeypatch.setattr(clf, "weights_path", lambda dataset: str(damaged))
    with pytest.raises(ValueError, match="sha256 .* does not match weights.json"):
        clf.load_classifier("fashion-mnist")
    monkeypatch.setattr(clf, "weights_path", lambda dataset: str(tmp_path / "absent.pt"))
    with pytest.raises(FileNotFoundError, match="absent.pt is missing.*classifier.train --dataset fashion-mnist"):
        clf.load_classifier("fashion-mnist")


def test_classifier_train_script_on_a_tiny_mnist(tmp_path, monkeypatch, capsys):
    from wgan_fast.classifier import train as clf_train

    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), False)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), False)
    manifest, weights = str(tmp_path / "weights.json"), lambda dataset: str(tmp_path / f"{dataset}.pt")
    for module in (clf, clf_train):  # write beside the test, not into the package
        monkeypatch.setattr(module, "MANIFEST", manifest)
        monkeypatch.setattr(module, "weights_path", weights)
    args = ["--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1", "--batch-size", "16"]
    assert clf_train.main(args + ["--min-accuracy", "1.01"]) == 8  # random labels: refused, nothing saved
    assert "weights not saved" in capsys.readouterr().err and not os.path.exists(manifest)
    assert clf_train.main(args + ["--min-accuracy", "0"]) == 0
    entry = json.load(open(manifest))["mnist"]
    assert entry["trained_with"]["epochs"] == 1 and 0 <= entry["test_accuracy"] <= 1
    assert clf.load_classifier("mnist")(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # sha256 matches
    monkeypatch.delenv("WGAN_FAST_DATA", raising=False)
    assert clf_train.main(["--dataset", "mnist"]) == 4  # MNIST needs --data-dir: a data error
    assert "mnist: pass --data-dir" in capsys.readouterr().err


# ---- sample -------------------------------------------------------------------------

def test_sample_grid_is_the_generators_images(runs, tmp_path):
    out = tmp_path / "g.png"
    assert sample.main(["--run", runs["uncond"], "--n", "6", "--nrow", "3", "--out", str(out)]) == 0
    run = run_folder.load_run(runs["uncond"])
    want = np.asarray(grid_image(run_folder.generate(run, 6, seed=0)[0], nrow=3).convert("L"))
    assert png(out).shape == (2 * 30 + 2, 3 * 30 + 2) and np.array_equal(png(out), want)
    assert sample.main(["--run", runs["uncond"], "--n", "6", "--nrow", "3", "--out", str(out), "--seed", "1"]) == 0
    assert not np.array_equal(png(out), want)  # another seed, other samples


def test_sample_one_class_of_a_conditional_run(runs, tmp_path):
    out = tmp_path / "c3.png"
    assert sample.main(["--run", runs["cond"], "--n", "4", "--class", "3", "--out", str(out)]) == 0
    run = run_folder.load_run(runs["cond"])
    for k, same in ((3, True), (4, False)):
        want = grid_image(run_folder.generate(run, 4, labels=torch.full((4,), k), seed=0)[0], nrow=2)
        assert np.array_equal(png(out), np.asarray(want.convert("L"))) == same


def test_sample_refuses_bad_classes(runs, tmp_path, capsys):
    assert sample.main(["--run", runs["uncond"], "--class", "2", "--out", str(tmp_path / "x.png")]) == 2
    assert "not a conditional run" in capsys.readouterr().err
    assert sample.main(["--run", runs["cond"], "--class", "10", "--out", str(tmp_path / "x.png")]) == 2
    assert "classes 0..9" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.png")


def test_sample_command_line(runs, tmp_path):
    out = tmp_path / "cli.png"
    r = subprocess.run([sys.executable, "-m", "wgan_fast", "sample", "--run", runs["cond"], "--n", "20", "--out",
                        str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert png(out).shape == (2 * 30 + 2, 10 * 30 + 2)  # one column per class


# ---- bad run folders ----------------------------------------------------------------

def test_bad_run_folders_get_clear_messages(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sample.main(["--run", str(empty)]) == 6  # a checkpoint error
    assert "no ckpt_*.pt files: was it trained?" in capsys.readouterr().err
    assert latent_walk.main(["--run", str(tmp_path / "nope")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    # a checkpoint whose config names another architecture than its weights
    state = torch.load(run_folder.load_run(runs["uncond"]).ckpt_path, weights_only=True)
    state["config"] = dict(state["config"], g_base=16)
    other = tmp_path / "other"
    other.mkdir()
    torch.save(state, other / "ckpt_00000003.pt")
    assert export.main(["--run", str(other), "--n", "10", "--out", str(tmp_path / "e")]) == 6
    assert "the G weights do not fit the architecture" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "e")


# ---- latent-walk ---------------------------------------------------------------------

def test_lerp_and_slerp_paths():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    t = torch.linspace(0, 1, 5)
    for fn in (latent_walk.lerp, latent_walk.slerp):
        p = fn(a, b, t)
        assert p.shape == (1, 5, 2)
        assert torch.equal(p[0, 0], a[0]) and torch.equal(p[0, -1], b[0])  # exact endpoints
    torch.testing.assert_close(latent_walk.slerp(a, b, t).norm(dim=-1), torch.full((1, 5), 3.0))  # on the arc
    torch.testing.assert_close(latent_walk.lerp(a, b, t)[0, 2], torch.tensor([1.5, 1.5]))
    torch.testing.assert_close(latent_walk.slerp(a, a, t)[0], a.expand(5, 2))  # parallel: no NaN


def test_latent_walk_writes_grids_and_gifs_per_class(runs, tmp_path):
    assert latent_walk.main(["--run", runs["cond"], "--steps", "5", "--out-dir", str(tmp_path)]) == 0
    lerp, slerp = png(tmp_path / "lerp.png"), png(tmp_path / "slerp.png")
    assert lerp.shape == (10 * 30 + 2, 5 * 30 + 2)  # one path per class, 5 steps
    # the paths share their endpoints and differ in between
    cols = lambda img, j: img[:, 2 + 30 * j: 30 * (j + 1)]  # noqa: E731
    assert np.array_equal(cols(lerp, 0), cols(slerp, 0)) and np.array_equal(cols(lerp, 4), cols(slerp, 4))
    assert not np.array_equal(cols(lerp, 2), cols(slerp, 2))
    with Image.open(tmp_path / "slerp.gif") as gif:
        assert gif.n_frames == 8  # there (5) and back (3)


# ---- export -------------------------------------------------------------------------

def test_export_per_class_folder_and_npz(runs, tmp_path):
    folder = tmp_path / "syn"
    assert export.main(["--run", runs["cond"], "--n", "20", "--per-class", "--out", str(folder)]) == 0
    classes = sorted(os.listdir(folder))
    assert classes == [str(k) for k in range(10)] + ["export.json"]
    assert all(len(os.listdir(folder / str(k))) == 2 for k in range(10))
    info = json.load(open(folder / "export.json"))
    assert info["counts"] == [2] * 10 and info["step"] == 3 and 0 <= info["classifier_agreement"] <= 1
    # the files are the generator's images of their class
    run = run_folder.load_run(runs["cond"])
    z = torch.randn(20, run.z_dim, generator=torch.Generator().manual_seed(0))
    x, _ = run_folder.generate(run, 20, labels=torch.arange(20) // 2, z=z)
    first_of_class_3 = sorted(os.listdir(folder / "3"))[0]
    assert np.array_equal(png(folder / "3" / first_of_class_3), export.to_uint8(x[6])[0].numpy())
    npz = tmp_path / "syn.npz"
    assert export.main(["--run", runs["cond"], "--n", "20", "--per-class", "--out", str(npz)]) == 0
    with np.load(npz) as f:
        assert f["images"].shape == (20, 28, 28) and f["images"].dtype == np.uint8
        assert np.bincount(f["labels"], minlength=10).tolist() == [2] * 10
        assert json.loads(str(f["info"]))["n"] == 20
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporaries left


def test_export_unconditional_balances_by_classifier():
    class ByPixel(torch.nn.Module):  # a stand-in classifier: the class is the brightest of 10 pixels
        def features(self, x):
            return x.flatten(1)[:, 300:310]

        def head(self, f):
            return f

        def parameters(self):
            return iter([torch.zeros(1)])

    def lit_pixel(z, y=None):  # a stand-in generator: pixel 300 + argmax(z) lit, the rest dark
        x = -torch.ones(len(z), 784)
        x[torch.arange(len(z)), 300 + z.argmax(1)] = 1
        return x.view(-1, 1, 28, 28)

    class Run:
        num_classes, z_dim, run_dir, device = 0, 10, "r", torch.device("cpu")
        G_ema = G = staticmethod(lit_pixel)

    x, y, info = export.synthesize(Run(), 30, per_class=True, classifier=ByPixel(), batch_size=16)
    assert x.shape == (30, 1, 28, 28) and np.bincount(y.numpy(), minlength=10).tolist() == [3] * 10
    pred = ByPixel().features(x.float() / 127.5 - 1).argmax(1)
    assert torch.equal(pred, y)  # every image is of its label's class
    assert info["samples_drawn"] >= 30
    Run.G_ema = staticmethod(lambda z, y: torch.zeros(len(z), 1, 28, 28))  # one class only
    # 9 classes never come: it gives up once their rate (< 1 in the draws so far) cannot fill them
    # within the limit of 50 n = 5000 draws: after 512, not 5000
    with pytest.raises(ValueError, match=r"after 512 samples .* need ~5120 samples, the limit is 5000"):
        export.synthesize(Run(), 100, per_class=True, classifier=ByPixel(), batch_size=16)


def test_export_is_atomic_and_refuses_to_overwrite(runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "syn"

    def crash(path, images, labels, classes):  # a failure half way through writing
        os.makedirs(os.path.join(path, "0"))
        open(os.path.join(path, "0", "000000.png"), "wb").close()
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_folder", crash)
    with pytest.raises(OSError, match="disk full"):
        export.main(["--run", runs["uncond"], "--n", "10", "--out", str(out)])
    assert os.listdir(tmp_path) == []  # neither the final name nor a temporary
    monkeypatch.undo()
    assert export.main(["--run", runs["uncond"], "--n", "10", "--out", str(out)]) == 0
    assert export.main(["--run", runs["uncond"], "--n", "10", "--out", str(out)]) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert export.main(["--run", runs["uncond"], "--n", "10", "--out", str(out), "--overwrite", "--seed", "1"]) == 0
    assert json.load(open(out / "export.json"))["seed"] == 1 and sorted(os.listdir(tmp_path)) == ["syn"]
    assert export.main(["--run", runs["cond"], "--n", "15", "--per-class", "--out", str(tmp_path / "x")]) == 2
    assert "not a multiple of the 10 classes" in capsys.readouterr().err


# ---- anomaly ------------------------------------------------------------------------

def _write_pngs(folder, images):
    os.makedirs(folder, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(os.path.join(folder, f"{i:03d}.png"))


def test_anomaly_ranks_by_the_critic_and_reports_roc_auc(runs, tmp_path, capsys):
    rng = np.random.default_rng(0)
    _write_pngs(tmp_path / "a", rng.integers(0, 256, (7, 28, 28), dtype=np.uint8))
    _write_pngs(tmp_path / "ref", rng.integers(0, 60, (5, 40, 40), dtype=np.uint8))  # other size: resized
    csv_path = tmp_path / "scores.csv"
    rc = anomaly.main(["--run", runs["cond"], "--images", str(tmp_path / "a"), "--reference", str(tmp_path / "ref"),
                       "--out", str(csv_path)])
    assert rc == 0
    run = run_folder.load_run(runs["cond"])
    x, paths = anomaly.read_images(str(tmp_path / "a"), run)
    with torch.no_grad():  # -mean_y D(x, y), by hand
        want = -sum(run.D(x, torch.full((7,), k)) for k in range(10)).numpy() / 10
    rows = [line.split(",") for line in open(csv_path).read().splitlines()[1:]]
    assert [os.path.basename(r[1]) for r in rows] == [os.path.basename(paths[i]) for i in np.argsort(-want)]
    np.testing.assert_allclose([float(r[2]) for r in rows], np.sort(want)[::-1], rtol=1e-4, atol=1e-5)
    ref = anomaly.anomaly_scores(run, anomaly.read_images(str(tmp_path / "ref"), run)[0])
    pairs = (want[:, None] > ref[None, :]).mean() + 0.5 * (want[:, None] == ref[None, :]).mean()
    assert f"ROC-AUC, 7 --images against 5 --reference images: {pairs:.4f}" in capsys.readouterr().out


def test_anomaly_refuses_an_empty_folder(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert anomaly.main(["--run", runs["uncond"], "--images", str(tmp_path / "empty")]) == 4  # a data error
    assert "no image files" in capsys.readouterr().err


# ---- adapt --------------------------------------------------------------------------

def test_best_cosine_and_latent_fit():
    fake, real = torch.randn(7, 5), torch.randn(11, 5)
    brute = torch.tensor([max(torch.nn.functional.cosine_similarity(f, r, dim=0) for r in real) for f in fake])
    torch.testing.assert_close(adapt.best_cosine(fake, real, batch_size=3), brute)
    z = torch.arange(8.0).view(8, 1).repeat(1, 2)  # latent i = (i, i)
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    scores = torch.tensor([0.1, 0.9, 0.8, 0.2, 0.5, 0.6, 0.7, 0.4])
    fits = adapt.fit_latents(z, classes, scores, keep=0.5)
    torch.testing.assert_close(fits[0]["mu"], torch.tensor([1.5, 1.5]))  # latents 1 and 2 scored highest
    torch.testing.assert_close(fits[1]["mu"], torch.tensor([5.5, 5.5]))  # latents 5 and 6
    assert fits[0]["kept"] == 2 and fits[0]["candidates"] == 4
    torch.testing.assert_close(fits[0]["sigma"], torch.full((2,), 0.5 ** 0.5))
    assert adapt.fit_latents(z, classes, scores, keep=0.5, min_kept=3) == {}  # 2 kept per class: too few
    mu, sigma = torch.tensor([[0.0, 0.0], [10.0, -10.0]]), torch.tensor([[1.0, 1.0], [0.5, 2.0]])
    z, which = adapt.sample_latents(mu, sigma, torch.tensor([0.25, 0.75]), 20000, torch.Generator().manual_seed(0))
    assert abs(which.float().mean().item() - 0.75) < 0.02
    torch.testing.assert_close(z[which == 1].mean(0), mu[1], atol=0.05, rtol=0)
    torch.testing.assert_close(z[which == 1].std(0), sigma[1], atol=0.05, rtol=0)


@pytest.fixture(scope="module")
def tiny_fashion(tmp_path_factory):
    """A tiny Fashion-MNIST-format folder (random images): 200 train, 50 test."""
    root = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("t10k", 50)):
        write_idx(root / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), False)
        write_idx(root / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), False)
    return str(root)


@pytest.mark.filterwarnings("ignore:FID from .* biased upward")
@pytest.mark.parametrize("name", ["uncond", "cond"])
def test_adapt_end_to_end(runs, tiny_fashion, tmp_path, name, capsys, monkeypatch):
    monkeypatch.setenv("WGAN_FAST_CACHE", str(tmp_path / "cache"))  # the reference features of the tiny set
    rc = adapt.main(["--run", runs[name], "--data-dir", tiny_fashion, "--candidates", "300", "--n-eval", "40",
                     "--n-real", "50", "--out-dir", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    report = json.load(open(tmp_path / "adapt.json"))
    assert report["features"] == "classifier" and report["n_candidates"] == 300
    for when in ("before", "after"):
        r = report[when]
        assert r["n_fake"] == 40 and r["n_real"] == 50 and r["fid"] >= 0
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and ("class_acc" in r) == (name == "cond")
    fitted = report["classes_fitted"]
    assert fitted and sorted(fitted + report["classes_missing"]) == list(range(10))
    for k, c in report["per_class"].items():  # the top half of each class's candidates
        assert c["kept"] >= c["candidates"] // 2 and c["kept"] <= c["candidates"]
    latents = torch.load(tmp_path / "latents.pt", weights_only=True)
    assert latents["mu"].shape == (len(fitted), 16) and (latents["sigma"] >= 0).all()
    torch.testing.assert_close(latents["prior"].sum(), torch.tensor(1.0))
    assert "FID" in capsys.readouterr().out and os.path.exists(tmp_path / "after.png")


def test_adapt_needs_a_classifier_for_the_dataset(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, dataset="cifar10", channels=3, resolution=32)
    run_dir = train.train(cfg, data=TinyImages((3, 32, 32))).run_dir
    assert adapt.main(["--run", run_dir]) == 2
    assert "no domain classifier for dataset 'cifar10'" in capsys.readouterr().err


def test_atomic_files_get_the_usual_mode(tmp_path):
    """A file written through atomic_path has open()'s mode under the umask, not mkstemp's private 0600."""
    from wgan_fast.atomic import write_text

    old = os.umask(0o022)
    try:
        write_text(str(tmp_path / "config.json"), "{}")
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "config.json").st_mode & 0o777) == (os.stat(tmp_path / "plain.json").st_mode & 0o777) == 0o644
