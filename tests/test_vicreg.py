"""VICReg (sslbench/regularizers/vicreg.py) against a reference written from the formulas (spec §2) in float64
with explicit means, unbiased variances, the full D×D covariance and an explicit off-diagonal mask."""

import itertools

import pytest
import torch

from sslbench.regularizers import create, vicreg
from sslbench.regularizers.vicreg import VICReg

SHAPES = [(7, 5), (16, 33), (40, 9)]  # (N, D): odd D; D > N (gram under auto) and D < N (cross_correlation)
ALGORITHMS = ["cross_correlation", "gram", "auto"]


# --------------------------------------------------------------------------------------------------------------
# reference (float64, naive)
# --------------------------------------------------------------------------------------------------------------
def ref_var_cov(x, eps):
    n, d = x.shape
    mean = sum(x[i] for i in range(n)) / n
    xc = x - mean
    var = sum(xc[i] ** 2 for i in range(n)) / (n - 1)
    std = torch.sqrt(var + eps)
    var_term = torch.clamp(1 - std, min=0).mean()
    cov = xc.T @ xc / (n - 1)
    cov_term = cov[~torch.eye(d, dtype=torch.bool)].square().sum() / d
    return var_term, cov_term


def ref_vicreg(zs, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, eps=1e-4, multiview="pairs"):
    """(loss, invariance, variance, covariance) of spec §2; for V views see the module docstring."""
    zs = [z.double() for z in zs]
    per_view = [ref_var_cov(z, eps) for z in zs]
    if multiview == "pairs":
        pairs = list(itertools.combinations(range(len(zs)), 2))
        inv = sum(((zs[a] - zs[b]) ** 2).mean() for a, b in pairs) / len(pairs)
        # the two-view loss averaged over the pairs, term by term
        variance = sum((per_view[a][0] + per_view[b][0]) / 2 for a, b in pairs) / len(pairs)
        covariance = sum(per_view[a][1] + per_view[b][1] for a, b in pairs) / len(pairs)
    else:
        zbar = sum(zs) / len(zs)
        inv = sum(((z - zbar) ** 2).mean() for z in zs) / len(zs)
        variance = sum(p[0] for p in per_view) / len(zs)
        covariance = 2 * sum(p[1] for p in per_view) / len(zs)
    loss = sim_coeff * inv + std_coeff * variance + cov_coeff * covariance
    return loss, inv, variance, covariance


def make_views(v, n, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g, dtype=torch.float64)
    # feature scales around 1 so that some std hinges are active and some are not
    zs = [(base + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)) * (0.3 + 1.2 * torch.rand(
          d, generator=g, dtype=torch.float64)) + torch.randn(d, generator=g, dtype=torch.float64) for _ in range(v)]
    return [z.to(dtype) for z in zs]


# --------------------------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
@pytest.mark.parametrize("views", [2, 3])
@pytest.mark.parametrize("n, d", SHAPES)
def test_matches_reference(algorithm, multiview, views, n, d):
    zs = make_views(views, n, d, seed=n * d + views)
    hp = dict(sim_coeff=3.0, std_coeff=5.0, cov_coeff=0.7, eps=1e-3)
    reg = create("vicreg", algorithm=algorithm, multiview=multiview, **hp)
    out = reg(*zs)
    loss, inv, variance, covariance = ref_vicreg(zs, multiview=multiview, **hp)
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(out.terms["invariance"], inv)
    torch.testing.assert_close(out.terms["variance"], variance)
    torch.testing.assert_close(out.terms["covariance"], covariance)
    assert set(out.terms) == {"invariance", "variance", "covariance"}
    torch.testing.assert_close(reg(torch.stack(zs)).loss, out.loss)


def test_two_views_is_the_official_formula():
    # spec §2 written out once more for V = 2, with the defaults
    za, zb = make_views(2, 20, 11, seed=1)
    n, d = za.shape
    inv = torch.nn.functional.mse_loss(za, zb)
    std_terms, cov_terms = [], []
    for x in (za, zb):
        xc = x - x.mean(0)
        std_terms.append(torch.relu(1 - torch.sqrt(x.var(0) + 1e-4)).mean())
        c = xc.T @ xc / (n - 1)
        cov_terms.append((c.square().sum() - torch.diagonal(c).square().sum()) / d)
    expected = 25 * inv + 25 * (std_terms[0] + std_terms[1]) / 2 + (cov_terms[0] + cov_terms[1])
    reg = VICReg()
    assert (reg.sim_coeff, reg.std_coeff, reg.cov_coeff, reg.eps) == (25.0, 25.0, 1.0, 1e-4)
    torch.testing.assert_close(reg(za, zb).loss, expected)
    assert 0 < float(reg(za, zb).terms["variance"])  # the hinge is active for some features


