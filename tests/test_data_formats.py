"""Real file formats written small by the tests: CIFAR-10 pickles, STL-10
binaries, JPEG/PNG folders; the DALI and DataLoader streams; bad files."""
import os
import pickle

import numpy as np
import pytest
import torch

from wgan_fast import config, data
from wgan_fast.data import files, formats


def cfg_for(dataset, root, **kw):
    base = {"dataset": dataset, "data_dir": str(root), "batch_size": "4", "resolution": "32", "channels": "3"}
    base.update({k: str(v) for k, v in kw.items()})
    return config.resolve(base)


def write_cifar(root, n_per_batch=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, n_per_batch))}
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch, f)
    return folder


def test_cifar10_pickles(tmp_path):
    folder = write_cifar(tmp_path)
    x, y = formats.read_cifar10(str(tmp_path))
    assert x.shape == (30, 32, 32, 3) and y.shape == (30,)
    with open(folder / "data_batch_1", "rb") as f:
        b1 = pickle.load(f, encoding="bytes")
    assert np.array_equal(x[0], b1[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0))  # channel planes -> HWC
    s = data.make_stream(cfg_for("cifar10", tmp_path), "cpu")
    xb, yb = s.next()
    assert xb.shape == (4, 3, 32, 32) and -1 <= xb.min() and xb.max() <= 1 and yb.dtype == torch.int64


def test_cifar10_truncated_pickle_names_the_file(tmp_path):
    folder = write_cifar(tmp_path)
    raw = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="data_batch_3"):
        formats.read_cifar10(str(tmp_path))
    os.remove(folder / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        formats.read_cifar10(str(tmp_path))


def test_stl10_binaries(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)  # (N, H, W, C)
    imgs.transpose(0, 3, 2, 1).tofile(folder / "train_X.bin")  # STL-10 stores (N, C, W, H)
    np.array([1, 5, 10], dtype=np.uint8).tofile(folder / "train_y.bin")
    rng.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8).tofile(folder / "unlabeled_X.bin")
    x, y = formats.read_stl10(str(tmp_path))
    assert x.shape == (5, 96, 96, 3) and np.array_equal(x[:3], imgs)
    assert y.tolist() == [0, 4, 9, -1, -1]
    with open(folder / "train_X.bin", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ValueError, match="train_X.bin"):
        formats.read_stl10(str(tmp_path))
    np.zeros(2 * 3 * 96 * 96, dtype=np.uint8).tofile(folder / "train_X.bin")
    with pytest.raises(ValueError, match="train_y.bin: 3 labels for 2 images"):
        formats.read_stl10(str(tmp_path))


