"""Image files that cannot be decoded whole, in every loader, at any moment:
skipped, counted, replaced by the same substitute everywhere, resumable, and
bounded by max_corrupt with a one-line DataError naming the file."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from wgan_fast import config, data
from wgan_fast.data import files, formats
from wgan_fast.errors import DataError

DALI = pytest.mark.skipif(not files.dali_available(), reason="DALI not installed")
FILE_LOADERS = [pytest.param(("torchvision", 0), id="torchvision-0"),
                pytest.param(("torchvision", 2), id="torchvision-2"),
                pytest.param(("dali", 0), id="dali", marks=DALI)]
LOADERS = [pytest.param(("resident", 0), id="resident")] + FILE_LOADERS
BAD = ("truncated.jpg", "corrupt.jpg", "empty.jpg", "notes.jpg")  # one of each kind
N_GOOD = 20


def jpeg_bytes(rng, size):
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(b, "JPEG", quality=90)
    return b.getvalue()


def write_bad_folder(root, n_good=N_GOOD):
    """Two class folders of random JPEGs and PNGs, and in cat/ one file of each
    bad kind. The truncated and the corrupt JPEG pass PIL's verify()."""
    from PIL import Image

    rng = np.random.default_rng(7)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
    for i in range(n_good):
        folder = root / ("cat" if i % 2 else "dog")
        if i % 3:
            (folder / f"{i:03d}.jpg").write_bytes(jpeg_bytes(rng, (48, 40)))
        else:
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    whole = jpeg_bytes(rng, (96, 80))
    (root / "cat" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])  # cut inside the entropy-coded data
    corrupt = bytearray(jpeg_bytes(rng, (96, 80)))
    dht = corrupt.index(b"\xff\xc4")  # a Huffman table: its 16 code-length counts flipped
    corrupt[dht + 5: dht + 21] = bytes(b ^ 0xFF for b in corrupt[dht + 5: dht + 21])
    (root / "cat" / "corrupt.jpg").write_bytes(bytes(corrupt))
    (root / "cat" / "empty.jpg").write_bytes(b"")
    (root / "cat" / "notes.jpg").write_text("not an image, whatever the name says\n" * 10)
    for name in ("truncated.jpg", "corrupt.jpg"):  # the premise: the old up-front check let both through
        with Image.open(root / "cat" / name) as im:
            im.verify()
    return root


def cfg_for(root, loader, workers=0, **kw):
    base = {"dataset": "folder", "data_dir": str(root), "batch_size": 4, "resolution": 32, "channels": 3,
            "loader": loader, "num_workers": workers, "flip": True, "seed": 3, "max_corrupt": 0.5,
            "conditional": True, "num_classes": 2}  # (labels: a check that substitutes bring their own)
    base.update(kw)
    return config.resolve({k: str(v) for k, v in base.items()})


def take(s, n):
    return [s.next() for _ in range(n)]


def stream(root, loader, n=0, **kw):
    """(stream, its first n batches, the text of the warnings on the way)."""
    with pytest.warns(RuntimeWarning) as record:  # (at least the scan's, naming what it skipped)
        s = data.make_stream(cfg_for(root, *loader, **kw), "cpu")
        batches = take(s, n)
    return s, batches, " ".join(str(w.message) for w in record)


def expected_files(paths, bad_names, seed, k, batch):
    """Oracle for the substitute rule, written from its description: batch k's
    slot j holds the file at its position of the epoch's permutation, or else
    the first after it (cyclically) whose file decodes."""
    order = data.BatchOrder(len(paths), batch, seed=seed)
    epoch, start = order.locate(k)
    perm = order.permutation(epoch).tolist()
    out = []
    for j in range(batch):
        pos = start + j
        while os.path.basename(paths[perm[pos % len(perm)]]) in bad_names:
            pos += 1
        out.append(perm[pos % len(perm)])
    return out


def test_the_scan_catches_truncation_and_non_images_but_not_appended_data(tmp_path):
    from wgan_fast.data.unreadable import scan_problem

    root = write_bad_folder(tmp_path / "f", n_good=2)
    assert "truncated" in scan_problem(str(root / "cat" / "truncated.jpg")).lower()
    assert scan_problem(str(root / "cat" / "empty.jpg")) and scan_problem(str(root / "cat" / "notes.jpg"))
    assert scan_problem(str(root / "cat" / "corrupt.jpg")) is None  # only a decoder sees this one
    appended = tmp_path / "appended.jpg"  # data after the end marker (as some cameras write): decodes fine
    appended.write_bytes(jpeg_bytes(np.random.default_rng(0), (48, 40)) + os.urandom(20000))
    assert scan_problem(str(appended)) is None


@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_skips_counts_and_keeps_the_batch_size(tmp_path, loader):
    root = write_bad_folder(tmp_path / "f")
    s, batches, warned = stream(root, loader, 17)  # over three epoch boundaries: every file read 3 times or more
    assert s.order.per_epoch == 5  # 21 files pass the scan: 5 batches of 4 an epoch
    for name in BAD:
        assert name in warned
    for x, y in batches:
        assert x.shape == (4, 3, 32, 32) and y.shape == (4,)
        assert torch.isfinite(x).all() and -1.001 <= x.min() and x.max() <= 1.001
        assert (x.flatten(1).amax(1) > -1).all()  # no blank stand-in (zeros) reached a batch
    assert s.skipped_files == len(BAD)