def test_pairs_mode_averages_the_two_view_loss_over_pairs():
    zs = make_views(3, 10, 6, seed=4)
    reg = VICReg(algorithm="gram")
    outs = [reg(zs[a], zs[b]) for a, b in [(0, 1), (0, 2), (1, 2)]]
    got = reg(*zs)
    torch.testing.assert_close(got.loss, sum(o.loss for o in outs) / 3)
    for k in got.terms:
        torch.testing.assert_close(got.terms[k], sum(o.terms[k] for o in outs) / 3)
    torch.testing.assert_close(reg.pair(zs[1], zs[2]).loss, outs[2].loss)


@pytest.mark.parametrize("views", [2, 3, 4])
def test_mean_mode_invariance_is_a_rescaled_pairs_invariance(views):
    zs = make_views(views, 9, 5, seed=6)
    pairs, mean = VICReg(multiview="pairs")(*zs), VICReg(multiview="mean")(*zs)
    torch.testing.assert_close(mean.terms["invariance"], pairs.terms["invariance"] * (views - 1) / (2 * views))
    torch.testing.assert_close(mean.terms["variance"], pairs.terms["variance"])
    torch.testing.assert_close(mean.terms["covariance"], pairs.terms["covariance"])


# --------------------------------------------------------------------------------------------------------------
# algorithms
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multiview, views", [("pairs", 2), ("mean", 3)])
def test_gram_equals_cross_correlation_float32(multiview, views):
    zs = make_views(views, 48, 37, seed=7, dtype=torch.float32)
    res = {}
    for algorithm in ("cross_correlation", "gram"):
        leaves = [z.clone().requires_grad_(True) for z in zs]
        out = VICReg(algorithm=algorithm, multiview=multiview)(*leaves)
        out.loss.backward()
        assert out.loss.dtype == torch.float32
        res[algorithm] = (out.loss.detach(), [t.grad for t in leaves])
    torch.testing.assert_close(res["gram"][0], res["cross_correlation"][0], rtol=1e-5, atol=1e-5)
    for gg, gc in zip(res["gram"][1], res["cross_correlation"][1]):
        torch.testing.assert_close(gg, gc, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("n, d, views, expected", [
    (7, 5, 2, "cross_correlation"),
    (16, 33, 2, "gram"),
    (40, 9, 3, "cross_correlation"),
    (16, 16, 2, "cross_correlation"),  # gram iff D > N
    (16, 17, 3, "gram"),
])


@pytest.mark.parametrize("multiview", ["pairs", "mean"])
def test_auto_picks_what_is_documented(monkeypatch, n, d, views, expected, multiview):
    seen = []
    real = vicreg.correlation_stats

    def spy(xs, pairs, algorithm):
        seen.append((algorithm, list(pairs)))
        return real(xs, pairs, algorithm)

    monkeypatch.setattr(vicreg, "correlation_stats", spy)
    reg = VICReg(multiview=multiview)
    assert reg.algorithm_for(n, d, views) == expected
    reg(*make_views(views, n, d))
    assert seen == [(expected, [(v, v) for v in range(views)])]  # one kernel call covers every view


# --------------------------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("multiview, views", [("pairs", 2), ("pairs", 3), ("mean", 3)])
def test_gradcheck(algorithm, multiview, views):
    zs = [z.requires_grad_(True) for z in make_views(views, 6, 5, seed=2)]
    reg = VICReg(algorithm=algorithm, multiview=multiview, sim_coeff=1.0, std_coeff=2.0, cov_coeff=3.0)
    assert torch.autograd.gradcheck(lambda *t: reg(*t).loss, zs)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
def test_gradgradcheck(algorithm):
    zs = [z.requires_grad_(True) for z in make_views(2, 5, 4, seed=8)]
    reg = VICReg(algorithm=algorithm)
    assert torch.autograd.gradgradcheck(lambda *t: reg(*t).loss, zs)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
def test_gradient_matches_reference(algorithm, multiview):
    zs = [z.requires_grad_(True) for z in make_views(3, 11, 7, seed=5)]
    out = VICReg(algorithm=algorithm, multiview=multiview)(*zs).loss
    ref = ref_vicreg(zs, multiview=multiview)[0]
    for a, b in zip(torch.autograd.grad(out, zs), torch.autograd.grad(ref, zs)):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------------------------------------------
# extreme scales and constant views (issue 12, item 8)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("scale", [1e-20, 1e5, 1e8, 1e9])
def test_float32_at_large_scales_matches_float64(algorithm, scale):
    """VICReg is not scale-invariant (the covariance grows as |z|⁴), but while the loss fits in float32 the
    float32 loss is the float64 one (at 1e9 the unguarded products overflowed and gave NaN)."""
    zs = [(z * scale).float() for z in make_views(2, 64, 16, seed=42)]
    out = VICReg(algorithm=algorithm)(*zs)
    ref = ref_vicreg([z.double() for z in zs])
    assert bool(torch.isfinite(out.loss))
    torch.testing.assert_close(out.loss.double(), ref[0], rtol=1e-5, atol=1e-5)
    for k, r in zip(("invariance", "variance", "covariance"), ref[1:]):
        torch.testing.assert_close(out.terms[k].double(), r, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
def test_overflow_is_inf_not_nan_and_raises_under_check_finite(algorithm):
    """At 1e10 the true loss (about 1e39 here) exceeds float32: the default returns +inf, never NaN, and
    check_finite=True raises one clear line naming the embeddings' magnitude; float64 computes it."""
    zs = [(z * 1e10).float() for z in make_views(2, 64, 16, seed=43)]
    out = VICReg(algorithm=algorithm)(*zs)
    assert float(out.loss.detach()) == float("inf") and float(out.terms["covariance"].detach()) == float("inf")
    with pytest.raises(ValueError, match=r"not finite .*max \|z\| = \d\.\d+e\+10.*float64") as excinfo:
        VICReg(algorithm=algorithm, check_finite=True)(*zs)
    assert "\n" not in str(excinfo.value)
    ref = ref_vicreg([z.double() for z in zs])[0]
    torch.testing.assert_close(VICReg(algorithm=algorithm)(*[z.double() for z in zs]).loss, ref)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("value", [0.0, 3.0, 1e6])
def test_constant_views_give_the_full_hinge_and_finite_gradients(algorithm, value):
    """Zero variance: std = sqrt(eps), hinge 1 − sqrt(eps) per feature, no covariance (as the official code)."""
    flat = [torch.full((8, 5), value, requires_grad=True) for _ in range(2)]
    out = VICReg(algorithm=algorithm)(*flat)
    out.loss.backward()
    torch.testing.assert_close(out.terms["variance"], torch.tensor(1 - 1e-4 ** 0.5))
    assert float(out.terms["covariance"].detach()) == 0.0 and float(out.terms["invariance"].detach()) == 0.0
    assert all(bool(torch.isfinite(z.grad).all()) for z in flat)


# --------------------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# --------------------------------------------------------------------------------------------------------------
def official_formulation(x, y):
    """The official main_vicreg.py's steps (off-diagonal copies of both covariance matrices), for the memory
    comparison."""
    n, d = x.shape
    inv = torch.nn.functional.mse_loss(x, y)
    x, y = x - x.mean(0), y - y.mean(0)
    std_x, std_y = torch.sqrt(x.var(0) + 1e-4), torch.sqrt(y.var(0) + 1e-4)
    std = torch.relu(1 - std_x).mean() / 2 + torch.relu(1 - std_y).mean() / 2
    cov = 0
    for m in (x.T @ x / (n - 1), y.T @ y / (n - 1)):
        cov = cov + m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten().pow_(2).sum() / d
    return 25 * inv + 25 * std + cov


def _peak_bytes(fn, *shape):
    leaves = [torch.randn(*shape, device="cuda").requires_grad_(True) for _ in range(2)]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn(*leaves).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
def test_cuda_values_and_autocast(algorithm):
    zs = make_views(3, 64, 45, seed=13, dtype=torch.float32)
    ref = ref_vicreg(zs, multiview="mean")[0]
    reg = VICReg(algorithm=algorithm, multiview="mean")
    cuda = [z.cuda().requires_grad_(True) for z in zs]
    out = reg(*cuda)
    out.loss.backward()
    torch.testing.assert_close(out.loss.double().cpu(), ref, rtol=1e-4, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.float16):
        half = reg(*[z.cuda() for z in zs]).loss
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, out.loss.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_cuda_peak_memory_is_a_tenth_of_the_official_formulation():
    n, d = 256, 16384
    official = _peak_bytes(official_formulation, n, d)
    reg = VICReg()
    assert reg.algorithm_for(n, d) == "gram"
    ours = _peak_bytes(lambda a, b: reg(a, b).loss, n, d)
    assert ours <= official / 10, (ours, official)
