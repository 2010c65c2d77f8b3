"""IDX reading and the device-resident stream: order, shards, resume, bad files."""
import os

import numpy as np
import pytest
import torch

from wgan_fast.data import idx
from wgan_fast.data.resident import ResidentStream

from helpers import write_idx  # noqa: E402


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    lbls = np.arange(7, dtype=np.uint8)
    ext = ".gz" if compress else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", imgs, compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{ext}", lbls, compress)
    x, y = idx.load_split(str(tmp_path), train=True)
    assert np.array_equal(x, imgs) and np.array_equal(y, lbls)


def test_idx_bad_files_name_the_file(tmp_path):
    imgs = np.zeros((5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", imgs, False)
    with open(tmp_path / "train-images-idx3-ubyte", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: truncated"):
        idx.read_idx(str(tmp_path / "train-images-idx3-ubyte"))
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="junk: not an IDX file"):
        idx.read_idx(str(tmp_path / "junk"))
    write_idx(tmp_path / "train-images-idx3-ubyte", imgs, False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8), False)
    with pytest.raises(ValueError, match="4 labels for 5 images"):
        idx.load_split(str(tmp_path), train=True)
    with pytest.raises(FileNotFoundError, match="missing t10k-images"):
        idx.load_split(str(tmp_path), train=False)


def _images(n=40):
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    return x, torch.arange(n)


def test_two_ranks_are_disjoint_and_cover_the_epoch():
    x, y = _images(40)
    seen = []
    for rank in (0, 1):
        s = ResidentStream(x, y, 4, "cpu", seed=3, rank=rank, world_size=2)
        seen.append(torch.cat([s.next()[1] for _ in range(5)]))  # 5 global batches of 8 = one epoch
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    assert sorted(seen[0].tolist() + seen[1].tolist()) == list(range(40))


def test_ranks_together_equal_one_process_with_the_global_batch():
    x, y = _images(40)
    one = ResidentStream(x, y, 8, "cpu", seed=5)
    r0, r1 = (ResidentStream(x, y, 4, "cpu", seed=5, rank=r, world_size=2) for r in (0, 1))
    for _ in range(12):  # crosses epochs
        assert torch.equal(one.next()[1], torch.cat([r0.next()[1], r1.next()[1]]))


def test_resume_continues_the_same_order_and_images_are_in_range():
    x, y = _images(40)
    a = ResidentStream(x, y, 8, "cpu", seed=1, flip=True)
    batches = [a.next() for _ in range(9)]
    b = ResidentStream(x, y, 8, "cpu", seed=1, flip=True)
    for _ in range(4):
        b.next()
    state = b.state_dict()
    c = ResidentStream(x, y, 8, "cpu", seed=1, flip=True)
    c.load_state_dict(state)
    for want in batches[4:]:
        got = c.next()
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert all(-1 <= t[0].min() and t[0].max() <= 1 for t in batches)
    epoch0 = torch.cat([t[1] for t in batches[:5]])
    assert sorted(epoch0.tolist()) == list(range(40)) and epoch0.tolist() != list(range(40))  # shuffled


@pytest.mark.skipif(not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"),
                    reason="Debian package dataset-fashion-mnist not installed: real-data test skipped")
def test_real_fashion_mnist():
    from wgan_fast import config, data

    s = data.make_stream(config.resolve({}), "cpu")
    assert s.images.shape == (60000, 1, 32, 32)
    x, y = s.next()
    assert x.shape == (64, 1, 32, 32) and y.max() <= 9 and -1 <= x.min() and x.max() <= 1
    assert torch.bincount(s.labels, minlength=10).tolist() == [6000] * 10
