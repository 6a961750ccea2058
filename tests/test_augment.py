"""Tests of sslbench.training.augment: shapes, dtypes, devices, independence of views, seeding, normalisation, the
semantics of single ops against references written here, and bad inputs, for both backends (``torch``, and
``kornia`` where it is installed). The torch backend's own ops are tested in tests/test_fastaug.py."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from sslbench.training.augment import (
    DATASET_STATS,
    PRESETS,
    AugmentConfig,
    ViewAugment,
    build_augment,
    preset_config,
    resolve_preset,
)

HAVE_KORNIA = importlib.util.find_spec("kornia") is not None
needs_kornia = pytest.mark.skipif(not HAVE_KORNIA, reason="kornia is not installed")
BACKEND_PARAMS = ["torch", pytest.param("kornia", marks=needs_kornia)]
backends = pytest.mark.parametrize("backend", BACKEND_PARAMS)

PRESET_SHAPES = [
    ("cifar", (3, 32, 32)),
    ("stl10", (3, 40, 40)),  # the stl10/imagenet recipes at a small size, to keep the test fast
    ("imagenet", (3, 48, 48)),
    ("mnist", (1, 28, 28)),
    ("digits", (1, 8, 8)),
    ("none", (3, 16, 16)),
    ("auto", (1, 12, 12)),
]

# everything off: the pipeline is empty
PLAIN = dict(crop_scale=None, affine_p=0.0, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)


def images(shape, b=6, seed=0, dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, *shape), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


def reference_normalize(x01: torch.Tensor, mean, std) -> torch.Tensor:
    out = torch.empty_like(x01, dtype=torch.float64)
    for c in range(x01.shape[1]):
        out[:, c] = (x01[:, c].double() - mean[c]) / std[c]
    return out


@pytest.mark.parametrize("preset,shape", PRESET_SHAPES)
@pytest.mark.parametrize("views", [1, 2, 3])
@backends
def test_shapes_dtype_range(preset, shape, views, backend):
    aug = build_augment(shape, preset, backend=backend)
    x = images(shape, b=5)
    out = aug(x, views, seed=1)
    assert out.shape == (views, 5, *shape) and out.dtype == torch.float32 and out.device == x.device
    assert out.is_contiguous() and bool(torch.isfinite(out).all())
    # de-normalised values are pixel intensities in [0, 1]
    mean = torch.tensor(aug.config.mean).view(1, 1, -1, 1, 1)
    std = torch.tensor(aug.config.std).view(1, 1, -1, 1, 1)
    pix = out * std + mean
    assert pix.min() >= -1e-5 and pix.max() <= 1 + 1e-5


@pytest.mark.parametrize("preset,shape", [p for p in PRESET_SHAPES if p[0] != "none"])
@backends
def test_views_differ_and_parameters_are_per_sample(preset, shape, backend):
    aug = build_augment(shape, preset, backend=backend)
    x = images(shape, b=8)
    out = aug(x, 4, seed=2)
    for i in range(4):
        for j in range(i + 1, 4):
            differ = (out[i] - out[j]).flatten(1).abs().amax(1) > 1e-4
            assert differ.float().mean() >= 0.75, (i, j)
    # the same image repeated across the batch gets different parameters per sample
    same = x[:1].expand(8, *shape).contiguous()
    out = aug(same, 1, seed=3)[0]
    assert len({tuple(o.flatten()[:64].tolist()) for o in out}) >= 6


def test_none_preset_copies_and_normalises_exactly():
    shape = (3, 7, 5)
    aug = build_augment(shape, "none")
    x = images(shape, b=4)
    out = aug(x, 3)
    ref = reference_normalize(x.double() / 255, aug.config.mean, aug.config.std)
    for v in range(3):
        torch.testing.assert_close(out[v].double(), ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(aug.normalize(x).double(), ref, rtol=1e-6, atol=1e-6)
    # 'none' keeps the normalisation auto would pick (so evaluation matches training)
    assert aug.config.mean == preset_config("auto", shape).mean
    # a channel count without a preset normalises [0, 1] to [-1, 1]
    odd = build_augment((2, 4, 4), "none")
    x2 = images((2, 4, 4), b=3)
    torch.testing.assert_close(odd.normalize(x2), x2.float() / 255 * 2 - 1)


@pytest.mark.parametrize("preset,shape", [("cifar", (3, 32, 32)), ("mnist", (1, 28, 28)), ("digits", (1, 8, 8))])
def test_normalize_uses_dataset_statistics(preset, shape):
    aug = build_augment(shape, preset)
    stats = {"cifar": "cifar10", "mnist": "fashion_mnist", "digits": "digits"}[preset]
    x = images(shape, b=3)
    ref = reference_normalize(x.double() / 255, DATASET_STATS[stats]["mean"], DATASET_STATS[stats]["std"])
    torch.testing.assert_close(aug.normalize(x).double(), ref, rtol=1e-6, atol=1e-6)
    assert aug.normalize(x).dtype == torch.float32


@backends
def test_seed_reproduces_and_leaves_global_rng_alone(backend):
    aug = build_augment((3, 32, 32), "cifar", backend=backend)
    x = images((3, 32, 32), b=6)
    state = torch.get_rng_state()
    a = aug(x, 2, seed=123)
    assert torch.equal(torch.get_rng_state(), state)
    b = aug(x, 2, seed=123)
    c = aug(x, 2, seed=124)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(aug(x, 2, generator=g1), aug(x, 2, generator=g2))
    assert not torch.equal(aug(x, 2, generator=g1), aug(x, 2, generator=torch.Generator().manual_seed(6)))
    # without a seed the global generator drives it
    torch.manual_seed(9)
    d = aug(x, 2)
    torch.manual_seed(9)
    assert torch.equal(d, aug(x, 2))


@backends
def test_uint8_and_float_inputs_agree(backend):
    aug = build_augment((3, 32, 32), "cifar", backend=backend)
    x = images((3, 32, 32), b=4)
    torch.testing.assert_close(aug(x, 2, seed=7), aug(x.float() / 255, 2, seed=7), rtol=0, atol=1e-5)
    torch.testing.assert_close(aug(x, 2, seed=7), aug(x.double() / 255, 2, seed=7), rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset,shape", [("mnist", (1, 28, 28)), ("digits", (1, 8, 8)), ("auto", (1, 20, 20))])
@backends
def test_grayscale_keeps_one_channel(preset, shape, backend):
    out = build_augment(shape, preset, backend=backend)(images(shape, b=3), 2)
    assert out.shape[2] == 1


def test_auto_resolution():
    assert resolve_preset((1, 28, 28)) == "mnist"
    assert resolve_preset((1, 8, 8)) == "digits"
    assert resolve_preset((3, 32, 32)) == "cifar"
    assert resolve_preset((3, 96, 96)) == "stl10"
    assert resolve_preset((3, 224, 224)) == "imagenet"
    assert resolve_preset((3, 32, 32), "mnist") == "mnist"
    with pytest.raises(ValueError, match="channels"):
        resolve_preset((2, 32, 32))
    assert build_augment((3, 96, 96)).preset == "stl10"


@needs_kornia
def test_preset_recipes():
    ops = lambda p, s: [type(m).__name__ for m in build_augment(s, p, backend="kornia").ops or []]  # noqa: E731
    colour = ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale"]
    assert ops("cifar", (3, 32, 32)) == colour + ["RandomSolarize"]
    assert ops("imagenet", (3, 224, 224)) == colour + ["RandomGaussianBlur", "RandomSolarize"]
    assert ops("mnist", (1, 28, 28)) == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomGaussianBlur"]
    assert ops("digits", (1, 8, 8)) == ["RandomResizedCrop", "RandomAffine"]  # no flip for digits
    assert ops("none", (3, 32, 32)) == []
    # one symmetric recipe: solo-learn's asymmetric (0, 0.2) solarisation and BYOL's (1.0, 0.1) blur averaged
    assert preset_config("cifar", (3, 32, 32)).solarize_p == pytest.approx((0.0 + 0.2) / 2)
    assert preset_config("imagenet", (3, 224, 224)).blur_p == 0.5  # about the mean of 1.0 and 0.1
    # blur kernel about 10 % of the side, odd
    assert build_augment((3, 224, 224), "imagenet").config.blur_kernel == 23
    assert build_augment((3, 96, 96), "stl10").config.blur_kernel == 9


# ---------------------------------------------------------------------------------------------------------------
# single ops against references


@backends
def test_flip_only_matches_reference(backend):
    shape = (3, 6, 5)
    aug = build_augment(shape, "none", **{**PLAIN, "flip_p": 1.0}, backend=backend)
    x = images(shape, b=4)
    out = aug(x, 2, seed=0)
    ref = reference_normalize(x.double().flip(-1) / 255, aug.config.mean, aug.config.std)
    for v in range(2):
        torch.testing.assert_close(out[v].double(), ref, rtol=1e-6, atol=1e-6)


@backends
def test_flip_is_independent_per_view(backend):
    shape = (1, 2, 2)
    aug = build_augment(shape, "none", **{**PLAIN, "flip_p": 0.5}, mean=(0.0,), std=(1.0,), backend=backend)
    x = torch.tensor([[[[0, 255], [0, 255]]]], dtype=torch.uint8).expand(2000, *shape).contiguous()
    out = aug(x, 2, seed=11)
    flipped = out[:, :, 0, 0, 0] > 0.5  # (V, B)
    assert 0.45 < flipped.float().mean() < 0.55
    agree = (flipped[0] == flipped[1]).float().mean()
    assert 0.45 < agree < 0.55  # independent views agree half of the time


@backends
def test_solarize_only_matches_reference(backend):
    shape = (3, 4, 4)
    aug = build_augment(shape, "none", **{**PLAIN, "solarize_p": 1.0}, mean=(0.0,), std=(1.0,), backend=backend)
    x = torch.linspace(0, 1, 48).view(1, 3, 4, 4)
    out = aug(x, 1, seed=0)[0]
    ref = torch.where(x >= 0.5, 1 - x, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@backends
def test_grayscale_only_matches_reference(backend):
    shape = (3, 3, 4)
    aug = build_augment(shape, "none", **{**PLAIN, "grayscale_p": 1.0}, mean=(0.0,), std=(1.0,), backend=backend)
    x = images(shape, b=3).double() / 255
    out = aug(x, 1, seed=0)[0].double()
    lum = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # ITU-R 601, as torchvision / PIL
    for c in range(3):
        torch.testing.assert_close(out[:, c], lum, rtol=0, atol=1e-3)


@backends
def test_full_area_crop_is_identity(backend):
    shape = (1, 9, 9)
    full = {**PLAIN, "crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0)}
    aug = build_augment(shape, "none", **full, mean=(0.0,), std=(1.0,), backend=backend)
    x = images(shape, b=3)
    torch.testing.assert_close(aug(x, 2, seed=0)[1], x.float() / 255, rtol=0, atol=1e-4)


@backends
def test_small_crop_zooms_in(backend):
    # a crop of ~25 % of the area upsampled to full size: a single-pixel checkerboard gets smoother
    shape = (1, 16, 16)
    aug = build_augment(shape, "none", **{**PLAIN, "crop_scale": (0.2, 0.3)}, mean=(0.0,), std=(1.0,), backend=backend)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    board = (((yy + xx) % 2) * 255).to(torch.uint8).expand(4, 1, 16, 16).contiguous()
    out = aug(board, 1, seed=0)[0]
    tv = lambda t: (t[..., 1:, :] - t[..., :-1, :]).abs().mean()  # noqa: E731
    assert tv(out) < 0.8 * tv(board.float() / 255)


# ---------------------------------------------------------------------------------------------------------------
# bad inputs


def test_bad_views():
    aug = build_augment((1, 8, 8), "digits")
    x = images((1, 8, 8))
    for v in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="views"):
            aug(x, v)


def test_bad_image_batches():
    aug = build_augment((3, 32, 32), "cifar")
    with pytest.raises(ValueError, match=r"images\[None\]"):
        aug(images((3, 32, 32))[0], 2)
    with pytest.raises(ValueError, match="built for images"):
        aug(images((1, 32, 32)), 2)
    with pytest.raises(ValueError, match="built for images"):
        aug(images((3, 28, 28)), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aug(images((3, 32, 32)).float(), 2)  # 0..255 floats
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aug(torch.full((1, 3, 32, 32), float("nan")), 2)
    with pytest.raises(TypeError, match="uint8"):
        aug(images((3, 32, 32)).int(), 2)
    with pytest.raises(TypeError, match="Tensor"):
        aug(images((3, 32, 32)).numpy(), 2)
    with pytest.raises(ValueError, match="empty"):
        aug(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), 2)
    with pytest.raises(ValueError, match="seed or generator"):
        aug(images((3, 32, 32)), 2, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="seed"):
        aug(images((3, 32, 32)), 2, seed=-1)


def test_bad_builds():
    with pytest.raises(ValueError, match="3-channel"):
        build_augment((1, 32, 32), "cifar")
    with pytest.raises(ValueError, match="1-channel"):
        build_augment((3, 28, 28), "mnist")
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        build_augment((3, 32, 32), "simclr")
    with pytest.raises(ValueError, match="image_shape"):
        build_augment((32, 32), "auto")
    with pytest.raises(TypeError, match="unknown override"):
        build_augment((3, 32, 32), "cifar", colour_p=0.5)
    with pytest.raises(ValueError, match="probability"):
        build_augment((3, 32, 32), "cifar", flip_p=1.5)
    with pytest.raises(ValueError, match="crop_scale"):
        build_augment((3, 32, 32), "cifar", crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="saturation"):
        build_augment((1, 28, 28), "mnist", jitter_p=0.8, saturation=0.2)
    with pytest.raises(ValueError, match="grayscale_p"):
        build_augment((1, 28, 28), "mnist", grayscale_p=0.2)
    with pytest.raises(ValueError, match="one per channel"):
        build_augment((3, 32, 32), "cifar", mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="positive"):
        build_augment((3, 32, 32), "cifar", std=(0.0,))
    with pytest.raises(ValueError, match="blur_kernel"):
        build_augment((3, 96, 96), "stl10", blur_kernel=4)
    # brightness/contrast jitter is fine on grayscale
    build_augment((1, 28, 28), "mnist", jitter_p=0.8, brightness=0.4, contrast=0.4)(images((1, 28, 28)), 2)


def test_overrides_and_direct_construction():
    aug = build_augment((3, 32, 32), "cifar", **DATASET_STATS["cifar100"], solarize_p=0.0)
    assert aug.config.mean == DATASET_STATS["cifar100"]["mean"] and aug.config.solarize_p == 0.0
    direct = ViewAugment((1, 4, 4), AugmentConfig(flip_p=1.0))
    assert direct.config.mean == (0.5,) and direct(images((1, 4, 4)), 2).shape == (2, 6, 1, 4, 4)
    assert set(PRESETS) == {"auto", "none", "cifar", "stl10", "imagenet", "mnist", "digits", "mnist_strong"}


def test_missing_kornia_names_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kornia", None)
    monkeypatch.setitem(sys.modules, "kornia.augmentation", None)
    with pytest.raises(ImportError, match="pip install kornia"):
        build_augment((3, 32, 32), "cifar", backend="kornia")
    out = build_augment((3, 32, 32), "none", backend="kornia")(images((3, 32, 32)), 2)  # needs no kornia
    assert out.shape == (2, 6, 3, 32, 32)
    aug = build_augment((3, 32, 32), "cifar")  # the default backend needs no kornia
    assert aug.backend == "torch" and aug(images((3, 32, 32)), 2).shape == (2, 6, 3, 32, 32)


def test_backend_names():
    assert build_augment((3, 32, 32), "cifar", backend="auto").backend == "torch"
    with pytest.raises(ValueError, match="backend 'pil' is unknown"):
        build_augment((3, 32, 32), "cifar", backend="pil")


@pytest.mark.gpu
@backends
def test_cuda_views_stay_on_device_and_reproduce(backend):
    aug = build_augment((3, 32, 32), "cifar", backend=backend).cuda()
    x = images((3, 32, 32), b=8).cuda()
    a = aug(x, 2, seed=4)
    assert a.device == x.device and a.shape == (2, 8, 3, 32, 32)
    assert torch.equal(a, aug(x, 2, seed=4))
    if backend == "kornia":  # kornia draws its parameters on the CPU; the torch backend on the images' device
        torch.testing.assert_close(a.cpu(), aug(x.cpu(), 2, seed=4), rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="built for images"):
        aug(images((1, 32, 32)).cuda(), 2)
