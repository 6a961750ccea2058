"""Tests of the torch augmentation backend (sslbench.training.fastaug): each op against a reference written here
from its formula (Python's colorsys for the hue, explicit 2-D convolutions for the blur), and the random
parameters measured on images of known content (coordinate ramps) to lie in their ranges at their rates."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F

from sslbench.training.augment import AugmentConfig, build_augment
from sslbench.training.fastaug import TensorAugment, adjust_hue, crop_params, gaussian_kernels

OFF = dict(crop_scale=None, affine_p=0.0, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)
UNIT = dict(mean=(0.0,), std=(1.0,))  # no normalisation: the views are the [0, 1] pixels


def ops_of(shape, **fields):
    return build_augment(shape, "none", backend="torch", **{**OFF, **UNIT, **fields}).ops


def ramps(n: int, side: int) -> torch.Tensor:
    """(n, 3, side, side): channel 0 holds each pixel centre's x in [0, 1], channel 1 its y, channel 2 zeros.
    Bilinear sampling of a linear function is exact, so a warped ramp tells where each output pixel came from."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    x = torch.zeros(n, 3, side, side)
    x[:, 0] = c.view(1, 1, side)
    x[:, 1] = c.view(1, side, 1)
    return x


def extents(out: torch.Tensor, side: int, inner: int = 6):
    """The crop's width and height fractions and its x/y spans, read from interior pixels of warped ramps."""
    a, b = inner, side - 1 - inner
    wf = (out[:, 0, side // 2, b] - out[:, 0, side // 2, a]) * side / (b - a)
    hf = (out[:, 1, b, side // 2] - out[:, 1, a, side // 2]) * side / (b - a)
    return wf, hf


# --------------------------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------------------------
def test_crop_area_and_ratio_stay_in_their_bounds():
    side, n = 64, 400
    torch.manual_seed(0)
    out = ops_of((3, side, side), crop_scale=(0.2, 0.6), crop_ratio=(0.75, 4 / 3))(ramps(n, side))
    wf, hf = extents(out, side)
    area, ratio = wf * hf, wf / hf
    assert area.min() >= 0.2 - 1e-3 and area.max() <= 0.6 + 1e-3
    assert ratio.min() >= 0.75 - 1e-3 and ratio.max() <= 4 / 3 + 1e-3
    # spread over the range (uniform area fraction: about a quarter in each quarter of the interval)
    quarter = ((area - 0.2) / 0.4 * 4).clamp(0, 3.999).long().bincount(minlength=4)
    assert quarter.min() > n / 8
    # the crop lies inside the image: the sampled x of the border pixels (bilinear, exact) stays within [0, 1]
    left = out[:, 0, side // 2, 0] - 0.5 * wf / side
    right = out[:, 0, side // 2, -1] + 0.5 * wf / side
    inner = (wf > 0.3)  # narrow crops' border pixels sit in the half-pixel margin where the ramp is clamped
    assert left[inner].min() >= -1e-4 and right[inner].max() <= 1 + 1e-4


def test_crop_params_pick_the_first_fitting_draw_and_fall_back_to_the_image():
    torch.manual_seed(1)
    wf, hf, cx, cy = crop_params(1000, (0.08, 1.0), (3 / 4, 4 / 3), (32, 32), "cpu")
    assert bool(((wf <= 1) & (hf <= 1) & (wf * hf >= 0.08 - 1e-6)).all())
    assert bool((cx.abs() <= 1 - wf + 1e-6).all()) and bool((cy.abs() <= 1 - hf + 1e-6).all())
    # nothing fits (area 1 at aspect ratio 2): the whole image, centred
    wf, hf, cx, cy = crop_params(5, (1.0, 1.0), (2.0, 2.0), (16, 16), "cpu")
    assert torch.equal(wf, torch.ones(5)) and torch.equal(hf, torch.ones(5))
    assert torch.equal(cx, torch.zeros(5)) and torch.equal(cy, torch.zeros(5))
    # a wide image: the fractions are of each side, area s·H·W
    wf, hf, _, _ = crop_params(500, (0.2, 0.2), (1.0, 1.0), (10, 40), "cpu")
    torch.testing.assert_close(wf * hf, torch.full((500,), 0.2))
    torch.testing.assert_close(wf * 40, hf * 10)  # square crops in pixels


def test_flip_rate_and_mirror_image():
    side, n = 16, 4000
    torch.manual_seed(2)
    out = ops_of((3, side, side), flip_p=0.5)(ramps(n, side))
    flipped = out[:, 0, 0, 0] > 0.5
    assert 0.46 < flipped.float().mean() < 0.54
    torch.testing.assert_close(out[flipped], ramps(int(flipped.sum()), side).flip(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[~flipped], ramps(int((~flipped).sum()), side), rtol=0, atol=1e-6)


def test_rotation_angles_and_rate():
    ops = ops_of((1, 8, 8), affine_p=0.5, affine_degrees=10.0)
    torch.manual_seed(3)
    m = ops.affine_matrices(4000, "cpu")
    angle = torch.rad2deg(torch.atan2(m[:, 1, 0], m[:, 0, 0]))
    rotated = angle.abs() > 1e-6
    assert 0.46 < rotated.float().mean() < 0.54 and angle.abs().max() <= 10.0 + 1e-4
    torch.testing.assert_close(m[:, 0, 0].square() + m[:, 1, 0].square(), torch.ones(4000))  # no scaling


# --------------------------------------------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------------------------------------------
def test_hue_shift_matches_colorsys():
    torch.manual_seed(4)
    x = torch.rand(6, 3, 5, 4, dtype=torch.float64)
    x[0, :, 0, 0] = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)  # grey: no hue
    x[1, :, 0, 0] = torch.tensor([0.9, 0.9, 0.1], dtype=torch.float64)  # a tie for the maximum
    shift = torch.tensor([0.1, -0.1, 0.05, 0.0, -0.03, 0.5], dtype=torch.float64)
    out = adjust_hue(x, shift)
    ref = torch.empty_like(x)
    for i in range(6):
        for r in range(5):
            for c in range(4):
                h, s, v = colorsys.rgb_to_hsv(*x[i, :, r, c].tolist())
                rgb = colorsys.hsv_to_rgb((h + float(shift[i])) % 1.0, s, v)
                ref[i, :, r, c] = torch.tensor(rgb, dtype=torch.float64)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def _gray_ref(x):
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation"])
def test_jitter_adjustments_match_their_formulas(name):
    torch.manual_seed(5)
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    k = torch.tensor([0.6, 1.0, 1.3, 1.4], dtype=torch.float64)
    out = TensorAugment._adjust(x, name, k)
    kk = k.view(-1, 1, 1, 1)
    if name == "brightness":
        ref = x * kk
    elif name == "contrast":  # blend with the mean of the grayscale image (torchvision adjust_contrast)
        ref = kk * x + (1 - kk) * _gray_ref(x).mean(dim=(1, 2, 3), keepdim=True)
    else:  # blend with the grayscale image (torchvision adjust_saturation)
        ref = kk * x + (1 - kk) * _gray_ref(x)
    torch.testing.assert_close(out, ref.clamp(0, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(out[1], x[1], rtol=0, atol=1e-12)  # a factor of 1 is the identity


def test_jitter_with_identity_factors_is_identity_and_factors_stay_in_range():
    cfg = dict(jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
    ops = ops_of((3, 8, 8), **cfg)
    torch.manual_seed(6)
    f = ops.jitter_factors(5000, "cpu")
    on = (f["brightness"] != 1) | (f["contrast"] != 1) | (f["saturation"] != 1) | (f["hue"] != 0)
    assert 0.77 < on.float().mean() < 0.83
    for name, a in (("brightness", 0.4), ("contrast", 0.4), ("saturation", 0.2)):
        assert f[name].min() >= 1 - a and f[name].max() <= 1 + a
    assert f["hue"].abs().max() <= 0.1
    # with probability 0 every factor is the identity and the whole jitter returns its input
    x = torch.rand(7, 3, 8, 8)
    torch.testing.assert_close(ops_of((3, 8, 8), **dict(cfg, jitter_p=1e-12))(x), x, rtol=0, atol=2e-6)


def test_grayscale_rate_and_equal_channels():
    torch.manual_seed(7)
    x = torch.rand(4000, 3, 2, 2)
    out = ops_of((3, 2, 2), grayscale_p=0.2)(x)
    gray = (out[:, 0] == out[:, 1]).all(-1).all(-1) & (out[:, 1] == out[:, 2]).all(-1).all(-1)
    assert 0.17 < gray.float().mean() < 0.23
    torch.testing.assert_close(out[gray, :1], _gray_ref(x[gray]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[~gray], x[~gray])


def test_solarize_rate_and_threshold():
    torch.manual_seed(8)
    x = torch.rand(4000, 1, 3, 3)
    out = ops_of((1, 3, 3), solarize_p=0.1)(x)
    changed = (out != x).flatten(1).any(1)
    expected = torch.where(x >= 0.5, 1 - x, x)
    solarized = (out == expected).flatten(1).all(1) & (x >= 0.5).flatten(1).any(1)
    assert 0.08 < solarized.float().mean() < 0.12 and torch.equal(changed, changed & solarized)


# --------------------------------------------------------------------------------------------------------------
# blur
# --------------------------------------------------------------------------------------------------------------
def test_gaussian_kernels():
    k = gaussian_kernels(torch.tensor([0.5, 2.0, 0.0], dtype=torch.float64), 5)
    for row, sigma in zip(k[:2], (0.5, 2.0)):
        ref = torch.tensor([math.exp(-(j - 2) ** 2 / (2 * sigma ** 2)) for j in range(5)], dtype=torch.float64)
        torch.testing.assert_close(row, ref / ref.sum())
    assert torch.equal(k[2], torch.tensor([0, 0, 1, 0, 0], dtype=torch.float64))


def test_blur_matches_a_2d_convolution_with_reflect_padding():
    shape = (3, 9, 7)
    ops = ops_of(shape, blur_p=1.0, blur_sigma=(0.3, 2.0), blur_kernel=5)
    torch.manual_seed(9)
    x = torch.rand(4, *shape, dtype=torch.float64)
    torch.manual_seed(10)
    out = ops.blur(x)
    torch.manual_seed(10)  # the same draws: which samples, and their sigmas
    sigma = torch.where(torch.rand(4) < 1.0, 0.3 + 1.7 * torch.rand(4), torch.zeros(()))
    for i in range(4):
        g = torch.tensor([math.exp(-(j - 2) ** 2 / (2 * float(sigma[i]) ** 2)) for j in range(5)],
                         dtype=torch.float64)
        g = g / g.sum()
        w = torch.outer(g, g).expand(3, 1, 5, 5)
        ref = F.conv2d(F.pad(x[i:i + 1], (2, 2, 2, 2), mode="reflect"), w, groups=3)
        torch.testing.assert_close(out[i:i + 1], ref, rtol=0, atol=1e-12)


def test_presets_run_on_the_torch_backend_and_stay_in_range():
    for preset, shape in (("cifar", (3, 32, 32)), ("stl10", (3, 40, 40)), ("mnist", (1, 28, 28)),
                          ("digits", (1, 8, 8))):
        aug = build_augment(shape, preset, backend="torch", **UNIT)
        assert isinstance(aug.ops, TensorAugment)
        out = aug(torch.randint(0, 256, (16, *shape), dtype=torch.uint8), 2, seed=0)
        assert out.shape == (2, 16, *shape) and out.min() >= 0 and out.max() <= 1


def test_direct_construction_of_tensor_augment_from_a_config():
    out = TensorAugment((1, 4, 4), AugmentConfig(flip_p=1.0))(ramps(2, 4)[:, :1])
    torch.testing.assert_close(out, ramps(2, 4)[:, :1].flip(-1))