def write_folder(root, n_per_class=6, classes=("cat", "dog"), size=(48, 40), corrupt=0, gray=0, small=0):
    from PIL import Image

    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            img = Image.fromarray(arr)
            if i < gray:
                img = img.convert("L")
            if i < small:
                img = img.resize((16, 16))
            img.save(root / c / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    for i in range(corrupt):
        (root / classes[0] / f"broken_{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_folder_labels_decode_and_policies(tmp_path):
    root = write_folder(tmp_path / "animals", gray=2, small=1)
    paths, labels, classes = formats.list_images(str(root))
    assert classes == ["cat", "dog"] and labels.tolist() == [0] * 6 + [1] * 6
    with pytest.warns(RuntimeWarning, match="upscaled 2 image"):
        x, y, bad = formats.decode_folder(paths, labels, 32, 3)
    assert x.shape == (12, 32, 32, 3) and not bad  # grayscale files came out as 3 channels
    with pytest.raises(ValueError, match="smaller than the requested"):
        formats.decode_folder(paths, labels, 32, 3, on_small="error")
    with pytest.raises(ValueError, match="no image files"):
        os.makedirs(tmp_path / "empty")
        formats.list_images(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        formats.list_images(str(tmp_path / "missing"))


def test_corrupt_files_are_skipped_counted_and_bounded(tmp_path):
    root = write_folder(tmp_path / "a", n_per_class=60, corrupt=1)
    paths, labels, _ = formats.list_images(str(root))
    with pytest.warns(RuntimeWarning, match=r"skipped 1 unreadable image\(s\) of 121: .*broken_0.jpg"):
        kept, kept_labels, unreadable = files.check_files(paths, labels)
    assert len(kept) == 120 and len(kept_labels) == 120 and unreadable.count == 1
    with pytest.raises(ValueError, match="broken_0.jpg"):
        files.check_files(paths, labels, on_corrupt="error")
    root2 = write_folder(tmp_path / "b", n_per_class=5, corrupt=2)  # 2 of 12: over the 1% bound
    paths, labels, _ = formats.list_images(str(root2))
    with pytest.raises(ValueError, match="more than max_corrupt"):
        files.check_files(paths, labels)


LOADERS = ["torchvision", pytest.param("dali", marks=pytest.mark.skipif(not files.dali_available(),
                                                                        reason="DALI not installed"))]


@pytest.mark.parametrize("loader", LOADERS)
def test_file_streams_follow_the_order_and_resume(tmp_path, loader):
    root = write_folder(tmp_path / "f", n_per_class=8)
    cfg = cfg_for("folder", root, loader=loader, flip="true", num_workers=0, seed=4)
    s = data.make_stream(cfg, "cpu")
    batches = [s.next() for _ in range(6)]
    for x, y in batches:
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and -1.001 <= x.min() and x.max() <= 1.001
    order = data.BatchOrder(16, 4, seed=4)
    paths, labels, _ = formats.list_images(str(root))
    for k, (_, y) in enumerate(batches):
        assert y.tolist() == labels[order.indices(k).numpy()].tolist()
    resumed = data.make_stream(cfg, "cpu")
    resumed.load_state_dict({"k": 3})
    for want in batches[3:]:
        got = resumed.next()
        assert torch.equal(got[1], want[1])
        torch.testing.assert_close(got[0], want[0])


@pytest.mark.skipif(not files.dali_available(), reason="DALI not installed")
def test_dali_and_dataloader_decode_alike(tmp_path):
    root = write_folder(tmp_path / "f", n_per_class=4)
    xs = [data.make_stream(cfg_for("folder", root, loader=l, num_workers=0), "cpu").next()[0]
          for l in ("dali", "torchvision")]
    # the same centre square and filter (antialiased bilinear) in two resizers: a few 8-bit levels apart
    diff = (xs[0] - xs[1]).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.05


def test_two_ranks_of_a_file_stream_are_disjoint(tmp_path):
    root = write_folder(tmp_path / "f", n_per_class=8)
    cfg = cfg_for("folder", root, loader="torchvision", num_workers=0)
    seen = []
    for rank in (0, 1):
        s = data.make_stream(cfg, "cpu", rank=rank, world_size=2)
        got = []
        for _ in range(2):  # 2 global batches of 2 x 4 = the whole epoch of 16
            got += s.order.indices(s.k).tolist()
            s.next()
        seen.append(got)
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(16))


def test_malformed_arrays_are_data_errors_not_crashes(tmp_path):
    """Wrong types and values inside well-formed files: one DataError naming the file."""
    import pickle

    from wgan_fast import errors
    from wgan_fast.data import formats, idx

    for name, batch in (("strs", {b"data": [["a"] * 3072] * 2, b"labels": [0, 1]}),
                        ("scalar", {b"data": np.zeros((2, 3072), np.uint8), b"labels": 7}),
                        ("big", {b"data": np.full((2, 3072), 300), b"labels": [0, 1]})):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(1, 6):
            (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
        with pytest.raises(errors.DataError, match="data_batch_1"):
            formats.read_cifar10(str(folder))
    for name, images in (("float", np.zeros((2, 28, 28), ">f4")), ("empty", np.zeros((2, 0, 28), np.uint8))):
        folder = tmp_path / name
        folder.mkdir()
        code = 0x0D if images.dtype != np.uint8 else 0x08
        header = bytes([0, 0, code, 3]) + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
        (folder / "train-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (folder / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 0, 1]))
        with pytest.raises(errors.DataError, match="train-images-idx3-ubyte"):
            idx.load_split(str(folder), train=True)
    with pytest.raises(errors.DataError, match="negative label"):  # (an embedding index error otherwise)
        data._labels(np.array([-1, 0]), {"conditional": True, "num_classes": 10}, "x")


def test_an_image_folder_with_loose_images_and_sub_folders_is_refused(tmp_path):
    """Class folders beside loose images: refused naming both (the loose images were dropped silently);
    a hidden folder is no class."""
    from PIL import Image

    from wgan_fast import errors

    for i in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / f"img{i}.png")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    paths, labels, _ = formats.list_images(str(tmp_path))
    assert len(paths) == 2 and labels is None
    (tmp_path / "extra").mkdir()
    with pytest.raises(errors.DataError, match="img0.png.*extra"):
        formats.list_images(str(tmp_path))