@pytest.mark.parametrize("loader", LOADERS)
def test_substitutes_follow_the_rule_in_every_loader(tmp_path, loader):
    root = write_bad_folder(tmp_path / "f")
    _, got, _ = stream(root, loader, 12)
    paths, labels, _ = formats.list_images(str(root))
    kept = [p for p in paths if os.path.basename(p) not in ("truncated.jpg", "empty.jpg", "notes.jpg")]
    kept_labels = np.asarray([labels[paths.index(p)] for p in kept])
    order = data.BatchOrder(len(kept), 4, seed=3)
    substituted = 0
    for k, (x, y) in enumerate(got):
        want = expected_files(kept, BAD, 3, k, 4)
        substituted += want != order.indices(k).tolist()
        assert y.tolist() == kept_labels[want].tolist()
        ref = torch.from_numpy(np.stack([formats.decode_image(kept[i], 32, 3)[0] for i in want])).permute(0, 3, 1, 2)
        ref = ref.float().div(127.5).sub(1)
        ref = torch.where(order.flips(k).view(-1, 1, 1, 1), ref.flip(3), ref)
        if loader[0] == "dali":  # another resizer: a few 8-bit levels apart (see test_data_formats)
            assert (x - ref).abs().mean() < 0.01 and (x - ref).abs().max() < 0.05
        else:
            assert torch.equal(x, ref)
    assert substituted >= 2  # the rule was exercised (once per epoch)


@pytest.mark.parametrize("loader", LOADERS)
def test_resume_after_a_runtime_skip_is_exact(tmp_path, loader):
    root = write_bad_folder(tmp_path / "f")
    s, _, _ = stream(root, loader)
    while s.skipped_files < len(BAD):
        s.next()
    path = tmp_path / "state.pt"
    torch.save(s.state_dict(), path)  # as a checkpoint holds it
    want = take(s, 8)
    resumed, _, _ = stream(root, loader)
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert resumed.skipped_files == len(BAD)
    got = take(resumed, 8)
    for (xa, ya), (xb, yb) in zip(want, got):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert resumed.skipped_files == s.skipped_files == len(BAD)


@pytest.mark.parametrize("loader", FILE_LOADERS)
def test_files_that_break_during_training_are_skipped(tmp_path, loader):
    root = write_bad_folder(tmp_path / "f")
    s, _, _ = stream(root, loader)
    scanned = s.skipped_files
    for name in ("000.png", "004.jpg"):  # truncated after the scan
        raw = (root / "dog" / name).read_bytes()
        (root / "dog" / name).write_bytes(raw[: len(raw) // 2])
    os.remove(root / "dog" / "002.jpg")  # gone after the scan
    with pytest.warns(RuntimeWarning) as record:
        batches = take(s, 11)
    warned = " ".join(str(w.message) for w in record)
    assert all(name in warned for name in ("000.png", "004.jpg", "002.jpg", "corrupt.jpg"))
    assert all(x.shape == (4, 3, 32, 32) for x, _ in batches)
    assert s.skipped_files == scanned + 1 + 3  # corrupt.jpg and the three broken since


@pytest.mark.parametrize("loader", LOADERS)
def test_more_than_max_corrupt_stops_with_one_line_naming_the_file(tmp_path, loader):
    root = write_bad_folder(tmp_path / "f")
    cfg = cfg_for(root, *loader, max_corrupt=0.15)  # 3 of 24 at the scan: tolerated; a 4th is not
    with pytest.raises(DataError) as info:
        take(data.make_stream(cfg, "cpu"), 10)  # (the resident loader finds it while decoding at load)
    msg = str(info.value)
    assert "corrupt.jpg" in msg and "max_corrupt" in msg and "\n" not in msg and info.value.exit_code == 4


@pytest.mark.parametrize("loader", LOADERS)
def test_on_corrupt_error_stops_at_a_runtime_failure(tmp_path, loader):
    root = write_bad_folder(tmp_path / "f")
    for name in ("truncated.jpg", "empty.jpg", "notes.jpg"):  # leave only what the scan cannot see
        os.remove(root / "cat" / name)
    with pytest.raises(DataError, match=r"corrupt\.jpg: unreadable image .*on_corrupt=error") as info:
        take(data.make_stream(cfg_for(root, *loader, on_corrupt="error"), "cpu"), 10)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("loader", [pytest.param("torchvision", id="torchvision"),
                                    pytest.param("dali", id="dali", marks=DALI)])
def test_training_runs_through_bad_files_and_logs_the_count(tmp_path, loader):
    root = write_bad_folder(tmp_path / "f")
    args = [sys.executable, "-m", "wgan_fast.train", "--dataset", "folder", "--data-dir", str(root),
            "--loader", loader, "--resolution", "28", "--model", "dcgan", "--channels", "1", "--steps", "4",
            "--batch-size", "4", "--max-corrupt", "0.5", "--num-workers", "0", "--z-dim", "16", "--g-base", "8",
            "--d-base", "8", "--log-every", "1", "--sample-every", "4", "--ckpt-every", "4", "--n-samples", "4",
            "--tensorboard", "false", "--out-dir", str(tmp_path / "runs"), "--name", "run"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    rows = [json.loads(line) for line in open(tmp_path / "runs" / "run" / "metrics.jsonl")]
    assert len(rows) == 4 and all("skipped_files" in r for r in rows)
    assert rows[0]["skipped_files"] >= 3 and rows[-1]["skipped_files"] == len(BAD)  # 4 steps x 5 critic batches
    # above max_corrupt: one line naming a file, exit code 4, no traceback
    over = list(args)
    over[over.index("--max-corrupt") + 1] = "0.15"
    over[over.index("--name") + 1] = "over"
    done = subprocess.run(over, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stderr.splitlines() if line.startswith("wgan_fast.train:")]
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1 and "data error" in lines[0] and "corrupt.jpg" in lines[0], done.stderr[-3000:]
