"""The Inception features, the Evaluator and `wgan-fast evaluate`.

The network runs ~10 images/s on a 2-core CPU, so every test here feeds it a
handful of images; the metric math itself is tested in test_metrics.py.
"""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wgan_fast import config, errors, metrics, run_folder, train
from wgan_fast.commands import evaluate
from wgan_fast.data import fashion_mnist_root, idx
from wgan_fast.errors import MissingDependency
from wgan_fast.metrics import inception, reference

try:  # the tiny-run pattern of test_train.py (moving to helpers.py)
    from helpers import TinyImages
except ImportError:
    from test_train import TinyImages

# tiny sample counts everywhere: the small-count FID warning is checked where it matters, silenced elsewhere
pytestmark = pytest.mark.filterwarnings("ignore:FID from .* samples:RuntimeWarning")

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.exists(FASHION), reason=f"Fashion-MNIST IDX files not in {FASHION}")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread (torch and BLAS) here: on a CPU shared with other jobs, a 2-thread forward stalls
    at each of the network's ~300 barriers (4.5 s a call measured, against 0.16 s an image with one
    thread); torch-fidelity's 2048 x 2048 eigvals likewise."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net():
    return metrics.InceptionFeatures(device="cpu", batch_size=4)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WGAN_FAST_CACHE", str(tmp_path / "cache"))


