"""Tests of the FFT-relaxed regularizers ``barlow_twins_fft`` and ``vicreg_fft`` and their helpers.

The references below are written from the definitions (spec §3, official ``sbarlow.py``/``svicreg.py``), in
float64 with explicit loops: the full (padded) D×D matrix of the permuted features is formed and its wrapped
diagonals r^{gh}_s = Σ_k M^{gh}_{k,(k+s) mod b} of every block pair are summed one entry at a time.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sslbench import regularizers
from sslbench.regularizers import _fft
from sslbench.regularizers.barlow_twins_fft import BarlowTwinsFFT
from sslbench.regularizers.vicreg_fft import VICRegFFT

F64 = torch.float64


# ----------------------------------------------------------------------------------------------------------
# data and references
# ----------------------------------------------------------------------------------------------------------
def make_views(v: int, n: int, d: int, seed: int = 0, dtype=F64) -> list[torch.Tensor]:
    """V correlated views with correlated features, per-feature scales and offsets (so nothing is trivial)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d) + torch.eye(d, dtype=F64)
    base = torch.randn(n, d, generator=g, dtype=F64) @ mix
    scale = torch.rand(d, generator=g, dtype=F64) * 1.5 + 0.25
    shift = torch.randn(d, generator=g, dtype=F64)
    return [((base + 0.6 * torch.randn(n, d, generator=g, dtype=F64)) * scale + shift).to(dtype)
            for _ in range(v)]


def ref_perm(d: int, permute: bool, seed: int) -> list[int]:
    if not permute:
        return list(range(d))
    return torch.randperm(d, generator=torch.Generator().manual_seed(seed)).tolist()


def ref_bn(z: torch.Tensor, eps: float) -> torch.Tensor:
    n = z.shape[0]
    mean = z.sum(0) / n
    var = ((z - mean) ** 2).sum(0) / n
    return (z - mean) / torch.sqrt(var + eps)


