"""Backbones, projector and predictor heads, and the EMA target network.

Everything is plain ``torch.nn`` (torchvision is not needed).

Backbones (:func:`build_backbone`, each with an ``out_dim`` attribute and output shape (B, out_dim))
--------------------------------------------------------------------------------------------------------
* ``"convnet"``: a small convnet for 28×28 images (Fashion-MNIST), which also works on the 8×8 digits:
  three blocks Conv3×3(bias=False)-BN-ReLU with 32, 64 and 128 channels and strides 2, 2, 1, then global
  average pooling → ``out_dim = 128``. 92,896 parameters and 4.6M multiply-adds per 28×28 image. Measured (a
  full Barlow Twins step: backbone + projector 512-128 + loss + SGD, batch 256, V = 2): about 1,780 view-images/s
  on ONE core of the shared 2-core development machine under load, i.e. a Fashion-MNIST epoch (60k images ×
  2 views) in about 68 s; on an H100 about 72k view-images/s in float32 and 107k under bf16 autocast.
* ``"convnet_pool"``: the same three blocks and widths at stride 1, with a 2×2 max-pool after the first two (the
  classic small MNIST convnet): on 28×28 the convolutions see 28×28, 14×14 and 7×7 maps, 7.5M multiply-adds per
  image and the same 92,896 parameters. At initialisation its features are about 3 points better on a linear probe
  than ``convnet``'s, and it is ``sslbench train``'s default on Fashion-MNIST
  (:data:`sslbench.training.config.DEFAULT_BACKBONE_FOR`; the sweep in ``results/sweeps/cpu-default/``); a step
  costs about 2.3× ``convnet``'s on the CPU.
* ``"convnet_pool_2x2"``: ``convnet_pool`` with a 2×2 average pool at the end instead of the global one, so the
  features are the four quadrants' means of the last 7×7 map (``out_dim = 4 × 128 = 512``): the same weights and
  multiply-adds, a coarse spatial layout kept in the features. On Fashion-MNIST that lifts the linear probe by
  about 4.5 points at initialisation and 3.4 after pretraining over ``convnet_pool``
  (``results/sweeps/cpu-default/``), which made it ``sslbench train``'s default there.
* ``"resnet18_cifar"``: ResNet-18 (He et al. 2016, BasicBlock, [2, 2, 2, 2]) with the CIFAR stem used by
  solo-learn, lightly and the SSL papers' CIFAR experiments: a 3×3 stride-1 convolution and no max-pool.
  11,168,832 parameters without the classifier (the ``fc`` layer is left out: the backbone returns the pooled
  512-d features).
* ``"resnet18"``: the ImageNet ResNet-18 (7×7 stride-2 stem + 3×3 stride-2 max-pool), 11,176,512 parameters
  without ``fc`` (torchvision's count less its 513,000 classifier parameters), for 96 px and larger (STL-10).
* ``"auto"``: ``convnet`` below 32 px, ``resnet18_cifar`` from 32 to 95 px, ``resnet18`` from 96 px.

The ResNets use torchvision's module names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``,
...): torchvision's ``resnet18`` state dict without ``fc`` loads strictly into ``"resnet18"`` and gives the same
outputs (tests/test_models.py checks it where torchvision imports).

Initialisation as torchvision: Kaiming-normal (fan_out, ReLU) convolutions, BN weight 1 and bias 0;
``zero_init_residual=True`` zeroes the last BN of every residual branch (off by default, as torchvision).
The backbones run in the ``channels_last`` memory format by default (weights converted at construction, inputs in
``forward``): 2-4× faster forward + backward on the CPU (oneDNN) and the format cuDNN prefers under bf16 autocast.
``channels_last=False`` keeps the default NCHW layout; outputs agree up to floating-point rounding.

Heads
-----
* :class:`Projector` from a width spec ``"2048-2048-2048"`` (the output widths of the successive layers):
  Linear(bias=False)-BN-ReLU for the hidden layers and a final Linear(bias=False) without BN or ReLU, as the
  official Barlow Twins (facebookresearch/barlowtwins ``main.py``) and VICReg (``main_vicreg.py``) projectors.
  ``last_bn=True`` appends BatchNorm1d(affine=False) (MoCo v3 style), ``last_bias=True`` gives the final Linear a
  bias. The spec ``""`` or ``"none"`` is the identity.
* :class:`Predictor`: BYOL's predictor Linear-BN-ReLU-Linear (with biases, as BYOL's MLP), ``dim → hidden → dim``.

EMA target (:class:`EMATarget`)
-------------------------------
A deep copy of the online module with ``requires_grad=False``. After every optimiser step,
``update(step, total_steps)`` sets ξ ← τ·ξ + (1 − τ)·θ for every parameter and floating-point buffer (integer
buffers such as BN's ``num_batches_tracked`` are copied), with BYOL's cosine schedule (Grill et al. 2020, §3.2)
τ_k = τ_final − (τ_final − τ_base)·(cos(π·k/K) + 1)/2, which is 1 − (1 − τ_base)(cos(πk/K) + 1)/2 for the
default τ_final = 1; ``schedule="constant"`` keeps τ = τ_base. Calling the target runs the copy under
``torch.no_grad()`` in whatever train/eval mode it is in (BYOL runs its target in training mode, with batch
statistics, which is the mode the copy inherits from an online network in training mode).

Deliberate differences: buffers are averaged like parameters (timm's ModelEmaV2 does the same; BYOL's code
averages parameters only and the running statistics only matter in eval mode).
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "BACKBONES",
    "MIN_IMAGE_SIZE",
    "build_backbone",
    "auto_backbone",
    "ConvNet",
    "BasicBlock",
    "ResNet",
    "parse_widths",
    "Projector",
    "Predictor",
    "EMATarget",
    "unwrap",
    "count_parameters",
]

BACKBONES = ("auto", "convnet", "convnet_pool", "convnet_pool_2x2", "resnet18_cifar", "resnet18")
#: the smallest image side each backbone accepts (its last feature map is then at least 1×1 / 2×2)
MIN_IMAGE_SIZE = {"convnet": 8, "convnet_pool": 8, "convnet_pool_2x2": 8, "resnet18_cifar": 16, "resnet18": 32}
EMA_SCHEDULES = ("cosine", "constant")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _set_channels_last(module: nn.Module, channels_last: bool) -> None:
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last={channels_last!r} must be True or False")
    module.channels_last = channels_last
    if channels_last:
        module.to(memory_format=torch.channels_last)


def _init_conv_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------------------------------
class ConvNet(nn.Module):
    """Three Conv3×3(bias=False)-BN-ReLU blocks, then global average pooling.

    ``downsample="stride"`` (backbone ``"convnet"``): strides 2, 2, 1. On 28×28 the feature maps are 14×14×32,
    7×7×64, 7×7×128 (4.6M multiply-adds per grayscale image); on 8×8 they are 4×4, 2×2, 2×2. Strided convolutions
    instead of a full-resolution first block and max-pools: 2-4× faster on the CPU for the same widths.
    ``downsample="maxpool"`` (backbone ``"convnet_pool"``): stride 1 and a 2×2 max-pool after the first two blocks,
    the classic small MNIST convnet. On 28×28 the convolutions see 28×28, 14×14 and 7×7 (7.5M multiply-adds, the same 92,896 parameters); on 8×8, 8×8, 4×4, 2×2.

    ``out_pool=k`` (backbone ``"convnet_pool_2x2"``: k = 2 with ``downsample="maxpool"``) ends with a k×k adaptive
    average pool instead of the global one and flattens it channel-major (the k·k cells of channel 0 first).

    Input (B, C, H, W) with H, W ≥ 8; output (B, ``out_dim``) with ``out_dim = widths[-1] · out_pool²``.
    """

    DOWNSAMPLE = ("stride", "maxpool")

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128), *, downsample: str = "stride",
                 out_pool: int = 1, channels_last: bool = True):
        super().__init__()
        widths = tuple(widths)
        if len(widths) != 3 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths={widths!r} must be three positive integers, e.g. (32, 64, 128)")
        if downsample not in self.DOWNSAMPLE:
            raise ValueError(f"downsample={downsample!r} is not allowed; choose 'stride' or 'maxpool'")
        if isinstance(out_pool, bool) or not isinstance(out_pool, int) or out_pool < 1:
            raise ValueError(f"out_pool={out_pool!r} must be a positive integer (1: global average pooling)")
        pool = downsample == "maxpool"
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            stride = 2 if i < 2 and not pool else 1
            layers += [nn.Conv2d(c, w, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True)]
            if pool and i < 2:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(out_pool)
        self.in_channels = in_channels
        self.downsample = downsample
        self.out_pool = out_pool
        self.out_dim = widths[-1] * out_pool * out_pool
        _init_conv_bn(self)
        _set_channels_last(self, channels_last)

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return torch.flatten(self.pool(self.features(x)), 1)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv3×3-BN-ReLU-conv3×3-BN plus the (1×1 conv + BN when the shape changes) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with BasicBlocks, without the classifier: (B, C, H, W) → (B, 512).

    ``stem="cifar"``: conv3×3 stride 1 + BN + ReLU, no max-pool (total down-sampling 8).
    ``stem="imagenet"``: conv7×7 stride 2 + BN + ReLU + max-pool 3×3 stride 2 (total down-sampling 32).
    """

    def __init__(self, in_channels: int = 3, stem: str = "cifar", blocks: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (64, 128, 256, 512), zero_init_residual: bool = False,
                 channels_last: bool = True):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem={stem!r} is not allowed; choose 'cifar' or 'imagenet'")
        w0 = widths[0]
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, w0, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, w0, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(w0)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        in_planes = w0
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(in_planes, w, stride)] + [BasicBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            in_planes = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.stem = stem
        self.in_channels = in_channels
        self.out_dim = in_planes
        _init_conv_bn(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)
        _set_channels_last(self, channels_last)

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _image_side(image_size) -> int:
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2:
            raise ValueError(f"image_size={image_size!r} must be an int or (height, width)")
        sides = [_image_side(s) for s in image_size]
        return min(sides)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size={image_size!r} must be a positive integer (the image side in pixels)")
    return image_size


def auto_backbone(image_size) -> str:
    """The backbone ``"auto"`` picks: convnet below 32 px, resnet18_cifar from 32 to 95 px, resnet18 from 96 px."""
    side = _image_side(image_size)
    if side < 32:
        return "convnet"
    if side < 96:
        return "resnet18_cifar"
    return "resnet18"


def build_backbone(name: str, in_channels: int, image_size, **kwargs) -> nn.Module:
    """The backbone ``name`` for images with ``in_channels`` channels and side ``image_size`` (int or (H, W)).

    The module maps (B, in_channels, H, W) to (B, ``out_dim``). ``kwargs`` go to the class (:class:`ConvNet`
    ``widths``, ``channels_last``; :class:`ResNet` ``zero_init_residual``, ``channels_last``). Raises
    ``ValueError`` for an unknown name, a bad channel count or an image smaller than the backbone accepts
    (:data:`MIN_IMAGE_SIZE`).
    """
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"backbone={name!r} is unknown; choose one of {', '.join(repr(b) for b in BACKBONES)}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels={in_channels!r} must be a positive integer (1 for grayscale, 3 for RGB)")
    side = _image_side(image_size)
    resolved = auto_backbone(side) if name == "auto" else name
    if side < MIN_IMAGE_SIZE[resolved]:
        fits = [b for b, m in MIN_IMAGE_SIZE.items() if side >= m]
        raise ValueError(
            f"backbone={resolved!r} needs images of at least {MIN_IMAGE_SIZE[resolved]}×{MIN_IMAGE_SIZE[resolved]} "
            f"pixels, got side {side}; use " + (f"backbone={fits[0]!r} or 'auto'" if fits else "larger images")
        )
    if resolved == "convnet":
        model = ConvNet(in_channels, **kwargs)
    elif resolved == "convnet_pool":
        model = ConvNet(in_channels, downsample="maxpool", **kwargs)
    elif resolved == "convnet_pool_2x2":
        model = ConvNet(in_channels, downsample="maxpool", out_pool=2, **kwargs)
    elif resolved == "resnet18_cifar":
        model = ResNet(in_channels, stem="cifar", **kwargs)
    else:
        model = ResNet(in_channels, stem="imagenet", **kwargs)
    model.name = resolved
    return model


# --------------------------------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------------------------------
def parse_widths(spec) -> tuple[int, ...]:
    """Parse a width spec: ``"2048-2048-2048"`` → (2048, 2048, 2048); ``""``/``"none"``/``None`` → ().

    Also accepts an int or a sequence of ints. Raises ``ValueError`` naming the bad part.
    """
    if spec is None:
        return ()
    if isinstance(spec, bool):
        raise ValueError(f"projector spec {spec!r} must be widths like '2048-2048-2048', or '' / 'none'")
    if isinstance(spec, int):
        spec = [spec]
    if isinstance(spec, str):
        s = spec.strip()
        if s.lower() in ("", "none", "identity"):
            return ()
        parts = [p.strip() for p in s.split("-")]
    elif isinstance(spec, (list, tuple)):
        parts = list(spec)
    else:
        raise ValueError(f"projector spec {spec!r} must be a string like '2048-2048-2048' (or '' / 'none')")
    widths = []
    for p in parts:
        if isinstance(p, str) and p.isdigit():
            p = int(p)
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ValueError(
                f"projector spec {spec!r}: {p!r} is not a positive width; write the layer widths separated by "
                "'-', e.g. '2048-2048-2048' (or '' / 'none' for no projector)"
            )
        widths.append(p)
    return tuple(widths)


class Projector(nn.Sequential):
    """MLP projector from a width spec; (B, in_dim) → (B, out_dim).

    ``spec="2048-2048-2048"``: Linear(in, 2048, bias=False)-BN-ReLU, Linear(2048, 2048, bias=False)-BN-ReLU,
    Linear(2048, 2048, bias=False). ``spec="128"``: one Linear. ``spec=""``/``"none"``: identity
    (``out_dim = in_dim``). ``last_bn`` appends BatchNorm1d(out, affine=False); ``last_bias`` gives the last Linear
    a bias. Attributes ``in_dim``, ``out_dim``, ``widths``.
    """

    def __init__(self, in_dim: int, spec="2048-2048-2048", *, last_bn: bool = False, last_bias: bool = False):
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
            raise ValueError(f"in_dim={in_dim!r} must be a positive integer (the backbone's out_dim)")
        widths = parse_widths(spec)
        layers: list[nn.Module] = []
        d = in_dim
        for i, w in enumerate(widths):
            last = i == len(widths) - 1
            layers.append(nn.Linear(d, w, bias=last and last_bias))
            if not last:
                layers += [nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            elif last_bn:
                layers.append(nn.BatchNorm1d(w, affine=False))
            d = w
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim = d
        self.widths = widths


class Predictor(nn.Sequential):
    """BYOL's predictor: Linear(dim, hidden)-BN-ReLU-Linear(hidden, dim); (B, dim) → (B, dim)."""

    def __init__(self, dim: int, hidden: int = 4096):
        for name, v in (("dim", dim), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive integer")
        super().__init__(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim))
        self.in_dim = dim
        self.hidden = hidden
        self.out_dim = dim


# --------------------------------------------------------------------------------------------------------------
# EMA target
# --------------------------------------------------------------------------------------------------------------
def unwrap(module: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif hasattr(module, "_orig_mod") and isinstance(module._orig_mod, nn.Module):
            module = module._orig_mod
        else:
            return module


def _check_tau(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} must be a number in [0, 1] (e.g. 0.99 for BYOL)")
    return float(value)


class EMATarget(nn.Module):
    """An exponential-moving-average copy of ``module`` (BYOL's target network).

    ``target(*args)`` runs the copy under ``torch.no_grad()``. ``update(step, total_steps)`` moves the copy
    towards the online module with τ from :meth:`tau_at` and returns τ. ``module`` may be wrapped in
    DistributedDataParallel (or compiled); the inner module is copied and followed. ``state_dict`` holds the
    copy only (keys ``target.*``).
    """

    def __init__(self, module: nn.Module, tau_base: float = 0.99, tau_final: float = 1.0, *,
                 schedule: str = "cosine"):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ValueError(f"EMATarget needs an nn.Module, got {type(module).__name__}")
        if schedule not in EMA_SCHEDULES:
            raise ValueError(f"schedule={schedule!r} is not allowed; choose one of "
                             f"{', '.join(repr(s) for s in EMA_SCHEDULES)}")
        self.tau_base = _check_tau("tau_base", tau_base)
        self.tau_final = _check_tau("tau_final", tau_final)
        self.schedule = schedule
        online = unwrap(module)
        self._online = [online]  # a plain list: not a registered submodule (not in state_dict, not moved by .to)
        self.target = copy.deepcopy(online)
        self.target.requires_grad_(False)
        for p in self.target.parameters():
            p.grad = None
        self.tau = self.tau_base  # the τ of the last update

    @property
    def online(self) -> nn.Module:
        return self._online[0]

    def tau_at(self, step: int, total_steps: int | None = None) -> float:
        """τ after ``step`` of ``total_steps``: τ_final − (τ_final − τ_base)(cos(π·step/total) + 1)/2.

        ``step`` beyond ``total_steps`` is held at the end of the schedule. With ``schedule="constant"`` τ_base.
        """
        if self.schedule == "constant":
            return self.tau_base
        if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
            raise ValueError(f"total_steps={total_steps!r} must be a positive integer for the cosine schedule "
                             "(or create EMATarget(..., schedule='constant'))")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"step={step!r} must be a non-negative integer")
        k = min(step, total_steps)
        return self.tau_final - (self.tau_final - self.tau_base) * (math.cos(math.pi * k / total_steps) + 1) / 2

    @torch.no_grad()
    def update(self, step: int = 0, total_steps: int | None = None, online: nn.Module | None = None) -> float:
        """ξ ← τ·ξ + (1 − τ)·θ for parameters and floating buffers (others copied); returns τ.

        ``online``: follow this module for this update instead of the one given at construction (it must have the
        same parameter and buffer names and shapes; wrappers are unwrapped).
        """
        tau = self.tau_at(step, total_steps)
        src = unwrap(online) if online is not None else self.online
        self._lerp(list(self.target.named_parameters()), dict(src.named_parameters()), 1.0 - tau, "parameter")
        tgt_buffers = list(self.target.named_buffers())
        src_buffers = dict(src.named_buffers())
        floating = [(n, b) for n, b in tgt_buffers if b.is_floating_point()]
        self._lerp(floating, src_buffers, 1.0 - tau, "buffer")
        for n, b in tgt_buffers:
            if not b.is_floating_point():
                b.copy_(self._match(src_buffers, n, b, "buffer"))
        self.tau = tau
        return tau

    @staticmethod
    def _match(src: dict, name: str, t: Tensor, what: str) -> Tensor:
        s = src.get(name)
        if s is None or s.shape != t.shape:
            raise ValueError(f"EMATarget.update: the online module's {what} {name!r} is missing or has another "
                             "shape than the target's; pass the module the target was created from")
        return s.detach()

    def _lerp(self, targets: list, src: dict, weight: float, what: str) -> None:
        if not targets:
            return
        t_list = [t for _, t in targets]
        s_list = [self._match(src, n, t, what) for n, t in targets]
        s_list = [s if s.dtype == t.dtype and s.device == t.device else s.to(t) for s, t in zip(s_list, t_list)]
        if weight == 0.0:
            return
        try:
            torch._foreach_lerp_(t_list, s_list, weight)
        except (AttributeError, RuntimeError):  # pragma: no cover - old torch or mixed devices
            for t, s in zip(t_list, s_list):
                t.lerp_(s, weight)

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.target(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"tau_base={self.tau_base}, tau_final={self.tau_final}, schedule={self.schedule!r}"
