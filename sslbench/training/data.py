"""Data sets as in-memory ``uint8`` tensors: Fashion-MNIST, scikit-learn digits, CIFAR-10/100, STL-10, an image
folder and a synthetic set for speed runs.

Every loader returns an :class:`ImageDataset` whose ``images`` are ``uint8`` of shape ``(N, C, H, W)`` (values
0..255, no normalisation: that belongs to :mod:`sslbench.training.augment`) and whose ``labels`` are ``int64`` of shape
``(N,)`` in ``0 .. num_classes - 1`` (``-1`` for STL-10's unlabeled split). Nothing is cached to disk: the
standard files are read straight into numpy buffers (``readinto`` / ``fromfile``, no per-image Python loop) and
wrapped with ``torch.from_numpy``; Fashion-MNIST's 60 000 gzip-compressed images load in well under a second.

Formats read
------------
``fashion_mnist``
    The idx files of https://github.com/zalandoresearch/fashion-mnist (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped or not).
    Debian's ``dataset-fashion-mnist`` package installs them under ``/usr/share/datasets/fashion-mnist/``.
    Splits ``train`` (60 000) and ``test`` (10 000); 1×28×28, 10 classes.
``digits``
    scikit-learn's bundled 8×8 handwritten digits (1 797 images, no download). Kept at the native 8×8 (no
    upsampling: a 1×8×8 image is what the data holds; the backbone and the ``digits`` augmentation preset are
    sized for it). Pixel values 0..16 are scaled to 0..255 (``round(v * 255 / 16)``). scikit-learn has no split,
    so a fixed, RNG-free stratified one is used: within each class, in file order, every 5th image (the 5th,
    10th, ...) is ``test``, the rest ``train`` (1 442 / 355).
``cifar10`` / ``cifar100``
    The "python version" pickles of https://www.cs.toronto.edu/~kriz/cifar.html: ``cifar-10-batches-py/``
    (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) and ``cifar-100-python/`` (``train``, ``test``; the 100
    fine labels). The pickles are read with an unpickler that only admits numpy's array reconstruction, so a
    tampered file cannot run code. 3×32×32.
``stl10``
    The binary release of https://cs.stanford.edu/~acoates/stl10/ (``stl10_binary/``: ``train_X.bin``,
    ``train_y.bin``, ``test_X.bin``, ``test_y.bin``, ``unlabeled_X.bin``). Images are stored column-major
    (per image: channel, then column, then row), so each is transposed to (C, H, W); labels 1..10 become 0..9.
    Splits ``train`` (5 000), ``test`` (8 000), ``unlabeled`` (100 000, labels ``-1``). 3×96×96.
``folder``
    ``root/<class>/<image>`` (torchvision's ImageFolder layout; classes are the sorted sub-folder names). If
    ``root/<split>/`` exists it is used, else ``root`` itself serves as the ``train`` split. Read with Pillow
    (``pip install pillow``). All-grayscale folders give 1 channel, anything else is converted to RGB. Images must
    share one size unless ``image_size=`` is given (then each is resized, bilinear, to it).
``synthetic``
    Seeded oriented gratings for speed runs (see :func:`synthetic_dataset`); options ``num_samples``,
    ``channels``, ``height``, ``width``, ``num_classes``, ``data_seed``.

Where files are looked for
--------------------------
``root=`` when given (only there); otherwise ``$SSLBENCH_DATA`` when set, then ``/usr/share/datasets/fashion-mnist``,
``~/.cache/sslbench`` and ``./data``. Within a root each data set is looked for in its usual sub-folder
(``fashion-mnist``, ``FashionMNIST/raw``, ``cifar-10-batches-py``, ``cifar-100-python``, ``stl10_binary``) and in
the root itself. ``download=True`` (Fashion-MNIST, CIFAR, STL-10) fetches the files with torchvision, when it
is installed and the network is reachable, into ``root`` / ``$SSLBENCH_DATA`` / ``~/.cache/sslbench``; it is
off by default, so a run never writes to disk or reaches the network unless asked.

``fraction`` takes a class-balanced, seeded subset of the split (meant for the training split): within each
class, ``max(1, floor(fraction * n_c + 0.5))`` items chosen by a ``torch.Generator`` seeded with ``seed``, kept in
file order. The same ``(fraction, seed)`` always gives the same subset. For labels ``-1`` (unlabeled) the subset
is a plain seeded sample.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS",
    "DATASET_OPTIONS",
    "ImageDataset",
    "DatasetNotFoundError",
    "load_dataset",
    "default_dataset",
    "default_roots",
    "class_balanced_subset",
    "load_fashion_mnist",
    "load_digits",
    "load_cifar",
    "load_stl10",
    "load_folder",
    "synthetic_dataset",
    "read_idx",
]

DATASETS = ("fashion_mnist", "digits", "cifar10", "cifar100", "stl10", "folder", "synthetic")

SPLITS = {
    "fashion_mnist": ("train", "test"),
    "digits": ("train", "test"),
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "stl10": ("train", "test", "unlabeled"),
    "synthetic": ("train", "test"),
}

STANDARD_ROOTS = ("/usr/share/datasets/fashion-mnist", "~/.cache/sslbench", "./data")
ENV_VAR = "SSLBENCH_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are not where they were looked for; the message says how to get them."""


@dataclass
class ImageDataset:
    """A whole split in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,), ``-1`` = unlabeled."""

    name: str
    images: Tensor
    labels: Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                "ImageDataset.images must be a uint8 tensor of shape (N, C, H, W); got "
                f"{getattr(self.images, 'dtype', type(self.images))} "
                f"of shape {tuple(getattr(self.images, 'shape', ()))}"
            )
        if not isinstance(self.labels, Tensor) or self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(
                "ImageDataset.labels must be an int64 tensor of shape (N,); got "
                f"{getattr(self.labels, 'dtype', type(self.labels))} "
                f"of shape {tuple(getattr(self.labels, 'shape', ()))}"
            )
        if self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"ImageDataset has {self.images.shape[0]} images but {self.labels.shape[0]} labels; they must match"
            )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"ImageDataset.num_classes must be a positive int; got {self.num_classes!r}")
        if self.labels.numel():
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < -1 or hi >= self.num_classes:
                raise ValueError(
                    f"ImageDataset labels must lie in -1 .. {self.num_classes - 1} (-1 = unlabeled); "
                    f"got values in {lo} .. {hi}"
                )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W), what :func:`sslbench.training.augment.build_augment` takes."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, indices: Tensor | Sequence[int]) -> "ImageDataset":
        """The items at ``indices`` (a new dataset sharing nothing with this one)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ImageDataset(self.name, self.images[idx], self.labels[idx], self.num_classes)


# ----------------------------------------------------------------------------------------------------------------
# root lookup


def default_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched, in order: ``[root]`` if given, else ``$SSLBENCH_DATA`` then the standard places."""
    if root is not None:
        return [Path(root).expanduser()]
    roots = []
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env).expanduser())
    roots.extend(Path(p).expanduser() for p in STANDARD_ROOTS)
    return roots