def uint8_images(n, channels=3, size=32, seed=0):
    """Smooth random images (blurred noise), more image-like than white noise."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, channels, 6, 6, generator=g), size=(size, size), mode="bicubic",
                      align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


# ---- the network and its input convention ---------------------------------------------------

def test_default_weights_are_the_hash_checked_torchscript(net):
    assert os.path.basename(net.path) == "default_1.pt"
    assert net.sha256 == inception.FID_HELPER_SHA256 == inception.sha256_of(net.path)
    assert not net.has_logits and net.tag.startswith("inception-2015-12-05-7ff4a85c")


def test_uint8_float_grayscale_and_batching_conventions(net):
    rgb, gray = uint8_images(2, 3, seed=1), uint8_images(1, 1, seed=2)
    f = net(torch.cat([rgb, gray.expand(-1, 3, -1, -1)]))
    assert f.shape == (3, 2048) and f.dtype == np.float64 and np.isfinite(f).all()
    # float images in [-1, 1] are the same 8-bit levels: u/127.5 - 1 quantises back to u exactly
    np.testing.assert_allclose(net(rgb.float() / 127.5 - 1), f[:2], rtol=0, atol=1e-5)
    # one channel is repeated to three
    np.testing.assert_allclose(net(gray), f[2:], rtol=0, atol=1e-5)
    # the batch size does not change the features (3 images in batches of 4 above, of 1 here)
    one_by_one = metrics.InceptionFeatures(device="cpu", batch_size=1)
    np.testing.assert_allclose(one_by_one(rgb[1:]), f[1:2], rtol=0, atol=1e-4)
    assert np.abs(f[0] - f[1]).max() > 1e-2  # different images, different features


def bilinear_half_pixel(img, out):
    """Independent reference of pytorch-fid's resize: bilinear, pixel centres at
    (i + 0.5) * in/out - 0.5, clamped at the borders, no antialiasing."""
    n = img.shape[0]
    src = np.clip((np.arange(out) + 0.5) * n / out - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = src - lo
    rows = img[lo] * (1 - w)[:, None] + img[hi] * w[:, None]
    return rows[:, lo] * (1 - w)[None, :] + rows[:, hi] * w[None, :]


def test_resize_and_scaling_convention():
    levels = uint8_images(1, 1, size=28, seed=3).float()
    x = inception.network_input(levels)
    assert x.shape == (1, 3, 299, 299)
    expected = (bilinear_half_pixel(levels[0, 0].double().numpy(), 299) - 128) / 128
    np.testing.assert_allclose(x[0, 0].double().numpy(), expected, rtol=0, atol=1e-5)
    assert torch.equal(x[0, 0], x[0, 2])
    full = uint8_images(1, 3, size=299, seed=4).float()
    assert torch.equal(inception.network_input(full), (full - 128) / 128)  # no resize at 299: the TF scaling only


@pytest.mark.parametrize("images,match", [
    (torch.full((2, 3, 8, 8), 2.0), r"float images must lie in \[-1, 1\]"),
    (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
    (torch.zeros(2, 2, 8, 8), r"expected images \(N, 1 or 3, H, W\)"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8"),
    (torch.zeros(0, 3, 8, 8), "no images"),
])
def test_bad_images_are_refused(net, images, match):
    with pytest.raises(ValueError, match=match):
        net(images)


def test_weights_with_a_wrong_hash_are_refused(tmp_path):
    bad = tmp_path / "inception.pt"
    bad.write_bytes(b"not the network")
    with pytest.raises(ValueError, match="is not that of a known Inception-2015-12-05"):
        metrics.InceptionFeatures(str(bad), device="cpu")
    with pytest.raises(ValueError, match="expected 00ff"):
        metrics.InceptionFeatures(str(bad), device="cpu", sha256="00ff")
    with pytest.raises(errors.UsageError, match="weights file not found"):
        metrics.InceptionFeatures(str(tmp_path / "missing.pt"), device="cpu")


def test_without_fid_helper_the_pytorch_fid_download_is_tried_and_its_failure_explained(monkeypatch, tmp_path):
    tried = []

    def offline(url, dst, hash_prefix=None, progress=True):
        tried.append((url, dst, hash_prefix))
        raise OSError("network unreachable")

    monkeypatch.setattr(inception, "fid_helper_weights", lambda: None)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MissingDependency, match=r"no Inception weights: .*network unreachable.*'wgan_fast\[eval\]'"):
        metrics.InceptionFeatures(device="cpu")
    url, dst, prefix = tried[0]
    assert url == inception.PYTORCH_FID_URL and prefix == "6726825d"
    assert dst == str(tmp_path / "cache" / "weights" / "pt_inception-2015-12-05-6726825d.pth")


# ---- parity with torch-fidelity: its network, resize, features and metric code ------------------

@pytest.fixture(scope="module")
def torch_fidelity_weights(tmp_path_factory, net):
    """Our TorchScript's weights in torch-fidelity's InceptionV3 layout (+ a random fc for logits)."""
    ours = torch.jit.load(net.path).state_dict()  # the TorchScript file itself (net.net is its rebuilt form)
    convs = [k[: -len(".weight")] for k in ours if k.endswith(".weight")]
    theirs = {}
    blocks = [n for n, _ in _torch_fidelity_blocks()]
    assert len(blocks) == len(convs) == 94  # same layers, same order (checked by the outputs below)
    for ours_name, name in zip(convs, blocks):
        w = ours[ours_name + ".weight"]
        theirs[name + ".conv.weight"] = w
        theirs[name + ".bn.weight"] = torch.ones(w.shape[0])  # the TF graph's BN has no scale
        theirs[name + ".bn.bias"] = ours[ours_name + ".beta"]
        theirs[name + ".bn.running_mean"] = ours[ours_name + ".mean"]
        theirs[name + ".bn.running_var"] = ours[ours_name + ".var"]
        theirs[name + ".bn.num_batches_tracked"] = torch.tensor(0)
    g = torch.Generator().manual_seed(0)
    theirs["fc.weight"] = torch.randn(1008, 2048, generator=g) * 0.05
    theirs["fc.bias"] = torch.zeros(1008)
    path = tmp_path_factory.mktemp("tf") / "inception_as_torch_fidelity.pth"
    torch.save(theirs, path)
    return str(path)


def _torch_fidelity_blocks():
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):  # the architecture alone, to list its layers
        def load_state_dict(self, state_dict, strict=True):
            return None

    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    saved, tf_inception.load_state_dict_from_url = tf_inception.load_state_dict_from_url, lambda *a, **k: None
    try:
        model = Unloaded("skeleton", ["2048"])
    finally:
        tf_inception.load_state_dict_from_url = saved
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BasicConv2d)]


class Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_fid_kid_pr_equal_torch_fidelity_on_the_same_images_and_weights(net, torch_fidelity_weights):
    import torch_fidelity

    # 299 px: torch-fidelity resizes like TF1, we like pytorch-fid; at the network's size neither resizes
    real, fake = uint8_images(4, size=299, seed=5), uint8_images(4, size=299, seed=6)
    fake[:2] = real[:2]  # partly overlapping sets
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), fid=True, kid=True, prc=True, cuda=False, cache=False,
        verbose=False, feature_extractor="inception-v3-compat", feature_extractor_weights_path=torch_fidelity_weights,
        kid_subsets=2, kid_subset_size=4, batch_size=4, save_cpu_ram=True)  # save_cpu_ram: no loader workers
    f_real, f_fake = net(real), net(fake)
    with pytest.warns(RuntimeWarning, match="biased upward"):
        fid = metrics.fid_from_features(f_real, f_fake)
    assert fid == pytest.approx(theirs["frechet_inception_distance"], rel=1e-3)
    # subsets as large as the sets: the same MMD whichever rows each library draws
    kid, _ = metrics.kid_from_features(f_real, f_fake, subsets=2, subset_size=4)
    assert kid == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-3)
    precision, recall = metrics.precision_recall(f_real, f_fake, k=3)
    assert (precision, recall) == pytest.approx((theirs["precision"], theirs["recall"]), rel=1e-3)
    assert fid > 1 and abs(kid) > 1e-3  # the sets differ: a real comparison, not 0 == 0

    # the same weights as a state dict: refused by hash unless named, then the same features, and logits
    digest = inception.sha256_of(torch_fidelity_weights)
    with pytest.raises(ValueError, match="not that of a known"):
        metrics.InceptionFeatures(torch_fidelity_weights, device="cpu")
    with_logits = metrics.InceptionFeatures(torch_fidelity_weights, device="cpu", sha256=digest)
    f, logits = with_logits.features_and_logits(real[2:])
    np.testing.assert_allclose(f, f_real[2:], rtol=0, atol=1e-4)
    # logits_unbiased: pool3 @ fc.weight^T, no bias (the original IS code)
    fc = torch.load(torch_fidelity_weights)["fc.weight"].double().numpy()
    np.testing.assert_allclose(logits, f @ fc.T, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="has no logits"):
        net.features_and_logits(real[:1])


# ---- the Evaluator and its reference cache ----------------------------------------------------

def fashion_cfg(**kw):
    base = dict(dataset="fashion-mnist", resolution=28, channels=1, model="dcgan")
    base.update(kw)
    return config.resolve({k: str(v) for k, v in base.items()})


class MeanPixels:
    """A stand-in feature network (mean and std of each image) that counts its images."""
    tag = "mean-pixels"

    def __init__(self):
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        x = images.double().flatten(1)
        return torch.stack([x.mean(1), x.std(1)], 1).numpy()


@needs_fashion
def test_reference_is_computed_once_then_read_from_the_cache(tmp_path):
    cfg, counter = fashion_cfg(), MeanPixels()
    real, path = reference.reference_features(cfg, "test", 6, counter, counter.tag)
    assert os.path.basename(path) == "fashion-mnist-test-28px-1ch-n6-mean-pixels.npz"
    assert path.startswith(str(tmp_path / "cache" / "reference")) and counter.seen == 6
    # the reference images: 6 test images chosen by the fixed seed, unchanged at the native 28 px
    test_images = idx.load_split(fashion_mnist_root(""), train=False)[0]
    chosen = np.sort(np.random.RandomState(reference.SUBSET_SEED).choice(len(test_images), 6, replace=False))
    images = reference.real_images(cfg, "test", 6)
    assert torch.equal(images[:, 0], torch.from_numpy(test_images[chosen]))
    np.testing.assert_allclose(real, counter(images), rtol=1e-7)  # kept as float32
    counter.seen = 0
    again, _ = reference.reference_features(cfg, "test", 6, counter, counter.tag)
    assert counter.seen == 0 and np.array_equal(again, real)
    # the same dataset found through --data-dir: the same reference, from the cache
    assert reference.reference_features(fashion_cfg(data_dir=FASHION), "test", 6, counter, counter.tag)[1] == path
    assert counter.seen == 0
    # other settings, another file
    assert reference.reference_features(fashion_cfg(resolution=32), "test", 6, counter, counter.tag)[1] != path
    # a truncated cache file is reported and recomputed
    with open(path, "r+b") as f:
        f.truncate(100)
    counter.seen = 0
    with pytest.warns(RuntimeWarning, match="unreadable"):
        recomputed, _ = reference.reference_features(cfg, "test", 6, counter, counter.tag)
    assert counter.seen == 6 and np.array_equal(recomputed, real)


@needs_fashion
def test_score_equals_the_metrics_of_the_features(net, monkeypatch):
    cfg = fashion_cfg()
    ev = metrics.Evaluator(cfg, "cpu", metrics=("fid", "kid", "pr"), n_real=4, kid_subsets=2)
    monkeypatch.setattr(ev, "reference", lambda: real)  # scoring alone; the reference path is tested above
    real = np.random.default_rng(0).normal(size=(4, 2048))
    fake = torch.rand(4, 1, 28, 28) * 2 - 1
    with pytest.warns(RuntimeWarning, match="FID from 4 real and 4 generated"):
        got = ev.score(lambda n: (fake[:n], None), 4)
    f_fake = net(fake)
    assert got["fid"] == pytest.approx(metrics.fid_from_features(real, f_fake), rel=1e-6)
    assert (got["kid"], got["kid_std"]) == pytest.approx(metrics.kid_from_features(real, f_fake, subsets=2,
                                                                                   subset_size=4), rel=1e-6)
    assert (got["precision"], got["recall"]) == metrics.precision_recall(real, f_fake)
    assert got["n_fake"] == got["n_real"] == got["kid_subset_size"] == 4


@needs_fashion
def test_inception_score_wiring(torch_fidelity_weights, monkeypatch):
    digest = inception.sha256_of(torch_fidelity_weights)  # weights with logits: "is" is allowed
    ev = metrics.Evaluator(fashion_cfg(), "cpu", metrics=("fid", "is"), n_real=4, weights=torch_fidelity_weights,
                           weights_sha256=digest)
    rng = np.random.default_rng(1)
    real, feats, class_logits = rng.normal(size=(4, 2048)), rng.normal(size=(6, 2048)), rng.normal(size=(6, 1008))
    # stand-ins for the network: this tests the wiring (the network is tested above)
    monkeypatch.setattr(ev, "reference", lambda: real)
    monkeypatch.setattr(ev.inception, "features_and_logits", lambda images, logits=True: (feats, class_logits))
    with pytest.warns(RuntimeWarning, match="biased"):
        got = ev.score(torch.zeros(6, 1, 28, 28), 6)
    assert (got["is"], got["is_std"]) == metrics.inception_score(class_logits, splits=6)
    assert got["fid"] == pytest.approx(metrics.fid_from_features(real, feats))


@needs_fashion
def test_evaluator_refuses_bad_requests(tmp_path):
    cfg = fashion_cfg()
    with pytest.raises(ValueError, match="unknown 'fd'"):
        metrics.Evaluator(cfg, "cpu", metrics=("fd",))
    with pytest.raises(ValueError, match="Inception Score needs a network with logits"):
        metrics.Evaluator(cfg, "cpu", metrics=("is",))
    with pytest.raises(ValueError, match="2-D toy"):
        metrics.Evaluator(config.resolve({"dataset": "toy-moons", "model": "mlp"}), "cpu")
    ev = metrics.Evaluator(cfg, "cpu", n_real=20000)
    with pytest.raises(ValueError, match="n_real=20000 but the fashion-mnist test split has only 10000 images"):
        ev.reference()
    with pytest.raises(ValueError, match=r"generated images have shape \(4, 3, 32, 32\), the run's real images are "
                                         r"\(N, 1, 28, 28\)"):
        ev.score(torch.zeros(4, 3, 32, 32), 4)
    with pytest.raises(ValueError, match="asked to score n=8 images but got 4"):
        ev.score(torch.zeros(4, 1, 28, 28), 8)


def test_image_folder_without_images_and_without_test_split(tmp_path):
    empty = tmp_path / "images"
    empty.mkdir()
    cfg = config.resolve({"dataset": "folder", "data_dir": str(empty), "resolution": "32", "channels": "3"})
    with pytest.warns(RuntimeWarning, match="folder has no test split here"):
        ev = metrics.Evaluator(cfg, "cpu", n_real=4)
    assert ev.split == "train"
    with pytest.raises(ValueError, match="no image files"):
        ev.reference()


def test_image_folder_reference_is_cached_per_crop(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # wide images: the centre crop and the whole-image resize give other pixels
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    counter = MeanPixels()
    cfgs = [config.resolve({"dataset": "folder", "data_dir": str(folder), "resolution": "28", "channels": "3",
                            "crop": crop}) for crop in ("center", "none")]
    with pytest.warns(RuntimeWarning, match="no test split"):
        (center, p_center), (whole, p_whole) = [reference.reference_features(c, "test", 4, counter, counter.tag)
                                                for c in cfgs]
    assert p_center != p_whole and counter.seen == 8  # each computed, neither read from the other's file
    assert "-center-bilinear-aa-" in os.path.basename(p_center) and not np.allclose(center, whole)


# ---- the command ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A conditional DCGAN trained 2 steps on 28 px 'Fashion-MNIST' (random images; the real split is the reference)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = config.resolve(dict(dataset="fashion-mnist", model="dcgan", resolution="28", channels="1", z_dim="16",
                              g_base="8", d_base="8", batch_size="8", steps="2", n_critic="1", log_every="1",
                              sample_every="2", ckpt_every="2", n_samples="4", out_dir=str(out),
                              tensorboard="false", name="tiny", conditional="true"))
    return train.train(cfg, data=TinyImages((1, 28, 28))).run_dir


@needs_fashion
def test_command_end_to_end(tiny_run, net, capsys, tmp_path):
    rc = evaluate.main(["--run", tiny_run, "--n", "4", "--n-real", "4", "--metrics", "fid,kid,pr", "--device", "cpu",
                        "--kid-subsets", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "FID" in out and "4 generated vs 4 real (test)" in out and "singular covariance" in out
    path = os.path.join(tiny_run, "eval", "step_00000002_n4_test_inception.json")
    report = json.load(open(path))
    assert report["step"] == 2 and report["split"] == "test" and report["weights_sha256"] == net.sha256
    assert report["reference_cache"].startswith(str(tmp_path / "cache"))
    assert set(report["metrics"]) == {"fid", "kid", "kid_std", "kid_subset_size", "precision", "recall", "n_real",
                                      "n_fake"}
    # the same numbers from the run's EMA generator (seed 0) and the cached reference, by hand
    run = run_folder.load_run(tiny_run)
    f_fake = net(run_folder.generate(run, 4, seed=0)[0])
    with np.load(report["reference_cache"]) as z:
        f_real = z["features"].astype(np.float64)
    assert report["metrics"]["fid"] == pytest.approx(metrics.fid_from_features(f_real, f_fake), rel=1e-6)
    assert report["metrics"]["kid"] == pytest.approx(
        metrics.kid_from_features(f_real, f_fake, subsets=3, subset_size=4)[0], rel=1e-6)


def test_command_bad_input(tiny_run, tmp_path, capsys):
    def fails(*argv, match, code=2):
        assert evaluate.main(["--run", *argv, "--device", "cpu", "--n", "4", "--n-real", "4"]) == code
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err, err

    empty = tmp_path / "empty_run"
    empty.mkdir()
    fails(str(empty), match="no ckpt_*.pt files: was it trained?", code=6)
    fails(str(tmp_path / "nowhere"), match="run folder not found")
    # a checkpoint whose weights are not the architecture its config names
    ckpt = run_folder.load_run(tiny_run).ckpt_path
    state = torch.load(ckpt, weights_only=True)
    state["config"] = dict(state["config"], model="resnet", resolution=32)
    torch.save(state, tmp_path / "other.pt")
    fails(tiny_run, "--ckpt", str(tmp_path / "other.pt"), match="do not fit the architecture", code=6)
    # a consistent checkpoint, but of another architecture than the run folder's
    other_cfg = dict(state["config"], model="dcgan", resolution=32, g_base=8)
    from wgan_fast.models import from_config

    G, D = from_config(other_cfg, torch.device("cpu"))
    torch.save(dict(state, config=other_cfg, G=G.state_dict(), D=D.state_dict(), G_ema=G.state_dict()),
               tmp_path / "other32.pt")
    fails(tiny_run, "--ckpt", str(tmp_path / "other32.pt"), match="another architecture or dataset than the run folder",
          code=6)
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"x" * 100)
    fails(tiny_run, "--weights", str(bad), match="is not that of a known Inception-2015-12-05", code=4)
    fails(tiny_run, "--metrics", "fid,bogus", match="unknown 'bogus'")


@needs_fashion
def test_class_accuracy_and_classifier_features(tiny_run, monkeypatch):
    from wgan_fast import classifier

    model = classifier.load_classifier("fashion-mnist", "cpu")  # committed package data: never missing
    run = run_folder.load_run(tiny_run)
    ev = metrics.Evaluator(run.cfg, "cpu", metrics=("fid", "class-acc"), n_real=50, features="classifier")
    images, labels = run_folder.generate(run, 20, seed=3)
    got = ev.score((images, labels), 20)
    with torch.no_grad():
        x = torch.round((images + 1) * 127.5) / 127.5 - 1
        acc = (model(x).argmax(1) == labels).double().mean().item()
        f_fake = model.features(x).double().numpy()
    assert got["class_acc"] == pytest.approx(acc)
    hits = model(x).argmax(1) == labels
    for c, a in enumerate(got["class_acc_by_class"]):
        assert a == (None if not (labels == c).any() else pytest.approx(hits[labels == c].double().mean().item()))
    assert got["fid"] == pytest.approx(metrics.fid_from_features(ev.reference(), f_fake), rel=1e-6)
    with pytest.raises(ValueError, match="class-acc: needs a conditional run"):
        metrics.Evaluator(dict(run.cfg, conditional=False), "cpu", metrics=("class-acc",))
