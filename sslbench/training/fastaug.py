"""The ``torch`` augmentation backend: the presets of :mod:`sslbench.training.augment` as a few batched tensor
operations over all V·B views at once, with per-sample random parameters and no per-image Python loop, no
kornia and no host synchronisation: every random draw is made on the images' device (except the one random order
of the colour adjustments, drawn on the CPU) and no constant is copied from the host.

Ops, in the order of the kornia pipeline (:class:`TensorAugment` applies the fields of an
:class:`sslbench.training.augment.AugmentConfig`):

1. **Geometry as one affine grid**: the random resized crop, the optional rotation / translation and the
   horizontal flip are composed into one 2×3 matrix per sample and applied by one ``F.affine_grid`` +
   ``F.grid_sample`` (bilinear, ``align_corners=False``, ``padding_mode="border"``). The crop is drawn as
   torchvision's ``RandomResizedCrop.get_params``: area fraction s ~ U(scale), log aspect ratio ~ U(log ratio),
   w = √(s·r·H·W), h = √(s·H·W/r); the first of 10 draws that fits the image is kept (vectorised: 10 draws per
   sample, the first fitting one is picked), else the whole image; the centre is uniform over the positions
   that keep the crop inside the image.
2. **Colour jitter** with probability ``jitter_p`` per sample (factors of the other samples are the identity):
   brightness x·b, contrast c·x + (1 − c)·mean(gray(x)), saturation s·x + (1 − s)·gray(x), each clamped to
   [0, 1], and a hue shift in HSV space (torchvision's formulas), in one random order per call.
3. **Grayscale** with probability ``grayscale_p`` (ITU-R 601 luma 0.299, 0.587, 0.114 in every channel).
4. **Gaussian blur** with probability ``blur_p``: separable, ``blur_kernel`` taps, σ ~ U(blur_sigma) per sample
   (an identity kernel for the others), reflect padding.
5. **Solarize** with probability ``solarize_p``: values ≥ 0.5 become 1 − x.

Differences from the kornia backend (same distributions of parameters otherwise):
* the crop's size and position are continuous (kornia and torchvision round them to whole pixels);
* pixels outside the image (only a rotation or translation reaches them) repeat the border pixel (kornia's
  ``RandomAffine`` fills zeros);
* kornia draws its random numbers differently, so the same seed gives other views with the two backends.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TensorAugment", "crop_params", "adjust_hue", "gaussian_kernels", "LUMA"]

LUMA = (0.299, 0.587, 0.114)
CROP_TRIES = 10


def _uniform(n: int, lo: float, hi: float, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, device=device)


def _chance(n: int, p: float, device) -> Tensor:
    """A (n,) bool mask, True with probability p."""
    return torch.rand(n, device=device) < p


def crop_params(n: int, scale: tuple[float, float], ratio: tuple[float, float], hw: tuple[int, int],
                device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(width fraction, height fraction, centre x, centre y) of ``n`` random resized crops, the centres in the
    normalised coordinates [-1, 1] of ``F.affine_grid``; the crops lie inside the image."""
    h, w = hw
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, CROP_TRIES, device=device)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, CROP_TRIES, device=device))
    wf = torch.sqrt(s * r * h / w)
    hf = torch.sqrt(s * w / (r * h))
    fits = (wf <= 1) & (hf <= 1)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first fitting draw (0 when none fits)
    any_fits = fits.any(dim=1)
    one = torch.ones((), device=device)
    wf = torch.where(any_fits, wf.gather(1, first).squeeze(1), one)
    hf = torch.where(any_fits, hf.gather(1, first).squeeze(1), one)
    cx = (1 - wf) * (2 * torch.rand(n, device=device) - 1)
    cy = (1 - hf) * (2 * torch.rand(n, device=device) - 1)
    return wf, hf, cx, cy


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """RGB images (N, 3, H, W) in [0, 1] with their hue shifted by ``shift`` (N,) turns: torchvision's HSV round
    trip, written for speed. A hue shift keeps V = max and the chroma max − min, so with 6h the hue in sextants,
    channel n ∈ (5, 3, 1) of the result is max − chroma·clamp(min(k, 4 − k), 0, 1), k = (n + 6h) mod 6."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    chroma = maxc - minc
    is_r, is_g = maxc == r, (maxc == g) & (maxc != r)
    num = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    sextant = torch.where(is_r, 0.0, torch.where(is_g, 2.0, 4.0))
    h6 = sextant + num / torch.where(chroma > 0, chroma, torch.ones_like(chroma)) + 6.0 * shift.view(-1, 1, 1)
    n = (5.0 - 2.0 * torch.arange(3, device=x.device, dtype=x.dtype)).view(1, 3, 1, 1)  # 5, 3, 1: no host copy
    k = torch.remainder(n + h6.unsqueeze(1), 6.0)
    return maxc.unsqueeze(1) - chroma.unsqueeze(1) * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def gaussian_kernels(sigma: Tensor, size: int) -> Tensor:
    """(N, size) normalised Gaussian taps for per-sample ``sigma`` (N,); a sigma of 0 gives the identity kernel."""
    offsets = torch.arange(size, device=sigma.device, dtype=sigma.dtype) - size // 2
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma)).unsqueeze(1)
    taps = torch.exp(-offsets.square() / (2 * safe.square()))
    taps = torch.where(sigma.unsqueeze(1) > 0, taps, (offsets == 0).to(sigma.dtype).expand_as(taps))
    return taps / taps.sum(dim=1, keepdim=True)


def _blur_1d(x: Tensor, taps: Tensor, dim: int) -> Tensor:
    """``x`` (N, C, H, W) convolved along ``dim`` (2 or 3) with per-sample ``taps`` (N, k), reflect padding."""
    k = taps.shape[1]
    pad = (k // 2, k // 2, 0, 0) if dim == 3 else (0, 0, k // 2, k // 2)
    xp = F.pad(x, pad, mode="reflect")
    size = x.shape[dim]
    out = torch.zeros_like(x)
    for j in range(k):
        out += taps[:, j].view(-1, 1, 1, 1) * xp.narrow(dim, j, size)
    return out


def _gray(x: Tensor) -> Tensor:
    """(N, 1, H, W) luma of RGB (or the single channel of grayscale) images."""
    if x.shape[1] == 1:
        return x
    return LUMA[0] * x[:, 0:1] + LUMA[1] * x[:, 1:2] + LUMA[2] * x[:, 2:3]  # no host-to-device copy


class TensorAugment(nn.Module):
    """``ops(x)`` for x (N, C, H, W) float32 in [0, 1] → the augmented batch, same shape, in [0, 1] (see the
    module docstring); ``config`` is a validated :class:`sslbench.training.augment.AugmentConfig`."""

    def __init__(self, image_shape: tuple[int, int, int], config):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.config = config
        c = config
        self.geometry = c.crop_scale is not None or c.affine_p > 0 or c.flip_p > 0
        self.jitter = c.jitter_p > 0 and any((c.brightness, c.contrast, c.saturation, c.hue))

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        if self.geometry:
            x = self.warp(x)
        if self.jitter:
            x = self.colour_jitter(x)
        if c.grayscale_p > 0:
            x = torch.where(_chance(len(x), c.grayscale_p, x.device).view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
        if c.blur_p > 0:
            x = self.blur(x)
        if c.solarize_p > 0:
            flip = _chance(len(x), c.solarize_p, x.device).view(-1, 1, 1, 1) & (x >= 0.5)
            x = torch.where(flip, 1.0 - x, x)
        return x

    # -- geometry -----------------------------------------------------------------------------------------------
    def affine_matrices(self, n: int, device) -> Tensor:
        """(n, 2, 3): output coordinates → input coordinates, crop ∘ rotation/translation ∘ flip."""
        c = self.config
        _, h, w = self.image_shape
        m = torch.eye(3, device=device).repeat(n, 1, 1)
        if c.crop_scale is not None:
            wf, hf, cx, cy = crop_params(n, c.crop_scale, c.crop_ratio, (h, w), device)
            m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = wf, hf, cx, cy
        if c.affine_p > 0:
            on = _chance(n, c.affine_p, device).float()
            angle = on * _uniform(n, -c.affine_degrees, c.affine_degrees, device) * (math.pi / 180)
            t = 2 * c.affine_translate
            tx, ty = on * _uniform(n, -t, t, device), on * _uniform(n, -t, t, device)
            cos, sin = torch.cos(angle), torch.sin(angle)
            rot = torch.eye(3, device=device).repeat(n, 1, 1)  # a rotation of the pixel grid, aspect-corrected
            rot[:, 0, 0], rot[:, 0, 1], rot[:, 0, 2] = cos, -sin * (h / w), tx
            rot[:, 1, 0], rot[:, 1, 1], rot[:, 1, 2] = sin * (w / h), cos, ty
            m = m @ rot
        if c.flip_p > 0:
            sign = 1.0 - 2.0 * _chance(n, c.flip_p, device).float()
            m[:, :, 0] = m[:, :, 0] * sign.view(-1, 1)
        return m[:, :2]

    def warp(self, x: Tensor) -> Tensor:
        theta = self.affine_matrices(len(x), x.device).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # -- colour -------------------------------------------------------------------------------------------------
    def jitter_factors(self, n: int, device) -> dict[str, Tensor]:
        """Per-sample factors (identity for the samples the jitter skips): brightness, contrast, saturation
        (multipliers, U(max(0, 1 − a), 1 + a)) and hue (a shift in turns, U(−a, a))."""
        c = self.config
        on = _chance(n, c.jitter_p, device)
        out = {}
        for name in ("brightness", "contrast", "saturation"):
            a = getattr(c, name)
            out[name] = torch.where(on, _uniform(n, max(0.0, 1 - a), 1 + a, device), torch.ones((), device=device))
        out["hue"] = torch.where(on, _uniform(n, -c.hue, c.hue, device), torch.zeros((), device=device))
        return out

    def colour_jitter(self, x: Tensor) -> Tensor:
        c = self.config
        f = {k: v.to(x.dtype) for k, v in self.jitter_factors(len(x), x.device).items()}
        wanted = [name for name in ("brightness", "contrast", "saturation", "hue") if getattr(c, name) > 0]
        for i in torch.randperm(len(wanted)).tolist():  # one random order per call (as kornia), on the CPU
            x = self._adjust(x, wanted[i], f[wanted[i]])
        return x

    @staticmethod
    def _adjust(x: Tensor, name: str, factor: Tensor) -> Tensor:
        if name == "hue":
            return adjust_hue(x, factor)
        k = factor.view(-1, 1, 1, 1)
        if name == "brightness":
            return (x * k).clamp_(0.0, 1.0)
        ref = _gray(x)
        if name == "contrast":
            ref = ref.mean(dim=(1, 2, 3), keepdim=True)
        return (k * x + (1.0 - k) * ref).clamp_(0.0, 1.0)

    # -- blur ---------------------------------------------------------------------------------------------------
    def blur(self, x: Tensor) -> Tensor:
        c = self.config
        n = len(x)
        sigma = torch.where(_chance(n, c.blur_p, x.device), _uniform(n, *c.blur_sigma, x.device),
                            torch.zeros((), device=x.device))
        taps = gaussian_kernels(sigma.to(x.dtype), c.blur_kernel)
        return _blur_1d(_blur_1d(x, taps, 3), taps, 2)
