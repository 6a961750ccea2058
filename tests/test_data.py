"""Tests of sslbench.training.data: each real format is written here, byte by byte from its published description, into a
temporary folder and read back exactly; missing data sets, fractions, digits, synthetic data and bad inputs."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sslbench.training import data as D
from sslbench.training.data import DatasetNotFoundError, ImageDataset, load_dataset

FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------------------------------------------------------
# writers of the real formats (from the format descriptions, not from sslbench.training.data)


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """idx: 0x00 0x00, type byte (0x08 = ubyte), ndim byte, dims as big-endian uint32, data in C order."""
    assert array.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.tobytes(order="C")
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_fmnist_dir(d: Path, rng: np.random.Generator, compress=True, n_train=13, n_test=7) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(y)
        suffix = ".gz" if compress else ""
        write_idx(d / f"{prefix}-images-idx3-ubyte{suffix}", x, compress)
        write_idx(d / f"{prefix}-labels-idx1-ubyte{suffix}", y, compress)
        out[split] = (x, y)
    return out


def write_cifar_batch(path: Path, x_chw: np.ndarray, labels, label_key: str, protocol: int, bytes_keys: bool) -> None:
    """CIFAR python batch: dict with 'data' (N, 3072) uint8 rows (R plane, G plane, B plane, each row-major)."""
    n = x_chw.shape[0]
    rows = np.zeros((n, 3072), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            for h in range(32):
                rows[i, c * 1024 + h * 32 : c * 1024 + h * 32 + 32] = x_chw[i, c, h, :]
    d = {"data": rows, label_key: list(int(v) for v in labels), "batch_label": "testing batch 1 of 1"}
    if label_key == "fine_labels":
        d["coarse_labels"] = [int(v) // 5 for v in labels]
    if bytes_keys:
        d = {k.encode(): v for k, v in d.items()}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=protocol)


def write_stl_images(path: Path, x_chw: np.ndarray) -> None:
    """STL-10 binary: each image a MATLAB column-major (H, W, C) array: byte h + 96*w + 96*96*c."""
    with open(path, "wb") as f:
        for img in x_chw:
            buf = bytearray(3 * 96 * 96)
            for c in range(3):
                for w in range(96):
                    base = 96 * w + 96 * 96 * c
                    buf[base : base + 96] = img[c, :, w].tobytes()
            f.write(bytes(buf))


def assert_dataset(ds: ImageDataset, x_nchw: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert tuple(ds.images.shape) == x_nchw.shape
    assert ds.num_classes == num_classes
    assert len(ds) == x_nchw.shape[0]
    np.testing.assert_array_equal(ds.images.numpy(), x_nchw)
    np.testing.assert_array_equal(ds.labels.numpy(), y.astype(np.int64))


@pytest.fixture
def no_default_roots(monkeypatch, tmp_path):
    """Point every default place at empty temporary folders."""
    empty = tmp_path / "empty_cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setattr(D, "STANDARD_ROOTS", (str(tmp_path / "nowhere1"), str(tmp_path / "nowhere2"), "./data"))
    return tmp_path


# ---------------------------------------------------------------------------------------------------------------
# Fashion-MNIST


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("subdir", ["", "fashion-mnist", "FashionMNIST/raw"])
def test_fashion_mnist_idx_round_trip(tmp_path, compress, subdir):
    ref = make_fmnist_dir(tmp_path / subdir if subdir else tmp_path, np.random.default_rng(1), compress=compress)
    for split in ("train", "test"):
        ds = load_dataset("fashion_mnist", split, root=str(tmp_path))
        x, y = ref[split]
        assert_dataset(ds, x[:, None], y, 10)
        assert ds.name == "fashion_mnist"


def test_fashion_mnist_pad_adds_background_on_every_side(tmp_path):
    ref = make_fmnist_dir(tmp_path, np.random.default_rng(5))
    x, y = ref["test"]
    ds = load_dataset("fashion_mnist", "test", root=str(tmp_path), pad=2)
    expected = np.zeros((x.shape[0], 1, x.shape[1] + 4, x.shape[2] + 4), dtype=np.uint8)
    expected[:, 0, 2:-2, 2:-2] = x
    assert_dataset(ds, expected, y, 10)
    assert ds.image_shape == (1, x.shape[1] + 4, x.shape[2] + 4)
    assert_dataset(load_dataset("fashion_mnist", "test", root=str(tmp_path), pad=0), x[:, None], y, 10)
    for bad in (-1, 65, 1.5, "2", True):
        with pytest.raises(ValueError, match="pad=.* must be a whole number of pixels from 0 to 64"):
            load_dataset("fashion_mnist", "test", root=str(tmp_path), pad=bad)


def test_fashion_mnist_env_var_and_default_dataset(monkeypatch, no_default_roots):
    tmp = no_default_roots
    assert D.default_dataset() == "digits"
    with pytest.raises(DatasetNotFoundError):
        load_dataset("fashion_mnist")
    ref = make_fmnist_dir(tmp / "mydata", np.random.default_rng(2))
    monkeypatch.setenv(D.ENV_VAR, str(tmp / "mydata"))
    assert D.default_dataset() == "fashion_mnist"
    assert_dataset(load_dataset("fashion_mnist", "test"), ref["test"][0][:, None], ref["test"][1], 10)
    # ./data is a standard place too
    monkeypatch.delenv(D.ENV_VAR)
    make_fmnist_dir(Path("data"), np.random.default_rng(3))
    assert D.default_dataset() == "fashion_mnist"


def test_explicit_root_is_the_only_place_searched(tmp_path, monkeypatch):
    make_fmnist_dir(tmp_path / "good", np.random.default_rng(4))
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "good"))
    (tmp_path / "bad").mkdir()
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset("fashion_mnist", root=str(tmp_path / "bad"))
    assert str(tmp_path / "bad") in str(exc.value)


def test_missing_fashion_mnist_message(no_default_roots):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset("fashion_mnist", root=str(no_default_roots / "nothing"))
    msg = str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    assert "apt-get install dataset-fashion-mnist" in msg and "root=" in msg and "digits" in msg
    assert "train-images-idx3-ubyte" in msg


def test_incomplete_fashion_mnist_dir_is_not_found(tmp_path):
    make_fmnist_dir(tmp_path, np.random.default_rng(5))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError):
        load_dataset("fashion_mnist", root=str(tmp_path))


def test_read_idx_rejects_bad_files(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "ok", x, compress=False)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "ok"), x)
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="truncated"):
        D.read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="trailing"):
        D.read_idx(tmp_path / "long")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(ValueError, match="not an idx file"):
        D.read_idx(tmp_path / "magic")
    # a big-endian int32 idx file (type 0x0C)
    vals = np.array([[1, -2, 70000], [3, 4, -5]], dtype=">i4")
    (tmp_path / "i32").write_bytes(struct.pack(">BBBBII", 0, 0, 0x0C, 2, 2, 3) + vals.tobytes())
    out = D.read_idx(tmp_path / "i32")
    np.testing.assert_array_equal(out, vals.astype(np.int32))


@pytest.mark.skipif(
    not (FMNIST_SYSTEM_DIR.is_dir() and D._fmnist_complete(FMNIST_SYSTEM_DIR)),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist():
    train = load_dataset("fashion_mnist", "train", root=str(FMNIST_SYSTEM_DIR))
    test = load_dataset("fashion_mnist", "test", root=str(FMNIST_SYSTEM_DIR))
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(train.labels), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))
    # the first training item of Fashion-MNIST is an ankle boot (class 9), the first test item too
    assert int(train.labels[0]) == 9 and int(test.labels[0]) == 9
    # the pixel mean/std that sslbench.training.augment normalises with
    from sslbench.training.augment import DATASET_STATS

    pix = train.images.double() / 255
    assert abs(pix.mean().item() - DATASET_STATS["fashion_mnist"]["mean"][0]) < 1e-4
    assert abs(pix.std().item() - DATASET_STATS["fashion_mnist"]["std"][0]) < 1e-4


# ---------------------------------------------------------------------------------------------------------------
# digits


def test_digits_split_and_scaling():
    sk = pytest.importorskip("sklearn.datasets")
    bunch = sk.load_digits()
    seen = {}
    test_idx, train_idx = [], []
    for i, t in enumerate(bunch.target):  # reference: every 5th occurrence of a class is test
        seen[t] = seen.get(t, 0) + 1
        (test_idx if seen[t] % 5 == 0 else train_idx).append(i)
    for split, idx in (("train", train_idx), ("test", test_idx)):
        ds = load_dataset("digits", split)
        assert ds.images.shape == (len(idx), 1, 8, 8) and ds.num_classes == 10
        expect = np.floor(bunch.images[idx] * 255 / 16 + 0.5).astype(np.int64)  # 0..16 -> 0..255, half up
        np.testing.assert_array_equal(ds.images[:, 0].numpy(), expect)
        np.testing.assert_array_equal(ds.labels.numpy(), bunch.target[idx])
    assert len(train_idx) + len(test_idx) == 1797
    assert int(load_dataset("digits").images.max()) == 255
    counts = np.bincount(bunch.target)
    np.testing.assert_array_equal(np.bincount(load_dataset("digits", "test").labels.numpy()), counts // 5)
    from sslbench.training.augment import DATASET_STATS

    allpix = torch.cat([load_dataset("digits", s).images for s in ("train", "test")]).double() / 255
    assert abs(allpix.mean().item() - DATASET_STATS["digits"]["mean"][0]) < 1e-4
    assert abs(allpix.std().item() - DATASET_STATS["digits"]["std"][0]) < 1e-4


# ---------------------------------------------------------------------------------------------------------------
# CIFAR


@pytest.mark.parametrize("protocol,bytes_keys", [(2, True), (pickle.HIGHEST_PROTOCOL, False)])
def test_cifar10_round_trip(tmp_path, protocol, bytes_keys):
    rng = np.random.default_rng(6)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, size=3)
        write_cifar_batch(d / f"data_batch_{i}", x, y, "labels", protocol, bytes_keys)
        xs.append(x)
        ys.append(y)
    xt = rng.integers(0, 256, size=(4, 3, 32, 32), dtype=np.uint8)
    yt = np.array([9, 0, 3, 3])
    write_cifar_batch(d / "test_batch", xt, yt, "labels", protocol, bytes_keys)
    assert_dataset(load_dataset("cifar10", "train", root=str(tmp_path)), np.concatenate(xs), np.concatenate(ys), 10)
    assert_dataset(load_dataset("cifar10", "test", root=str(tmp_path)), xt, yt, 10)
    # the batch folder itself works as root too
    assert_dataset(load_dataset("cifar10", "test", root=str(d)), xt, yt, 10)


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(7)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    ref = {}
    for split, n in (("train", 5), ("test", 2)):
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 100, size=n)
        write_cifar_batch(d / split, x, y, "fine_labels", 2, True)
        ref[split] = (x, y)
    for split in ("train", "test"):
        assert_dataset(load_dataset("cifar100", split, root=str(tmp_path)), *ref[split], 100)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_pickle_with_code_is_refused(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    for split in ("train", "test"):
        with open(d / split, "wb") as f:
            pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [0], b"x": _Evil()}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_dataset("cifar100", root=str(tmp_path))


def test_cifar_bad_batch_shape(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    for split in ("train", "test"):
        with open(d / split, "wb") as f:
            pickle.dump({"data": np.zeros((2, 100), np.uint8), "fine_labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="3072"):
        load_dataset("cifar100", root=str(tmp_path))


@pytest.mark.parametrize(
    "name,url",
    [("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz"), ("stl10", "stl10_binary.tar.gz")],
)
def test_missing_messages(tmp_path, name, url):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset(name, root=str(tmp_path))
    assert url in str(exc.value) and "root=" in str(exc.value)


# ---------------------------------------------------------------------------------------------------------------
# STL-10


def test_stl10_round_trip(tmp_path):
    rng = np.random.default_rng(8)
    d = tmp_path / "stl10_binary"
    d.mkdir()
    ref = {}
    for split, n in (("train", 3), ("test", 2), ("unlabeled", 2)):
        x = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        write_stl_images(d / f"{split}_X.bin", x)
        if split != "unlabeled":
            y = rng.integers(1, 11, size=n).astype(np.uint8)
            (d / f"{split}_y.bin").write_bytes(y.tobytes())
            ref[split] = (x, y.astype(np.int64) - 1)
        else:
            ref[split] = (x, np.full(n, -1))
    for split in ("train", "test", "unlabeled"):
        ds = load_dataset("stl10", split, root=str(tmp_path))
        assert_dataset(ds, *ref[split], 10)
    # truncated image file
    (d / "test_X.bin").write_bytes((d / "test_X.bin").read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        load_dataset("stl10", "test", root=str(tmp_path))
    # out-of-range label
    (d / "train_y.bin").write_bytes(bytes([0, 1, 2]))
    with pytest.raises(ValueError, match="1..10"):
        load_dataset("stl10", "train", root=str(tmp_path))


def test_unlabeled_fraction_is_a_plain_sample(tmp_path):
    d = tmp_path / "stl10_binary"
    d.mkdir()
    x = np.random.default_rng(9).integers(0, 256, size=(10, 3, 96, 96), dtype=np.uint8)
    write_stl_images(d / "unlabeled_X.bin", x)
    full = load_dataset("stl10", "unlabeled", root=str(tmp_path))
    sub = load_dataset("stl10", "unlabeled", root=str(tmp_path), fraction=0.3, seed=1)
    assert len(sub) == 3 and bool((sub.labels == -1).all())
    idx = D.class_balanced_subset(full.labels, 0.3, 1)
    assert torch.equal(sub.images, full.images[idx])


# ---------------------------------------------------------------------------------------------------------------
# image folder


def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(10)
    ref_x, ref_y = [], []
    for k, cls in enumerate(["cat", "dog"]):  # sorted class names -> 0, 1
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(2 + k):
            a = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)  # H=5, W=4
            Image.fromarray(a, "RGB").save(tmp_path / "train" / cls / f"{i}.png")
            ref_x.append(a.transpose(2, 0, 1))
            ref_y.append(k)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    ds = load_dataset("folder", "train", root=str(tmp_path))
    assert_dataset(ds, np.stack(ref_x), np.array(ref_y), 2)
    with pytest.raises(DatasetNotFoundError, match="test"):
        load_dataset("folder", "test", root=str(tmp_path))
    # resize to a given size
    ds2 = load_dataset("folder", "train", root=str(tmp_path), image_size=(6, 7))
    assert ds2.images.shape == (5, 3, 6, 7)
    # differing sizes need image_size
    odd = rng.integers(0, 256, size=(3, 3, 3), dtype=np.uint8)
    Image.fromarray(odd, "RGB").save(tmp_path / "train" / "cat" / "odd.png")
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("folder", root=str(tmp_path))


def test_grayscale_image_folder_as_root(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(11)
    xs, ys = [], []
    for k, cls in enumerate(["a", "b", "c"]):
        (tmp_path / cls).mkdir()
        a = rng.integers(0, 256, size=(4, 4), dtype=np.uint8)
        Image.fromarray(a, "L").save(tmp_path / cls / "x.png")
        xs.append(a[None])
        ys.append(k)
    ds = load_dataset("folder", root=str(tmp_path))  # no train/ sub-folder: root itself is the train split
    assert_dataset(ds, np.stack(xs), np.array(ys), 3)


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="root="):
        load_dataset("folder")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("folder", root=str(tmp_path / "absent"))
    pytest.importorskip("PIL")
    with pytest.raises(DatasetNotFoundError, match="class sub-folders"):
        load_dataset("folder", root=str(tmp_path))


def test_folder_without_pillow_names_pip_install(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        load_dataset("folder", root=str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# synthetic


def _fourier_nearest_mean_accuracy(train: ImageDataset, test: ImageDataset) -> float:
    def feats(ds):
        x = ds.images.double() / 255
        x = x - x.mean(dim=(2, 3), keepdim=True)
        return torch.fft.fft2(x).abs().flatten(1)

    a, b = feats(train), feats(test)
    means = torch.stack([a[train.labels == k].mean(0) for k in range(train.num_classes)])
    pred = torch.cdist(b, means).argmin(1)
    return (pred == test.labels).double().mean().item()


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (1, 9, 11)])
def test_synthetic(shape):
    c, h, w = shape
    kw = dict(num_samples=400, channels=c, height=h, width=w, num_classes=10)
    tr = load_dataset("synthetic", "train", **kw)
    te = load_dataset("synthetic", "test", **{**kw, "num_samples": 200})
    assert tr.images.shape == (400, c, h, w) and tr.images.dtype == torch.uint8
    assert torch.equal(torch.bincount(tr.labels), torch.full((10,), 40))
    again = load_dataset("synthetic", "train", **kw)
    assert torch.equal(tr.images, again.images) and torch.equal(tr.labels, again.labels)
    other = load_dataset("synthetic", "train", data_seed=1, **kw)
    assert not torch.equal(tr.images, other.images)
    assert not torch.equal(tr.images[:200], te.images)
    assert _fourier_nearest_mean_accuracy(tr, te) > 0.9


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        load_dataset("synthetic", num_classes=0)
    with pytest.raises(ValueError, match="height"):
        load_dataset("synthetic", height=2.5)
    with pytest.raises(TypeError, match="num_samples"):
        load_dataset("synthetic", image_size=4)


# ---------------------------------------------------------------------------------------------------------------
# fraction


def _reference_counts(labels: np.ndarray, fraction: float) -> dict:
    return {int(c): max(1, int(math.floor(fraction * (labels == c).sum() + 0.5))) for c in np.unique(labels)}


@pytest.mark.parametrize("fraction", [0.001, 0.1, 0.37, 0.5, 1.0])
def test_fraction_is_class_balanced_and_seeded(fraction):
    kw = dict(num_samples=503, channels=1, height=5, width=5, num_classes=7)
    full = load_dataset("synthetic", **kw)
    sub = load_dataset("synthetic", **kw, fraction=fraction, seed=3)
    ref = _reference_counts(full.labels.numpy(), fraction)
    got = {int(c): int((sub.labels == c).sum()) for c in torch.unique(sub.labels)}
    assert got == ref
    idx = D.class_balanced_subset(full.labels, fraction, 3)
    assert bool((idx[1:] > idx[:-1]).all())  # sorted, no repeats
    assert torch.equal(sub.images, full.images[idx]) and torch.equal(sub.labels, full.labels[idx])
    same = load_dataset("synthetic", **kw, fraction=fraction, seed=3)
    assert torch.equal(same.images, sub.images)
    if fraction < 0.9:
        other = D.class_balanced_subset(full.labels, fraction, 4)
        assert other.shape == idx.shape and (fraction < 0.01 or not torch.equal(other, idx))


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.0001, 2, float("nan"), float("inf"), True, "0.5", None])
def test_fraction_out_of_range(bad):
    with pytest.raises(ValueError, match="fraction"):
        load_dataset("digits", fraction=bad)


def test_fraction_of_real_sized_split_keeps_every_class():
    sub = load_dataset("digits", fraction=0.001, seed=0)
    assert torch.equal(torch.bincount(sub.labels), torch.ones(10, dtype=torch.int64))


# ---------------------------------------------------------------------------------------------------------------
# dispatch, dataclass, optional dependencies


def test_bad_names_splits_options():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="splits"):
        load_dataset("digits", "val")
    with pytest.raises(ValueError, match="splits"):
        load_dataset("cifar10", "unlabeled")
    with pytest.raises(TypeError, match="download"):
        load_dataset("digits", download=True)
    assert set(D.DATASETS) == {"fashion_mnist", "digits", "cifar10", "cifar100", "stl10", "folder", "synthetic"}


def test_image_dataset_validation():
    x = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
    y = torch.tensor([0, 1])
    ds = ImageDataset("t", x, y, 2)
    assert ds.image_shape == (1, 3, 3) and len(ds) == 2
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("t", x.float(), y, 2)
    with pytest.raises(ValueError, match="int64"):
        ImageDataset("t", x, y.int(), 2)
    with pytest.raises(ValueError, match="match"):
        ImageDataset("t", x, y[:1], 2)
    with pytest.raises(ValueError, match="labels must lie"):
        ImageDataset("t", x, torch.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="num_classes"):
        ImageDataset("t", x, y, 0)


def test_download_without_torchvision_names_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match="pip install torchvision"):
        load_dataset("cifar10", root=str(tmp_path), download=True)


def test_import_is_light():
    code = (
        "import sys, sslbench, sslbench.training.data, sslbench.training.augment; "
        "bad = [m for m in ('kornia', 'sklearn', 'PIL', 'torchvision') if m in sys.modules]; assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