def ref_wrapped_sums(x: torch.Tensor, y: torch.Tensor, b: int) -> list[list[list[float]]]:
    """r[g][h][s] = Σ_k M^{gh}_{k,(k+s) mod b} with M the full zero-padded XᵀY (unnormalised)."""
    n, d = x.shape
    g_count = -(-d // b)
    dp = g_count * b
    xp = torch.zeros(n, dp, dtype=F64)
    yp = torch.zeros(n, dp, dtype=F64)
    xp[:, :d] = x
    yp[:, :d] = y
    c = (xp.T @ yp).tolist()  # (Dp, Dp)
    return [[[sum(c[g * b + k][h * b + (k + s) % b] for k in range(b)) for s in range(b)]
             for h in range(g_count)] for g in range(g_count)]


def ref_bt_off(r, q: int) -> float:
    g_count = len(r)
    total = 0.0
    for g in range(g_count):
        for h in range(g_count):
            for s, val in enumerate(r[g][h]):
                if g == h and s == 0:
                    continue
                total += abs(val) ** q
    return total


def scaled(r, factor):
    return [[[val * factor for val in row] for row in blk] for blk in r]


def ref_bt_pair(za, zb, *, lambd, scale, eps, b, q, perm):
    n, d = za.shape
    x, y = ref_bn(za.to(F64), eps), ref_bn(zb.to(F64), eps)
    on = sum((1.0 - float((x[:, k] * y[:, k]).sum()) / n) ** 2 for k in range(d))
    r = scaled(ref_wrapped_sums(x[:, perm], y[:, perm], b), 1.0 / n)
    off = ref_bt_off(r, q)
    return {"loss": scale * (on + lambd * off), "on_diagonal": on, "off_diagonal": off}


def ref_bt_mean(zs, *, lambd, scale, eps, b, q, perm):
    n, d = zs[0].shape
    xs = [ref_bn(z.to(F64), eps) for z in zs]
    xbar = sum(xs) / len(xs)
    on = sum(sum((1.0 - float((x[:, k] * xbar[:, k]).sum()) / n) ** 2 for k in range(d)) for x in xs) / len(xs)
    r = scaled(ref_wrapped_sums(xbar[:, perm], xbar[:, perm], b), 1.0 / n)
    off = ref_bt_off(r, q)
    return {"loss": scale * (on + lambd * off), "on_diagonal": on, "off_diagonal": off}


def ref_vicreg_view(z, *, eps, b, q, perm):
    """(var(X), off(X)) exactly as the official covariance_loss: explicit widths, upper-triangle block pairs."""
    n, d = z.shape
    xc = z.to(F64) - z.to(F64).mean(0)
    std = torch.sqrt((xc ** 2).sum(0) / (n - 1) + eps)
    var = float(torch.relu(1 - std).mean())
    r = scaled(ref_wrapped_sums(xc[:, perm], xc[:, perm], b), 1.0 / (n - 1))
    g_count = len(r)
    w_last = d - (g_count - 1) * b

    def width(g, h):
        return w_last if (g == g_count - 1 or h == g_count - 1) else b

    diag = [sum(abs(r[g][g][s] / width(g, g)) ** q for s in range(1, b)) for g in range(g_count)]
    off = sum(diag) / g_count
    pairs = [(g, h) for g in range(g_count) for h in range(g + 1, g_count)]
    if pairs:
        off += 2 * sum(sum(abs(r[g][h][s] / width(g, h)) ** q for s in range(b)) for g, h in pairs) / len(pairs)
    return var, off


def ref_vicreg_pair(za, zb, *, sim, std, cov, eps, b, q, perm):
    inv = float(((za.to(F64) - zb.to(F64)) ** 2).mean())
    va, oa = ref_vicreg_view(za, eps=eps, b=b, q=q, perm=perm)
    vb, ob = ref_vicreg_view(zb, eps=eps, b=b, q=q, perm=perm)
    variance, covariance = va + vb, oa + ob
    return {"loss": sim * inv + std * variance + cov * covariance, "invariance": inv, "variance": variance,
            "covariance": covariance}


def ref_vicreg_mean(zs, *, sim, std, cov, eps, b, q, perm):
    zs64 = [z.to(F64) for z in zs]
    zbar = sum(zs64) / len(zs64)
    inv = sum(float(((z - zbar) ** 2).mean()) for z in zs64) / len(zs)
    per_view = [ref_vicreg_view(z, eps=eps, b=b, q=q, perm=perm) for z in zs]
    variance = 2 * sum(v for v, _ in per_view) / len(zs)
    covariance = 2 * sum(o for _, o in per_view) / len(zs)
    return {"loss": sim * inv + std * variance + cov * covariance, "invariance": inv, "variance": variance,
            "covariance": covariance}


def ref_multiview(pair_fn, mean_fn, zs, multiview, **kw):
    if multiview == "mean":
        return mean_fn(zs, **kw)
    outs = [pair_fn(zs[a], zs[c], **kw) for a, c in itertools.combinations(range(len(zs)), 2)]
    return {k: sum(o[k] for o in outs) / len(outs) for k in outs[0]}


BT_HP = dict(lambd=0.3, scale=1.7, eps=1e-5)
VIC_HP = dict(sim_coeff=2.0, std_coeff=3.0, cov_coeff=5.0, eps=1e-4)


def reference(name, zs, *, block_size, power, permute, seed, multiview):
    d = zs[0].shape[1]
    b = d if block_size is None else block_size
    perm = ref_perm(d, permute, seed)
    if name == "barlow_twins_fft":
        return ref_multiview(ref_bt_pair, ref_bt_mean, zs, multiview, lambd=BT_HP["lambd"], scale=BT_HP["scale"],
                             eps=BT_HP["eps"], b=b, q=power, perm=perm)
    return ref_multiview(ref_vicreg_pair, ref_vicreg_mean, zs, multiview, sim=VIC_HP["sim_coeff"],
                         std=VIC_HP["std_coeff"], cov=VIC_HP["cov_coeff"], eps=VIC_HP["eps"], b=b, q=power, perm=perm)


def build(name, *, seed=0, **kw):
    hp = dict(BT_HP if name == "barlow_twins_fft" else VIC_HP)
    hp.update(kw)
    return regularizers.create(name, generator=torch.Generator().manual_seed(seed), **hp)


def assert_matches(out, ref, **tol):
    torch.testing.assert_close(out.loss, torch.tensor(ref["loss"], dtype=out.loss.dtype), **tol)
    assert set(out.terms) == set(ref) - {"loss"}
    for k, v in out.terms.items():
        torch.testing.assert_close(v, torch.tensor(ref[k], dtype=v.dtype), **tol)


# ----------------------------------------------------------------------------------------------------------
# against the references
# ----------------------------------------------------------------------------------------------------------
SHAPES = {5: 7, 8: 16, 33: 12}  # D -> N
BLOCK_CASES = sorted({(d, bs) for d in SHAPES for bs in (None, 2, 3, 4, 8, d) if bs is None or bs <= d},
                     key=lambda t: (t[0], -1 if t[1] is None else t[1]))
NAMES = ["barlow_twins_fft", "vicreg_fft"]


VIEW_MODES = [(2, "pairs"), (3, "pairs"), (2, "mean"), (3, "mean")]
# power × (views, multiview) in full, permute alternating so that every pair of levels of the three factors
# occurs (a covering design: 8 runs per block case instead of 16)
VARIANTS = [(power, (power + i) % 2 == 0, views, mode) for i, (views, mode) in enumerate(VIEW_MODES)
            for power in (1, 2)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("d, block_size", BLOCK_CASES)
@pytest.mark.parametrize("power, permute, views, multiview", VARIANTS)
def test_matches_naive_reference(name, d, block_size, power, permute, views, multiview):
    seed = 100 + d + (block_size or 0)
    zs = make_views(views, SHAPES[d], d, seed=d)
    reg = build(name, seed=seed, block_size=block_size, power=power, permute=permute, multiview=multiview)
    out = reg(*zs)
    ref = reference(name, zs, block_size=block_size, power=power, permute=permute, seed=seed,
                    multiview=multiview)
    assert out.loss.dtype == F64
    assert_matches(out, ref)


@pytest.mark.parametrize("name", NAMES)
def test_float32_matches_reference(name):
    zs = make_views(2, 16, 33, seed=3)
    reg = build(name, seed=4, block_size=8)
    out = reg(*[z.float() for z in zs])
    ref = reference(name, zs, block_size=8, power=2, permute=True, seed=4, multiview="pairs")
    assert out.loss.dtype == torch.float32
    assert_matches(out, ref, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------------------
# where the relaxation must coincide with (or relate exactly to) the exact losses
# ----------------------------------------------------------------------------------------------------------
def exact_cross_correlation(za, zb, eps):
    x, y = ref_bn(za, eps), ref_bn(zb, eps)
    return x.T @ y / za.shape[0]


@pytest.mark.parametrize("power", [1, 2])
def test_bt_block_size_one_is_exact_barlow_twins(power):
    za, zb = make_views(2, 10, 9, seed=7)
    c = exact_cross_correlation(za, zb, 1e-5)
    d = c.shape[0]
    on = sum((1 - c[k, k]) ** 2 for k in range(d))
    off = sum(abs(c[k, l]) ** power for k in range(d) for l in range(d) if k != l)
    for seed in (0, 1):  # with blocks of one feature the permutation cannot matter
        out = build("barlow_twins_fft", seed=seed, block_size=1, power=power)(za, zb)
        torch.testing.assert_close(out.terms["off_diagonal"], off)
        torch.testing.assert_close(out.terms["on_diagonal"], on)
        torch.testing.assert_close(out.loss, BT_HP["scale"] * (on + BT_HP["lambd"] * off))


def test_bt_block_size_one_equals_barlow_twins_class():
    za, zb = make_views(2, 10, 9, seed=8)
    exact = regularizers.create("barlow_twins", lambd=0.3, scale=1.7)(za, zb)
    relaxed = build("barlow_twins_fft", block_size=1)(za, zb)
    torch.testing.assert_close(relaxed.loss, exact.loss)
    torch.testing.assert_close(relaxed.terms["off_diagonal"], exact.terms["off_diagonal"])


@pytest.mark.parametrize("power", [1, 2])
def test_bt_two_features_one_block(power):
    # D = 2, b = D: the only wrapped diagonal s = 1 is {C_01, C_10}: off = |C_01 + C_10|^q
    za, zb = make_views(2, 11, 2, seed=9)
    c = exact_cross_correlation(za, zb, 1e-5)
    out = build("barlow_twins_fft", block_size=None, power=power)(za, zb)
    torch.testing.assert_close(out.terms["off_diagonal"], abs(c[0, 1] + c[1, 0]) ** power)
    # identical views: C is symmetric, so the relaxed term is twice the exact Σ_{k≠l} C_kl² (power 2)
    same = build("barlow_twins_fft", block_size=None, power=2)(za, za.clone())
    cs = exact_cross_correlation(za, za, 1e-5)
    torch.testing.assert_close(same.terms["off_diagonal"], 2 * (cs[0, 1] ** 2 + cs[1, 0] ** 2))


def exact_vicreg_cov(z):
    n, d = z.shape
    zc = z - z.mean(0)
    c = zc.T @ zc / (n - 1)
    return sum(c[k, l] ** 2 for k in range(d) for l in range(d) if k != l) / d


def test_vicreg_block_size_one_is_scaled_exact_covariance():
    za, zb = make_views(2, 10, 9, seed=10)
    out = build("vicreg_fft", block_size=1)(za, zb)
    d = za.shape[1]
    torch.testing.assert_close(out.terms["covariance"], 2 / (d - 1) * (exact_vicreg_cov(za) + exact_vicreg_cov(zb)))


def test_vicreg_two_features_one_block_is_exact_covariance():
    # D = 2, b = 2: r_1 = (C_01 + C_10)/2 = C_01, so off = C_01² = Σ_{k≠l} C_kl² / D
    za, zb = make_views(2, 10, 2, seed=11)
    out = build("vicreg_fft")(za, zb)
    torch.testing.assert_close(out.terms["covariance"], exact_vicreg_cov(za) + exact_vicreg_cov(zb))


def test_vicreg_variance_and_invariance_are_vicregs():
    za, zb = make_views(2, 12, 7, seed=12)
    out = build("vicreg_fft", block_size=3)(za, zb)
    torch.testing.assert_close(out.terms["invariance"], torch.nn.functional.mse_loss(za, zb))
    hinge = [torch.relu(1 - torch.sqrt(z.var(0, unbiased=True) + 1e-4)).mean() for z in (za, zb)]
    torch.testing.assert_close(out.terms["variance"], hinge[0] + hinge[1])  # summed, no /2


def test_mean_mode_vicreg_variance_and_covariance_equal_pairs_mode():
    zs = make_views(3, 12, 10, seed=13)
    pairs = build("vicreg_fft", seed=1, block_size=4)(*zs)
    mean = build("vicreg_fft", seed=1, block_size=4, multiview="mean")(*zs)
    torch.testing.assert_close(mean.terms["variance"], pairs.terms["variance"])
    torch.testing.assert_close(mean.terms["covariance"], pairs.terms["covariance"])
    # mean_v ‖Z_v − Z̄‖² = (V − 1)/(2V) · mean over pairs ‖Z_a − Z_b‖²
    torch.testing.assert_close(mean.terms["invariance"], pairs.terms["invariance"] * (3 - 1) / (2 * 3))


def test_on_diagonal_does_not_depend_on_permutation_or_blocks():
    za, zb = make_views(2, 12, 10, seed=14)
    ons = [build("barlow_twins_fft", seed=s, block_size=bs)(za, zb).terms["on_diagonal"]
           for s, bs in [(0, None), (1, 3), (2, 10)]]
    for on in ons[1:]:
        torch.testing.assert_close(on, ons[0])


# ----------------------------------------------------------------------------------------------------------
# permutation: reproducibility, one draw per call
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_result_different_seed_different_permutation(name):
    zs = make_views(2, 12, 33, seed=15)
    a = build(name, seed=5, block_size=4)(*zs)
    b = build(name, seed=5, block_size=4)(*zs)
    c = build(name, seed=6, block_size=4)(*zs)
    assert torch.equal(a.loss, b.loss)
    assert ref_perm(33, True, 5) != ref_perm(33, True, 6)
    assert not torch.allclose(a.loss, c.loss)
    ref_c = reference(name, zs, block_size=4, power=2, permute=True, seed=6, multiview="pairs")
    assert_matches(c, ref_c)


@pytest.mark.parametrize("name", NAMES)
def test_fresh_permutation_on_every_call(name):
    zs = make_views(2, 12, 17, seed=16)
    reg = build(name, seed=21, block_size=4)
    g = torch.Generator().manual_seed(21)
    for _ in range(3):
        perm = torch.randperm(17, generator=g).tolist()
        out = reg(*zs)
        if name == "barlow_twins_fft":
            ref = ref_bt_pair(*zs, lambd=BT_HP["lambd"], scale=BT_HP["scale"], eps=BT_HP["eps"], b=4, q=2, perm=perm)
        else:
            ref = ref_vicreg_pair(*zs, sim=2.0, std=3.0, cov=5.0, eps=1e-4, b=4, q=2, perm=perm)
        assert_matches(out, ref)


def test_permute_false_ignores_generator_and_global_rng_used_without_generator():
    zs = make_views(2, 12, 17, seed=17)
    a = build("barlow_twins_fft", seed=1, block_size=4, permute=False)(*zs)
    b = build("barlow_twins_fft", seed=2, block_size=4, permute=False)(*zs)
    assert torch.equal(a.loss, b.loss)
    reg = regularizers.create("barlow_twins_fft", block_size=4)  # generator None: the global CPU RNG
    torch.manual_seed(3)
    first = reg(*zs).loss
    torch.manual_seed(3)
    assert torch.equal(reg(*zs).loss, first)


def test_pair_and_mean_views_entry_points_draw_their_own_permutation():
    zs = make_views(3, 9, 11, seed=18)
    reg = build("vicreg_fft", seed=9, block_size=3)
    out = reg.pair(zs[0], zs[1])
    ref = ref_vicreg_pair(zs[0], zs[1], sim=2.0, std=3.0, cov=5.0, eps=1e-4, b=3, q=2, perm=ref_perm(11, True, 9))
    assert_matches(out, ref)
    reg = build("barlow_twins_fft", seed=9, block_size=3)
    out = reg.mean_views(zs)
    ref = ref_bt_mean(zs, lambd=0.3, scale=1.7, eps=1e-5, b=3, q=2, perm=ref_perm(11, True, 9))
    assert_matches(out, ref)


def test_stacked_tensor_input_equals_separate_views():
    zs = make_views(3, 8, 6, seed=19)
    a = build("barlow_twins_fft", seed=2, block_size=4)(torch.stack(zs))
    b = build("barlow_twins_fft", seed=2, block_size=4)(*zs)
    torch.testing.assert_close(a.loss, b.loss)


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------
def test_group_features_permutes_pads_and_splits():
    x = torch.arange(2 * 7, dtype=F64).reshape(2, 7)
    perm = torch.tensor([6, 0, 5, 1, 4, 2, 3])
    g = _fft.group_features(x, 3, perm)
    assert g.shape == (2, 3, 3)
    for i in range(2):
        flat = g[i].reshape(-1).tolist()
        assert flat[:7] == [x[i, p].item() for p in perm.tolist()]
        assert flat[7:] == [0.0, 0.0]
    assert torch.equal(_fft.group_features(x, 7).reshape(2, 7), x)


@pytest.mark.parametrize("d, b", [(7, 3), (8, 8), (9, 1), (6, 4)])
def test_block_correlation_matches_explicit_sums(d, b):
    gen = torch.Generator().manual_seed(d * b)
    x = torch.randn(2, 5, d, generator=gen, dtype=F64)  # a leading batch dim
    y = torch.randn(2, 5, d, generator=gen, dtype=F64)
    r_cross = _fft.block_correlation(_fft.group_features(x, b), _fft.group_features(y, b))
    r_auto = _fft.block_correlation(_fft.group_features(x, b))
    for v in range(2):
        torch.testing.assert_close(r_cross[v], torch.tensor(ref_wrapped_sums(x[v], y[v], b), dtype=F64))
        torch.testing.assert_close(r_auto[v], torch.tensor(ref_wrapped_sums(x[v], x[v], b), dtype=F64))


def test_draw_permutation_is_a_reproducible_permutation():
    p = _fft.draw_permutation(20, torch.Generator().manual_seed(1))
    assert p.dtype == torch.int64 and sorted(p.tolist()) == list(range(20))
    assert torch.equal(p, _fft.draw_permutation(20, torch.Generator().manual_seed(1)))


# ----------------------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------------------
def _gradcheck(name, views, **kw):
    reg = build(name, **kw)

    def fn(*zs):
        reg.generator = torch.Generator().manual_seed(123)  # the same permutation on every evaluation
        return reg(*zs).loss

    inputs = [z.clone().requires_grad_(True) for z in views]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("block_size, multiview, nviews", [(4, "pairs", 2), (None, "pairs", 2), (4, "mean", 3),
                                                           (2, "pairs", 3)])
# block 4 of D = 6: two blocks, the last one padded; block 2: three blocks, V = 3 pairs share a permutation
def test_gradcheck_power_two(name, block_size, multiview, nviews):
    # scale 0.5: VICReg's std hinge stays away from its kink at std = 1
    zs = [0.5 * z for z in make_views(nviews, 4, 6, seed=20)]
    _gradcheck(name, zs, block_size=block_size, multiview=multiview, power=2)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
def test_gradcheck_power_one_away_from_zeros(name, multiview):
    # D = 7, b = 4: the padded last block (width 3) leaves no structurally zero lag
    zs = [0.5 * z for z in make_views(2, 5, 7, seed=21)]
    # |r|: the check is only valid where no correlation sum is (near) zero; make sure of it first
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(123)).tolist()
    if name == "barlow_twins_fft":
        xs = [ref_bn(z, 1e-5)[:, perm] for z in zs]
        pairs = [(xs[0], xs[1])] if multiview == "pairs" else [(sum(xs) / 2, sum(xs) / 2)]
    else:
        xs = [(z - z.mean(0))[:, perm] for z in zs]
        pairs = [(x, x) for x in xs]
    for x, y in pairs:
        r = torch.tensor(ref_wrapped_sums(x, y, 4))
        assert r.abs().min() > 1e-3
    _gradcheck(name, zs, block_size=4, multiview=multiview, power=1)


# ----------------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name):
    zs = [z.float() for z in make_views(2, 32, 40, seed=24)]
    cpu = build(name, seed=5, block_size=12)(*zs)
    gpu = build(name, seed=5, block_size=12)(*[z.cuda() for z in zs])
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=1e-4, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.float16):
        half = build(name, seed=5, block_size=12)(*[z.cuda().half() for z in zs])
    assert half.loss.dtype == torch.float32
    torch.testing.assert_close(half.loss.cpu(), cpu.loss, rtol=1e-2, atol=1e-2)


# ----------------------------------------------------------------------------------------------------------
# bad input specific to the relaxation (the shared checks are in test_conformance.py)
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_block_size_larger_than_d_fails_at_call_naming_the_fix(name):
    reg = regularizers.create(name, block_size=9)
    zs = make_views(2, 6, 8, seed=25)
    with pytest.raises(ValueError, match=r"block_size=9 is larger than .*D=8.*block_size <= 8"):
        reg(*zs)
    with pytest.raises(ValueError, match="block_size=9"):
        reg.pair(*zs)
    regularizers.create(name, block_size=9)(*make_views(2, 6, 9, seed=25))  # b = D is fine


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generator_rejected():
    with pytest.raises(ValueError, match="generator"):
        BarlowTwinsFFT(generator=torch.Generator(device="cuda"))


def test_registry_and_defaults():
    assert regularizers.hparam_defaults("barlow_twins_fft") == dict(
        lambd=0.0051, scale=1.0, eps=1e-5, block_size=None, power=2, permute=True, generator=None,
        multiview="pairs", check_finite=False, variance_coeff=0.0, variance_eps=1e-4)
    assert regularizers.hparam_defaults("vicreg_fft") == dict(
        sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, eps=1e-4, block_size=None, power=2, permute=True,
        generator=None, multiview="pairs", check_finite=False)
    assert isinstance(regularizers.create("barlow_twins_fft"), BarlowTwinsFFT)
    assert isinstance(regularizers.create("vicreg_fft"), VICRegFFT)