def _download_root(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path("~/.cache/sslbench").expanduser()


def _find_dir(roots: Sequence[Path], subdirs: Sequence[str], is_complete: Callable[[Path], bool]) -> Path | None:
    for r in roots:
        for sub in subdirs:
            d = r / sub if sub else r
            if d.is_dir() and is_complete(d):
                return d
    return None


def _looked_in(roots: Sequence[Path], subdirs: Sequence[str]) -> str:
    return ", ".join(str(r / s) if s else str(r) for r in roots for s in subdirs)


def _torchvision_download(dataset_name: str, root: Path) -> None:
    try:
        import torchvision.datasets as tvd  # optional; only for download=True
    except ImportError as exc:
        raise ImportError(
            f"download=True fetches {dataset_name} with torchvision, which is not installed: "
            "`pip install torchvision`, or download the files yourself (see the DatasetNotFoundError message)"
        ) from exc
    root.mkdir(parents=True, exist_ok=True)
    if dataset_name == "fashion_mnist":
        tvd.FashionMNIST(str(root), train=True, download=True)
        tvd.FashionMNIST(str(root), train=False, download=True)
    elif dataset_name == "cifar10":
        tvd.CIFAR10(str(root), train=True, download=True)
    elif dataset_name == "cifar100":
        tvd.CIFAR100(str(root), train=True, download=True)
    elif dataset_name == "stl10":
        tvd.STL10(str(root), split="train", download=True)
    else:  # pragma: no cover - callers only pass the names above
        raise ValueError(f"no download for {dataset_name!r}")


# ----------------------------------------------------------------------------------------------------------------
# Fashion-MNIST (idx format)

_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_maybe_gzip(path: Path) -> io.BufferedIOBase:
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_exact(f, n: int, what: Path) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{what}: file is truncated (wanted {n} more bytes, got {len(data)}); re-download it")
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (gzip-compressed or not, detected from its content) into a numpy array.

    Format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte (0x08 = uint8, ...), the number of
    dimensions, then each dimension as a big-endian uint32, then the data in C order.
    """
    path = Path(path)
    with _open_maybe_gzip(path) as f:
        head = _read_exact(f, 4, path)
        if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
            raise ValueError(f"{path}: not an idx file (magic bytes {head.hex()}); expected 0000 08 0n for uint8 data")
        ndim = head[3]
        shape = tuple(int(d) for d in np.frombuffer(_read_exact(f, 4 * ndim, path), dtype=">u4"))
        dtype = np.dtype(_IDX_TYPES[head[2]])
        out = np.empty(shape, dtype=dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        filled = 0
        while filled < out.nbytes:
            n = f.readinto(view[filled:])
            if not n:
                raise ValueError(
                    f"{path}: file is truncated ({filled} of {out.nbytes} data bytes for shape {shape}); re-download it"
                )
            filled += n
        if f.read(1):
            raise ValueError(f"{path}: trailing bytes after the {shape} array; the file is not a valid idx file")
    return out if dtype == np.uint8 else out.astype(dtype.newbyteorder("="))


_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FMNIST_SUBDIRS = ("", "fashion-mnist", "fashion_mnist", "FashionMNIST/raw")


def _idx_file(d: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (d / name).is_file():
            return d / name
    return None


def _fmnist_complete(d: Path) -> bool:
    return all(_idx_file(d, stem) is not None for pair in _FMNIST_FILES.values() for stem in pair)


def _fmnist_dir(root: str | os.PathLike | None) -> Path | None:
    return _find_dir(default_roots(root), _FMNIST_SUBDIRS, _fmnist_complete)


def _check_pad(pad) -> int:
    if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad <= MAX_PAD:
        raise ValueError(f"pad={pad!r} must be a whole number of pixels from 0 to {MAX_PAD} "
                         "(e.g. --data-option pad=2 gives Fashion-MNIST's 28×28 images as 32×32)")
    return pad


def load_fashion_mnist(
    split: str = "train", root: str | os.PathLike | None = None, *, download: bool = False, pad: int = 0
) -> ImageDataset:
    """Fashion-MNIST from its idx files (see the module docstring for where they are looked for).

    ``pad`` adds that many pixels of background (0, the images' own background) on every side: ``pad=2`` gives
    the 32×32 inputs of a CIFAR-shaped pipeline (ResNet-18 with the CIFAR stem) without resampling the images.
    """
    _check_split("fashion_mnist", split)
    pad = _check_pad(pad)
    d = _fmnist_dir(root)
    if d is None and download:
        _torchvision_download("fashion_mnist", _download_root(root))
        d = _fmnist_dir(_download_root(root))
    if d is None:
        raise DatasetNotFoundError(
            "Fashion-MNIST idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) not found; looked in "
            f"{_looked_in(default_roots(root), _FMNIST_SUBDIRS)}. Get them with `sudo apt-get install "
            "dataset-fashion-mnist` (installs /usr/share/datasets/fashion-mnist), or download the four files from "
            "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into a directory and pass root=DIR or set "
            f"{ENV_VAR}=DIR, or pass download=True with torchvision installed. Without any files, use 'digits'."
        )
    img_stem, lbl_stem = _FMNIST_FILES[split]
    images = read_idx(_idx_file(d, img_stem))
    labels = read_idx(_idx_file(d, lbl_stem))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{d}: Fashion-MNIST {split} images have shape {images.shape} and labels {labels.shape}; "
            "expected (N, 28, 28) and (N,)"
        )
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    return ImageDataset(
        "fashion_mnist",
        torch.from_numpy(images).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        10,
    )


# ----------------------------------------------------------------------------------------------------------------
# scikit-learn digits


def _digits_split(targets: np.ndarray, split: str) -> np.ndarray:
    """Indices of the fixed stratified split: per class, every 5th occurrence (1-based) is test."""
    occurrence = np.zeros_like(targets)
    counts: dict[int, int] = {}
    for i, t in enumerate(targets.tolist()):
        counts[t] = counts.get(t, 0) + 1
        occurrence[i] = counts[t]
    is_test = occurrence % 5 == 0
    return np.flatnonzero(is_test if split == "test" else ~is_test)


def load_digits(split: str = "train") -> ImageDataset:
    """scikit-learn's 8×8 digits, 1×8×8 uint8 (0..16 scaled to 0..255), fixed stratified 80/20 split."""
    _check_split("digits", split)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        raise DatasetNotFoundError(
            "the 'digits' data set comes with scikit-learn, which is not installed: `pip install scikit-learn`"
        ) from exc
    bunch = _sk_load_digits()
    targets = np.asarray(bunch.target, dtype=np.int64)
    idx = _digits_split(targets, split)
    images = np.rint(np.asarray(bunch.images, dtype=np.float64)[idx] * (255.0 / 16.0)).astype(np.uint8)
    return ImageDataset("digits", torch.from_numpy(images).unsqueeze(1), torch.from_numpy(targets[idx].copy()), 10)


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10/100 (python pickles)

_PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR batch holds (dicts, lists, strings, numbers, numpy arrays)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a CIFAR pickle: the file holds more than numpy arrays "
                "(corrupt or tampered); re-download it from https://www.cs.toronto.edu/~kriz/cifar.html"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):  # numpy >= 2 renamed numpy.core
            module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)


def _load_cifar_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        obj = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict (a CIFAR batch), got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


_CIFAR = {
    "cifar10": {
        "subdirs": ("cifar-10-batches-py", ""),
        "files": {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "label_key": "labels",
        "num_classes": 10,
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
    },
    "cifar100": {
        "subdirs": ("cifar-100-python", ""),
        "files": {"train": ("train",), "test": ("test",)},
        "label_key": "fine_labels",
        "num_classes": 100,
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
    },
}


def load_cifar(
    name: str = "cifar10", split: str = "train", root: str | os.PathLike | None = None, *, download: bool = False
) -> ImageDataset:
    """CIFAR-10 (``name="cifar10"``) or CIFAR-100 with its fine labels (``name="cifar100"``)."""
    if name not in _CIFAR:
        raise ValueError(f"load_cifar name must be 'cifar10' or 'cifar100'; got {name!r}")
    _check_split(name, split)
    spec = _CIFAR[name]
    needed = [f for files in spec["files"].values() for f in files]

    def complete(d: Path) -> bool:
        return all((d / f).is_file() for f in needed)

    d = _find_dir(default_roots(root), spec["subdirs"], complete)
    if d is None and download:
        _torchvision_download(name, _download_root(root))
        d = _find_dir([_download_root(root)], spec["subdirs"], complete)
    if d is None:
        raise DatasetNotFoundError(
            f"{name} python batches ({', '.join(needed)}) not found; looked in "
            f"{_looked_in(default_roots(root), spec['subdirs'])}. Download {spec['url']}, extract it so that "
            f"DIR/{spec['folder']}/ exists, and pass root=DIR or set {ENV_VAR}=DIR (or pass download=True with "
            "torchvision installed)."
        )
    images, labels = [], []
    for fname in spec["files"][split]:
        batch = _load_cifar_pickle(d / fname)
        if "data" not in batch or spec["label_key"] not in batch:
            raise ValueError(
                f"{d / fname}: a {name} batch needs keys 'data' and {spec['label_key']!r}; found {sorted(batch)}"
            )
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{d / fname}: 'data' has shape {data.shape}; expected (N, 3072) uint8 rows")
        lab = np.asarray(batch[spec["label_key"]], dtype=np.int64)
        if lab.shape != (data.shape[0],):
            raise ValueError(f"{d / fname}: {data.shape[0]} images but labels of shape {lab.shape}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    x = np.concatenate(images) if len(images) > 1 else np.ascontiguousarray(images[0])
    y = np.concatenate(labels) if len(labels) > 1 else labels[0]
    return ImageDataset(name, torch.from_numpy(x), torch.from_numpy(y), spec["num_classes"])


# ----------------------------------------------------------------------------------------------------------------
# STL-10 (binary)

_STL_SUBDIRS = ("stl10_binary", "")
_STL_FILES = {
    "train": ("train_X.bin", "train_y.bin"),
    "test": ("test_X.bin", "test_y.bin"),
    "unlabeled": ("unlabeled_X.bin", None),
}
_STL_SIDE = 96


def load_stl10(split: str = "train", root: str | os.PathLike | None = None, *, download: bool = False) -> ImageDataset:
    """STL-10 from ``stl10_binary/``: column-major 3×96×96 images, labels 1..10 → 0..9 (unlabeled: -1)."""
    _check_split("stl10", split)
    x_name, y_name = _STL_FILES[split]

    def complete(d: Path) -> bool:
        return (d / x_name).is_file() and (y_name is None or (d / y_name).is_file())

    d = _find_dir(default_roots(root), _STL_SUBDIRS, complete)
    if d is None and download:
        _torchvision_download("stl10", _download_root(root))
        d = _find_dir([_download_root(root)], _STL_SUBDIRS, complete)
    if d is None:
        files = x_name + (f", {y_name}" if y_name else "")
        raise DatasetNotFoundError(
            f"STL-10 {split} files ({files}) not found; looked in {_looked_in(default_roots(root), _STL_SUBDIRS)}. "
            "Download http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz, extract it so that "
            f"DIR/stl10_binary/ exists, and pass root=DIR or set {ENV_VAR}=DIR (or pass download=True with "
            "torchvision installed)."
        )
    per_image = 3 * _STL_SIDE * _STL_SIDE
    raw = np.fromfile(d / x_name, dtype=np.uint8)
    if raw.size % per_image:
        raise ValueError(
            f"{d / x_name}: {raw.size} bytes is not a whole number of 3x96x96 images; "
            "the file is truncated, re-download it"
        )
    # on disk each image is (C, W, H) in C order (it was written column-major); swap to (C, H, W)
    x = np.ascontiguousarray(raw.reshape(-1, 3, _STL_SIDE, _STL_SIDE).transpose(0, 1, 3, 2))
    if y_name is None:
        y = np.full(x.shape[0], -1, dtype=np.int64)
    else:
        y = np.fromfile(d / y_name, dtype=np.uint8).astype(np.int64)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{d}: {x.shape[0]} images in {x_name} but {y.shape[0]} labels in {y_name}")
        if y.size and (y.min() < 1 or y.max() > 10):
            raise ValueError(f"{d / y_name}: STL-10 labels must be 1..10; found {y.min()} .. {y.max()}")
        y -= 1
    return ImageDataset("stl10", torch.from_numpy(x), torch.from_numpy(y), 10)


# ----------------------------------------------------------------------------------------------------------------
# image folder

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _pair(size: int | Sequence[int] | None, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        hw = (size, size)
    else:
        hw = tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair of positive ints; got {size!r}")
    return hw  # type: ignore[return-value]


def load_folder(
    root: str | os.PathLike, split: str = "train", *, image_size: int | Sequence[int] | None = None
) -> ImageDataset:
    """Images in ``root[/split]/<class>/<file>``, classes = sorted sub-folder names (needs Pillow)."""
    if root is None:
        raise ValueError("the 'folder' data set needs root=DIR (a folder with one sub-folder of images per class)")
    hw = _pair(image_size, "image_size")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetNotFoundError(
            f"image folder {base} does not exist; pass root= a folder with one sub-folder per class"
        )
    d = base / split if (base / split).is_dir() else None
    if d is None:
        if split != "train":
            raise DatasetNotFoundError(
                f"{base} has no {split!r} sub-folder; a folder data set serves split 'train' from root itself, or "
                f"root/<split>/<class>/... for other splits"
            )
        d = base
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("the 'folder' data set reads images with Pillow: `pip install pillow`") from exc
    classes = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetNotFoundError(f"{d} has no class sub-folders; expected {d}/<class>/<image files>")
    files: list[tuple[Path, int]] = []
    for k, c in enumerate(classes):
        found = sorted(p for p in (d / c).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        files.extend((p, k) for p in found)
    if not files:
        raise DatasetNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {d}/<class>/")
    pil_images = []
    for p, _ in files:
        with Image.open(p) as im:
            im.load()
            pil_images.append(im.copy())
    gray = all(im.mode in _GRAY_MODES for im in pil_images)
    arrays = []
    first_size = None
    for (p, _), im in zip(files, pil_images):
        im = im.convert("L" if gray else "RGB")
        if hw is not None:
            if im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.BILINEAR)
        else:
            first_size = first_size or (im.size, p)
            if im.size != first_size[0]:
                raise ValueError(
                    f"images differ in size: {first_size[1]} is {first_size[0][0]}x{first_size[0][1]} (WxH) but {p} is "
                    f"{im.size[0]}x{im.size[1]}; pass image_size=(H, W) to resize them all"
                )
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if gray else a.transpose(2, 0, 1))
    x = np.stack(arrays)
    y = np.array([k for _, k in files], dtype=np.int64)
    return ImageDataset("folder", torch.from_numpy(x), torch.from_numpy(y), len(classes))


# ----------------------------------------------------------------------------------------------------------------
# synthetic


def synthetic_dataset(
    num_samples: int = 2048,
    channels: int = 3,
    height: int = 32,
    width: int = 32,
    num_classes: int = 10,
    *,
    split: str = "train",
    data_seed: int = 0,
) -> ImageDataset:
    """Seeded, learnable images for speed runs: class ``k`` is a sinusoidal grating.

    Class ``k`` of ``K`` has orientation ``θ_k = (π/2)·k/K`` (a quarter turn, so that a horizontal flip, which maps
    θ to π − θ, never turns one class into another), ``2 + k mod 4`` cycles across the image and, for 3 channels,
    a class colour ``w_kc = 0.6 + 0.4·cos(2π(k/K + c/3))``. Each image has a random phase, ±2° orientation jitter,
    contrast in [0.6, 1] and Gaussian pixel noise (σ = 0.08). With the random phase, raw grayscale pixels separate
    the classes poorly (nearest class mean: about 50 % for 10 classes) while phase-invariant features (Fourier
    magnitudes) separate them perfectly, so an encoder has something to learn (colour alone is a cue for 3
    channels). Labels are balanced
    (``i mod K``, then shuffled). The same arguments give the same tensors; ``train`` and ``test`` are drawn
    from different streams of the same ``data_seed``.
    """
    sizes = dict(num_samples=num_samples, channels=channels, height=height, width=width, num_classes=num_classes)
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"synthetic {name} must be a positive int; got {v!r}")
    _check_split("synthetic", split)
    if isinstance(data_seed, bool) or not isinstance(data_seed, int):
        raise ValueError(f"synthetic data_seed must be an int; got {data_seed!r}")
    g = torch.Generator().manual_seed(data_seed * 2 + SPLITS["synthetic"].index(split))
    labels = torch.arange(num_samples, dtype=torch.int64) % num_classes
    labels = labels[torch.randperm(num_samples, generator=g)]
    k = labels.double()
    jitter = math.radians(2.0) * torch.randn(num_samples, generator=g, dtype=torch.float64)
    theta = (math.pi / 2) * k / num_classes + jitter
    freq = 2.0 + (labels % 4).double()
    phase = 2 * math.pi * torch.rand(num_samples, generator=g, dtype=torch.float64)
    contrast = 0.6 + 0.4 * torch.rand(num_samples, generator=g, dtype=torch.float64)
    if channels == 3:
        c = torch.arange(3, dtype=torch.float64)
        colour = 0.6 + 0.4 * torch.cos(2 * math.pi * (k[:, None] / num_classes + c[None, :] / 3))
    else:
        colour = torch.ones(num_samples, channels, dtype=torch.float64)
    yy = torch.arange(height, dtype=torch.float64)[:, None] / height
    xx = torch.arange(width, dtype=torch.float64)[None, :] / width
    out = torch.empty(num_samples, channels, height, width, dtype=torch.uint8)
    chunk = max(1, 2**22 // (channels * height * width))
    for s in range(0, num_samples, chunk):
        sl = slice(s, min(s + chunk, num_samples))
        t = theta[sl, None, None]
        arg = 2 * math.pi * freq[sl, None, None] * (xx * torch.cos(t) + yy * torch.sin(t)) + phase[sl, None, None]
        wave = 0.5 + 0.5 * contrast[sl, None, None] * torch.cos(arg)  # (n, H, W) in [0, 1]
        img = wave[:, None] * colour[sl, :, None, None]
        img = img + 0.08 * torch.randn(img.shape, generator=g, dtype=torch.float64)
        out[sl] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageDataset("synthetic", out, labels, num_classes)


# ----------------------------------------------------------------------------------------------------------------
# subsets, dispatch


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS[name]:
        raise ValueError(f"{name} has splits {SPLITS[name]}; got split={split!r}")


def _check_fraction(fraction: float) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
        raise ValueError(f"fraction must be a number in (0, 1]; got {fraction!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1] (1 = the whole split); got {fraction}")
    return float(fraction)


def class_balanced_subset(labels: Tensor, fraction: float, seed: int = 0) -> Tensor:
    """Sorted indices of a seeded, class-balanced subset: per class ``max(1, floor(fraction * n_c + 0.5))`` items.

    Labels ``-1`` (unlabeled) form one group. ``fraction`` in (0, 1], else ``ValueError``.
    """
    fraction = _check_fraction(fraction)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int; got {seed!r}")
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D; got shape {tuple(labels.shape)}")
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in torch.unique(labels).tolist():  # sorted, so the draw order does not depend on the data order
        idx = torch.nonzero(labels == c).flatten()
        k = max(1, int(math.floor(fraction * idx.numel() + 0.5)))
        picked.append(idx[torch.randperm(idx.numel(), generator=g)[:k]])
    if not picked:
        return torch.zeros(0, dtype=torch.int64)
    return torch.sort(torch.cat(picked)).values


#: the largest ``pad`` of :func:`load_fashion_mnist` (28 + 2·64 = 156 px)
MAX_PAD = 64

#: the keyword options load_dataset accepts per data set (--data-option NAME=VALUE)
DATASET_OPTIONS = {
    "fashion_mnist": {"download", "pad"},
    "digits": set(),
    "cifar10": {"download"},
    "cifar100": {"download"},
    "stl10": {"download"},
    "folder": {"image_size"},
    "synthetic": {"num_samples", "channels", "height", "width", "num_classes", "data_seed"},
}


def load_dataset(
    name: str,
    split: str = "train",
    root: str | None = None,
    fraction: float = 1.0,
    seed: int = 0,
    **options,
) -> ImageDataset:
    """Load one split of a data set in :data:`DATASETS`, optionally a class-balanced ``fraction`` of it.

    ``options`` per data set: ``download=True`` (fashion_mnist, cifar10, cifar100, stl10; needs torchvision and the
    network), ``pad=`` (fashion_mnist: pixels of background on every side; 2 gives 32×32), ``image_size=`` (folder), ``num_samples``, ``channels``, ``height``, ``width``, ``num_classes``,
    ``data_seed`` (synthetic). ``seed`` only chooses the ``fraction`` subset.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    fraction = _check_fraction(fraction)
    unknown = set(options) - DATASET_OPTIONS[name]
    if unknown:
        allowed = ", ".join(sorted(DATASET_OPTIONS[name])) or "none"
        raise TypeError(f"load_dataset({name!r}) got unexpected option(s) {sorted(unknown)}; it takes: {allowed}")
    if name == "fashion_mnist":
        ds = load_fashion_mnist(split, root, **options)
    elif name == "digits":
        ds = load_digits(split)
    elif name in ("cifar10", "cifar100"):
        ds = load_cifar(name, split, root, **options)
    elif name == "stl10":
        ds = load_stl10(split, root, **options)
    elif name == "folder":
        ds = load_folder(root, split, **options)
    else:
        ds = synthetic_dataset(split=split, **options)
    if fraction < 1.0:
        ds = ds.subset(class_balanced_subset(ds.labels, fraction, seed))
    return ds


def default_dataset() -> str:
    """``"fashion_mnist"`` when its idx files are found in the default places, else ``"digits"``."""
    return "fashion_mnist" if _fmnist_dir(None) is not None else "digits"
