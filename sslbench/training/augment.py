"""Batched, on-device multi-view augmentations (V views per image, per-sample random parameters).

``build_augment(image_shape, preset)`` returns a :class:`ViewAugment`; ``aug(images, views)`` turns a batch
``(B, C, H, W)`` (``uint8`` 0..255 or float in [0, 1], on any device) into ``(V, B, C, H, W)`` float32 views,
normalised with the preset's data-set mean/std, on the images' device. ``aug.normalize(images)`` applies only the
normalisation (for evaluation). The V·B images go through the pipeline as one batch, so every view of every image
gets its own random parameters, and the work runs where the images are (the GPU in training), with no per-image
Python loop.

Backends (``build_augment(..., backend=...)``, :data:`BACKENDS`): ``"torch"`` (the default; ``"auto"`` picks it)
applies the random ops as a few batched tensor operations (:mod:`sslbench.training.fastaug`: crop, rotation and
flip as one affine grid; jitter, grayscale, blur and solarize with per-sample factors), needs nothing beyond torch
and does not synchronise the device; ``"kornia"`` applies them with ``kornia.augmentation``, imported lazily
(``import sslbench`` does not need kornia, and preset ``"none"`` works without it). Both draw the parameters from
the same distributions; their differences are listed in :mod:`sslbench.training.fastaug`. The torch backend is
the default because it was faster on every measured case (table below) and kornia is not installed on every GPU
machine.

Presets (all symmetric: one recipe for every view)
--------------------------------------------------
Order of the ops: resized crop → (affine) → flip → colour jitter → grayscale → blur → solarize →
normalise.

``cifar`` (3×32×32): the BYOL CIFAR recipe of solo-learn (``scripts/pretrain/cifar/augmentations/asymmetric.yaml``):
    crop scale (0.08, 1), ratio (3/4, 4/3); flip 0.5; colour jitter p 0.8 (brightness 0.4, contrast 0.4,
    saturation 0.2, hue 0.1); grayscale 0.2; no blur; solarize. solo-learn's two views differ only in the
    solarisation probability (0 and 0.2); with V views there is no "first" and "second" view, so every view
    uses the mean, **0.1**. Normalisation: CIFAR-10 statistics.
``stl10`` (3×96×96) and ``imagenet`` (3×224×224): the BYOL / Barlow Twins / VICReg ImageNet recipe made
    symmetric in the same way: crop (0.08, 1); flip 0.5; jitter p 0.8 (0.4, 0.4, 0.2, 0.1); grayscale 0.2;
    Gaussian blur **p 0.5** (the papers' 1.0 / 0.1), σ ∈ (0.1, 2) px, kernel ≈ 10 % of the side (odd: 9 for 96, 23
    for 224); solarize **p 0.1** (the papers' 0 / 0.2). Normalisation: solo-learn's STL-10 statistics / ImageNet's.
``mnist`` (1×28×28 grayscale, Fashion-MNIST and MNIST): crop scale (0.3, 1), ratio (3/4, 4/3); flip 0.5
    (Fashion-MNIST items are mostly left-right symmetric); no colour ops; light blur (p 0.2, σ ∈ (0.1, 1), 3×3).
    Normalisation: Fashion-MNIST training-set statistics (0.2860, 0.3530).
``mnist_strong`` (1×28×28): ``mnist`` with crop scale (0.25, 1) and brightness/contrast jitter 0.4 with p 0.8;
    ``sslbench train``'s default on Fashion-MNIST (:data:`sslbench.training.config.DEFAULT_AUGMENT_FOR`), chosen
    by the sweep in ``results/sweeps/cpu-default/`` (2.6 points of linear probe over ``mnist`` after 3 epochs).
``digits`` (1×8×8, scikit-learn digits): crop scale (0.5, 1), ratio (3/4, 4/3); small rotation (p 0.5, ±10°);
    no flip (digits are not flip-invariant); no colour, no blur (8 px). Normalisation: digits statistics.
``none``: no augmentation (the V views are copies), normalisation of the preset ``auto`` would pick (mean 0.5, std
    0.5 for a channel count no preset covers).
``auto``: 1 channel → ``digits`` when H·W ≤ 16·16, else ``mnist``; 3 channels → ``cifar`` up to 64 px, ``stl10``
    up to 128 px, else ``imagenet``.

Any field of :class:`AugmentConfig` can be overridden: ``build_augment((3, 32, 32), "cifar", solarize_p=0.2,
**DATASET_STATS["cifar100"])``.

Semantics and deliberate differences from the torchvision recipes
-----------------------------------------------------------------
* Colour jitter uses torchvision's formulas with factors drawn per sample (``kornia.augmentation.ColorJitter`` on
  the kornia backend), but the random *order* of the four adjustments is drawn once per batch, not per image as
  in torchvision.
* Solarisation inverts values ≥ 0.5 (``kornia.augmentation.RandomSolarize(0, 0)``), as PIL's ``solarize(128)``.
* The crop keeps the input size (H, W) as output size; the input must have exactly ``image_shape``.
* Reproducibility: both backends draw their parameters from torch's global generators (the torch backend on the
  images' device) and kornia takes no ``generator`` argument, so ``aug(x, views, seed=s)`` (or ``generator=g``,
  from which a seed is drawn) runs the pipeline inside ``torch.random.fork_rng`` with the CPU generator (and that
  of the images' CUDA device) seeded with ``s``; the global RNG state is restored afterwards. The same seed,
  device, backend and library versions give the same views. Without ``seed``/``generator`` the global RNG is used
  (seed it once with ``torch.manual_seed``).
* The views are computed under ``torch.no_grad()``. Float inputs are checked to lie in [0, 1] on the CPU only
  (on CUDA the check would synchronise the device every step).

Cost of the kornia backend (uint8 batch in, V = 2, minimum / median of 15 calls after warm-up; the torch
backend's, measured beside it in one process, are in docs/training-speed.md and from
``benchmarks/augment_speed.py``):

==========================  ===========================  ====================================
batch                       2-core CPU (torch 2.13 CPU)  H100 (torch 2.11+cu130, kornia 0.9)
==========================  ===========================  ====================================
256×3×32×32, ``cifar``      55 / 62 ms                   9 / 12 ms (1024 images: 8 / 11 ms)
256×1×28×28, ``mnist``      7 / 7 ms                     7 / 8 ms
256×1×8×8, ``digits``       3.5 / 3.6 ms                 7 / 8 ms
256×3×96×96, ``stl10``      –                            11 / 13 ms (1024 images: 19 / 21 ms)
256×3×224×224, ``imagenet`` –                            26 / 28 ms
==========================  ===========================  ====================================

On the CPU, colour jitter is about half of the ``cifar`` time and the crop a quarter (the crop's ``resample``
mode, one batched warp, is about 3× faster than kornia's default ``slice`` mode, used here for that reason). On
the GPU small batches are bound by kornia's per-op Python overhead, not by the arithmetic (1024 images cost what
256 do).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, fields, replace
from typing import Iterator

import torch
from torch import Tensor, nn

__all__ = [
    "PRESETS",
    "BACKENDS",
    "DATASET_STATS",
    "AugmentConfig",
    "ViewAugment",
    "build_augment",
    "preset_config",
    "resolve_preset",
    "resolve_backend",
]

PRESETS = ("auto", "none", "cifar", "stl10", "imagenet", "mnist", "digits", "mnist_strong")
#: who applies the random ops: "torch" (:mod:`sslbench.training.fastaug`, batched tensor ops) or "kornia";
#: "auto" is "torch" (faster on the measured CPU and the only one on a machine without kornia)
BACKENDS = ("auto", "torch", "kornia")

#: per-data-set normalisation statistics (of the 0..1 pixel values), usable as overrides of build_augment
DATASET_STATS: dict[str, dict[str, tuple[float, ...]]] = {
    # computed on the 60 000 training images of /usr/share/datasets/fashion-mnist
    "fashion_mnist": {"mean": (0.2860,), "std": (0.3530,)},
    "mnist": {"mean": (0.1307,), "std": (0.3081,)},
    # computed on all 1 797 images of sklearn's digits scaled 0..16 -> 0..255 (sslbench.training.data.load_digits)
    "digits": {"mean": (0.3053,), "std": (0.3759,)},
    # solo-learn's MEANS_N_STD (solo/data/pretrain_dataloader.py)
    "cifar10": {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616)},
    "cifar100": {"mean": (0.5071, 0.4865, 0.4409), "std": (0.2673, 0.2564, 0.2762)},
    "stl10": {"mean": (0.4914, 0.4823, 0.4466), "std": (0.247, 0.243, 0.261)},
    "imagenet": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
}


@dataclass(frozen=True)
class AugmentConfig:
    """Every knob of the pipeline; a probability of 0 (or ``crop_scale=None``) leaves that op out."""

    crop_scale: tuple[float, float] | None = None  # RandomResizedCrop area fraction; None = no crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    affine_p: float = 0.0
    affine_degrees: float = 0.0  # rotation in ±degrees
    affine_translate: float = 0.0  # fraction of the side
    flip_p: float = 0.0
    jitter_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    grayscale_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int | None = None  # None: odd, about 10 % of the smaller side, at least 3
    solarize_p: float = 0.0
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)


def _check_image_shape(image_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
        raise ValueError(f"image_shape must be (C, H, W) of positive ints, e.g. (3, 32, 32); got {image_shape!r}")
    return shape  # type: ignore[return-value]


def resolve_preset(image_shape: tuple[int, int, int], preset: str = "auto") -> str:
    """The preset ``auto`` picks for ``image_shape`` (or ``preset`` itself when it is not ``auto``)."""
    c, h, w = _check_image_shape(image_shape)
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {PRESETS}")
    if preset != "auto":
        return preset
    if c == 1:
        return "digits" if h * w <= 16 * 16 else "mnist"
    if c == 3:
        side = max(h, w)
        return "cifar" if side <= 64 else "stl10" if side <= 128 else "imagenet"
    raise ValueError(
        f"preset 'auto' covers 1-channel (grayscale) and 3-channel (RGB) images; got {c} channels. "
        "Use preset='none' with mean=/std= overrides, or a custom AugmentConfig."
    )


_COLOUR_RECIPE = dict(
    crop_scale=(0.08, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
    grayscale_p=0.2,
)
_PRESET_CHANNELS = {"cifar": 3, "stl10": 3, "imagenet": 3, "mnist": 1, "digits": 1, "mnist_strong": 1}


def preset_config(preset: str, image_shape: tuple[int, int, int]) -> AugmentConfig:
    """The :class:`AugmentConfig` of a preset for images of ``image_shape`` (see the module docstring)."""
    c, h, w = _check_image_shape(image_shape)
    preset = resolve_preset(image_shape, preset)
    need = _PRESET_CHANNELS.get(preset)
    if need is not None and c != need:
        hint = "'mnist' or 'digits'" if c == 1 else "'cifar', 'stl10' or 'imagenet'" if c == 3 else "'none'"
        raise ValueError(
            f"augmentation preset {preset!r} is for {need}-channel images but image_shape has {c} channels; "
            f"use preset {hint} (or 'auto')"
        )
    if preset == "cifar":
        return AugmentConfig(**_COLOUR_RECIPE, solarize_p=0.1, **DATASET_STATS["cifar10"])
    if preset in ("stl10", "imagenet"):
        return AugmentConfig(
            **_COLOUR_RECIPE, blur_p=0.5, blur_sigma=(0.1, 2.0), solarize_p=0.1, **DATASET_STATS[preset]
        )
    if preset == "mnist":
        return AugmentConfig(
            crop_scale=(0.3, 1.0), flip_p=0.5, blur_p=0.2, blur_sigma=(0.1, 1.0), blur_kernel=3,
            **DATASET_STATS["fashion_mnist"],
        )
    if preset == "mnist_strong":
        return replace(preset_config("mnist", image_shape), crop_scale=(0.25, 1.0), jitter_p=0.8, brightness=0.4,
                       contrast=0.4)
    if preset == "digits":
        return AugmentConfig(crop_scale=(0.5, 1.0), affine_p=0.5, affine_degrees=10.0, **DATASET_STATS["digits"])
    # none: the normalisation of the preset auto would pick, else [0, 1] -> [-1, 1]
    try:
        base = preset_config("auto", image_shape)
    except ValueError:
        return AugmentConfig(mean=(0.5,) * c, std=(0.5,) * c)
    return AugmentConfig(mean=base.mean, std=base.std)


def resolve_backend(backend: str = "auto") -> str:
    """The backend ``backend`` names (``"auto"`` → ``"torch"``); an unknown name is a ``ValueError``."""
    if backend not in BACKENDS:
        raise ValueError(f"augmentation backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    return "torch" if backend == "auto" else backend


def build_augment(image_shape: tuple[int, int, int], preset: str = "auto", *, backend: str = "auto",
                  **overrides) -> "ViewAugment":
    """A :class:`ViewAugment` for images of ``image_shape`` (C, H, W) from a preset, with fields overridden,
    whose random ops run on ``backend`` (:data:`BACKENDS`)."""
    shape = _check_image_shape(image_shape)
    resolved = resolve_preset(shape, preset)
    names = {f.name for f in fields(AugmentConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"build_augment got unknown override(s) {unknown}; valid ones: {sorted(names)}")
    config = replace(preset_config(resolved, shape), **overrides)
    return ViewAugment(shape, config, preset=resolved, backend=backend)


# ----------------------------------------------------------------------------------------------------------------


def _prob(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} is a probability and must be in [0, 1]; got {v!r}")
    return float(v)


def _nonneg(name: str, v, upper: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= upper:
        raise ValueError(f"{name} must be a number in [0, {upper}]; got {v!r}")
    return float(v)


def _range(name: str, v, lo: float, hi: float, lo_open: bool = True) -> tuple[float, float]:
    try:
        a, b = (float(t) for t in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high); got {v!r}") from None
    ok_lo = a > lo if lo_open else a >= lo
    if not (ok_lo and a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} {'<' if lo_open else '<='} low <= high <= {hi}; got {v!r}")
    return a, b


def _default_kernel(h: int, w: int) -> int:
    k = max(3, int(0.1 * min(h, w)))
    return k if k % 2 else k + 1


class ViewAugment(nn.Module):
    """``aug(images (B, C, H, W), views=V) -> (V, B, C, H, W)`` float32 normalised views (see the module docstring).

    Built by :func:`build_augment`; ``config`` is the :class:`AugmentConfig`, ``preset`` the preset's name,
    ``backend`` the backend that applies the random ops (``"torch"`` or ``"kornia"``).
    """

    def __init__(
        self, image_shape: tuple[int, int, int], config: AugmentConfig | None = None, *, preset: str = "custom",
        backend: str = "auto",
    ):
        super().__init__()
        c, h, w = _check_image_shape(image_shape)
        cfg = config if config is not None else AugmentConfig(mean=(0.5,) * c, std=(0.5,) * c)
        if not isinstance(cfg, AugmentConfig):
            raise TypeError(f"config must be an AugmentConfig; got {type(cfg).__name__}")
        self.image_shape = (c, h, w)
        self.preset = preset
        self.backend = resolve_backend(backend)

        crop_scale = None if cfg.crop_scale is None else _range("crop_scale", cfg.crop_scale, 0.0, 1.0)
        crop_ratio = _range("crop_ratio", cfg.crop_ratio, 0.0, math.inf)
        prob_names = ("affine_p", "flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")
        probs = {n: _prob(n, getattr(cfg, n)) for n in prob_names}
        degrees = _nonneg("affine_degrees", cfg.affine_degrees, 180.0)
        translate = _nonneg("affine_translate", cfg.affine_translate, 1.0)
        jitter = {n: _nonneg(n, getattr(cfg, n)) for n in ("brightness", "contrast", "saturation")}
        jitter["hue"] = _nonneg("hue", cfg.hue, 0.5)
        blur_sigma = _range("blur_sigma", cfg.blur_sigma, 0.0, math.inf)
        kernel = cfg.blur_kernel if cfg.blur_kernel is not None else _default_kernel(h, w)
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 3 or kernel % 2 == 0:
            raise ValueError(
                f"blur_kernel must be an odd int >= 3 (or None for about 10 % of the side); got {kernel!r}"
            )
        if c != 3:
            colour = [n for n, on in (("saturation", probs["jitter_p"] and jitter["saturation"]),
                                      ("hue", probs["jitter_p"] and jitter["hue"]),
                                      ("grayscale_p", probs["grayscale_p"])) if on]
            if colour:
                raise ValueError(
                    f"{', '.join(colour)} need 3-channel (RGB) images; image_shape has {c} channel(s). "
                    "Set them to 0 (brightness and contrast jitter work on any channel count)"
                )
        mean = tuple(float(v) for v in cfg.mean)
        std = tuple(float(v) for v in cfg.std)
        if len(mean) == 1:
            mean = mean * c
        if len(std) == 1:
            std = std * c
        if len(mean) != c or len(std) != c:
            raise ValueError(f"mean and std need 1 or {c} values (one per channel); got {cfg.mean!r} and {cfg.std!r}")
        if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
            raise ValueError(f"mean must be finite and std finite and positive; got mean={cfg.mean!r}, std={cfg.std!r}")
        self.config = replace(
            cfg, crop_scale=crop_scale, crop_ratio=crop_ratio, blur_sigma=blur_sigma, blur_kernel=kernel,
            affine_degrees=degrees, affine_translate=translate, mean=mean, std=std, **probs, **jitter,
        )
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
        self.ops = self._build_ops()

    # -- pipeline --------------------------------------------------------------------------------------------------

    def _build_ops(self) -> nn.Module | None:
        """The random ops (None when the config has none)."""
        cfg = self.config
        wanted = (
            cfg.crop_scale is not None or cfg.affine_p > 0 or cfg.flip_p > 0 or cfg.jitter_p > 0
            or cfg.grayscale_p > 0 or cfg.blur_p > 0 or cfg.solarize_p > 0
        )
        if not wanted:
            return None
        if self.backend == "torch":
            from sslbench.training.fastaug import TensorAugment

            return TensorAugment(self.image_shape, cfg)
        return self._kornia_ops()

    def _kornia_ops(self) -> nn.Sequential:
        cfg = self.config
        _, h, w = self.image_shape
        try:
            import kornia.augmentation as K
        except ImportError as exc:
            raise ImportError(
                f"the augmentation preset {self.preset!r} uses kornia, which is not installed: `pip install kornia` "
                "(or `pip install sslbench[data]`); backend='torch' and preset='none' work without it"
            ) from exc
        ops: list[nn.Module] = []
        if cfg.crop_scale is not None:
            # 'resample' warps the whole batch at once (the default 'slice' crops image by image)
            ops.append(
                K.RandomResizedCrop((h, w), scale=cfg.crop_scale, ratio=cfg.crop_ratio, cropping_mode="resample")
            )
        if cfg.affine_p > 0:
            t = (cfg.affine_translate, cfg.affine_translate) if cfg.affine_translate > 0 else None
            ops.append(K.RandomAffine(cfg.affine_degrees, translate=t, p=cfg.affine_p))
        if cfg.flip_p > 0:
            ops.append(K.RandomHorizontalFlip(p=cfg.flip_p))
        if cfg.jitter_p > 0 and any((cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)):
            ops.append(K.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, p=cfg.jitter_p))
        if cfg.grayscale_p > 0:
            ops.append(K.RandomGrayscale(p=cfg.grayscale_p))
        if cfg.blur_p > 0:
            ops.append(K.RandomGaussianBlur(cfg.blur_kernel, cfg.blur_sigma, p=cfg.blur_p))
        if cfg.solarize_p > 0:
            ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=cfg.solarize_p))
        return nn.Sequential(*ops)

    def extra_repr(self) -> str:
        return f"preset={self.preset!r}, image_shape={self.image_shape}, backend={self.backend!r}"

    # -- inputs ----------------------------------------------------------------------------------------------------

    def _to_unit(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor):
            raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W); got {type(images).__name__}")
        if images.dim() != 4:
            hint = " (for one image use images[None])" if images.dim() == 3 else ""
            raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}{hint}")
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"this augmentation was built for images of shape (C, H, W) = {self.image_shape} (preset "
                f"{self.preset!r}); got a batch of {tuple(images.shape[1:])}. Build one with "
                f"build_augment({tuple(images.shape[1:])}, ...)"
            )
        if images.shape[0] == 0:
            raise ValueError("images is an empty batch (B = 0)")
        if images.dtype == torch.uint8:
            return images.to(torch.float32).div_(255.0)
        if not images.is_floating_point():
            raise TypeError(f"images must be uint8 (0..255) or floating point in [0, 1]; got {images.dtype}")
        x = images.detach().to(torch.float32)
        if x.device.type == "cpu":
            lo, hi = torch.aminmax(x)
            if not (lo >= 0 and hi <= 1):  # also catches NaN
                raise ValueError(
                    f"float images must lie in [0, 1]; got values in [{float(lo):.4g}, {float(hi):.4g}]. "
                    "Pass uint8 images or divide by 255"
                )
        return x

    @staticmethod
    def _check_views(views) -> int:
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ValueError(f"views must be an int >= 1 (2 for a two-view loss); got {views!r}")
        return views

    # -- calls -----------------------------------------------------------------------------------------------------

    def _normalize_unit(self, x: Tensor) -> Tensor:
        mean = self.mean.to(device=x.device)
        std = self.std.to(device=x.device)
        return (x - mean) / std

    @torch.no_grad()
    def normalize(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` → the same, float32, normalised, not augmented (for evaluation)."""
        return self._normalize_unit(self._to_unit(images))

    @torch.no_grad()
    def forward(
        self, images: Tensor, views: int = 2, *, seed: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """``images (B, C, H, W)`` → ``(views, B, C, H, W)`` float32, independent random parameters per image and
        view; ``seed`` or ``generator`` makes the call reproducible without touching the global RNG state."""
        views = self._check_views(views)
        x = self._to_unit(images)
        if seed is not None and generator is not None:
            raise ValueError("pass seed or generator, not both")
        if generator is not None:
            if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
                raise TypeError("generator must be a CPU torch.Generator (a seed for the pipeline is drawn from it)")
            seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
            raise ValueError(f"seed must be an int in [0, 2**64); got {seed!r}")
        b = x.shape[0]
        x = x.unsqueeze(0).expand(views, *x.shape).reshape(views * b, *self.image_shape)
        if self.ops is not None:
            with _seeded(seed, x.device):
                x = self.ops(x)
        return self._normalize_unit(x).reshape(views, b, *self.image_shape).contiguous()


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run with the CPU (and ``device``'s CUDA) generator seeded, restoring the global states after; no-op for None."""
    if seed is None:
        yield
        return
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield
