"""The peer-style training loop of ``benchmarks/train_throughput.py``: CPU augmentation in ``DataLoader`` worker
processes feeding the device, as solo-learn's and lightly's CIFAR benchmarks do.

Each item of :class:`PeerViews` is one source image turned into V augmented, normalised float32 views by a
per-image transform (``torchvision.transforms.v2`` on a PIL image when torchvision imports, else the same recipe
written with Pillow alone, :class:`PilViews`). The recipe is sslbench's own preset (:func:`sslbench.training.augment
.preset_config`), so both loops draw the same kinds of views: resized crop, flip, colour jitter, grayscale,
solarisation, normalisation. The loader collates a batch to (V, B, C, H, W) in the worker (pinned by the loader's
pin thread on CUDA) and the main process copies it with ``non_blocking=True``. Each worker also returns the CPU
seconds its items took, which the benchmark reports as the augmentation's cost off the critical path.

This file is a helper of a script, not an asv benchmark: it defines no ``time_``/``track_`` names.
"""

from __future__ import annotations

import math
import os
import random
import time

import numpy as np
import torch
from torch import Tensor


def default_workers() -> int:
    """Worker processes of the peer loader: every core but one, at most 12 (lightly's CIFAR benchmark)."""
    return max(1, min(12, (os.cpu_count() or 2) - 1))


def torchvision_v2():
    """``torchvision.transforms.v2``, or None where torchvision does not import (as beside the CPU torch here)."""
    try:
        from torchvision.transforms import v2
    except Exception:  # noqa: BLE001 - an ImportError, or a RuntimeError from a torch/torchvision mismatch
        return None
    return v2


def torchvision_views(cfg, size: tuple[int, int]):
    """The preset ``cfg`` (an AugmentConfig) as a torchvision v2 pipeline: PIL image → normalised float tensor."""
    v2 = torchvision_v2()
    ops = [v2.RandomResizedCrop(size, scale=cfg.crop_scale, ratio=cfg.crop_ratio, antialias=True)]
    if cfg.jitter_p > 0:
        ops.append(v2.RandomApply([v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)],
                                  p=cfg.jitter_p))
    if cfg.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(cfg.grayscale_p))
    if cfg.solarize_p > 0:
        ops.append(v2.RandomSolarize(threshold=128, p=cfg.solarize_p))
    ops += [v2.RandomHorizontalFlip(cfg.flip_p), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(cfg.mean), list(cfg.std))]
    return v2.Compose(ops)


class PilViews:
    """The preset ``cfg`` written with Pillow alone (torchvision's formulas; used where torchvision is absent):
    resized crop (torchvision's sampling of scale and ratio, bilinear), colour jitter in random order, grayscale,
    solarisation at 128, horizontal flip, then normalisation."""

    def __init__(self, cfg, size: tuple[int, int]):
        self.cfg, self.size = cfg, size
        self.mean = np.asarray(cfg.mean, np.float32)[:, None, None]
        self.std = np.asarray(cfg.std, np.float32)[:, None, None]

    def _crop_box(self, w: int, h: int) -> tuple[int, int, int, int]:
        area = w * h
        for _ in range(10):
            target = area * random.uniform(*self.cfg.crop_scale)
            log_ratio = (math.log(self.cfg.crop_ratio[0]), math.log(self.cfg.crop_ratio[1]))
            ratio = math.exp(random.uniform(*log_ratio))
            cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                left, top = random.randint(0, w - cw), random.randint(0, h - ch)
                return left, top, left + cw, top + ch
        side = min(w, h)
        return (w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2

    def _jitter(self, img):
        from PIL import ImageEnhance

        c = self.cfg
        ops = [(ImageEnhance.Brightness, c.brightness), (ImageEnhance.Contrast, c.contrast),
               (ImageEnhance.Color, c.saturation), (None, c.hue)]
        random.shuffle(ops)
        for enhancer, strength in ops:
            if strength <= 0:
                continue
            if enhancer is None:
                img = _shift_hue(img, random.uniform(-strength, strength))
            else:
                img = enhancer(img).enhance(random.uniform(max(0.0, 1 - strength), 1 + strength))
        return img

    def __call__(self, img) -> Tensor:
        from PIL import Image, ImageOps

        c = self.cfg
        img = img.resize(self.size, Image.BILINEAR, box=self._crop_box(*img.size))
        if random.random() < c.jitter_p:
            img = self._jitter(img)
        if random.random() < c.grayscale_p:
            img = img.convert("L").convert("RGB")
        if random.random() < c.solarize_p:
            img = ImageOps.solarize(img, 128)
        if random.random() < c.flip_p:
            img = ImageOps.mirror(img)
        x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy((x - self.mean) / self.std)


def _shift_hue(img, shift: float):
    from PIL import Image

    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(shift * 255))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


class PeerViews(torch.utils.data.Dataset):
    """Item i: (V views of image i, each (C, H, W) float32, and the seconds they took), from uint8 (N, C, H, W)."""

    def __init__(self, images: Tensor, views: int, transform):
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as a PIL-based data set holds them
        self.views, self.transform = views, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        t0 = time.perf_counter()
        img = Image.fromarray(self.images[i])
        out = torch.stack([self.transform(img) for _ in range(self.views)])
        return out, time.perf_counter() - t0


def collate_views(items) -> tuple[Tensor, float]:
    """(V, B, C, H, W) views and the batch's augmentation seconds (summed over its items)."""
    views = torch.stack([v for v, _ in items], dim=1)
    return views, float(sum(t for _, t in items))


def build_loader(images: Tensor, views: int, batch: int, workers: int, pin: bool, preset_cfg):
    """The peer loader over ``images`` and the name of the augmentation library it uses."""
    size = tuple(images.shape[2:])
    if torchvision_v2() is not None:
        transform, library = torchvision_views(preset_cfg, size), "torchvision.v2"
    else:
        transform, library = PilViews(preset_cfg, size), "PIL"
    loader = torch.utils.data.DataLoader(
        PeerViews(images, views, transform), batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
        pin_memory=pin, persistent_workers=workers > 0, collate_fn=collate_views)  # workers seed `random` themselves
    return loader, library


def endless(loader):
    """Batches of ``loader`` epoch after epoch (a new pass starts when one ends, as a multi-epoch run does)."""
    while True:
        yield from loader
