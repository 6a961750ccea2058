"""Barlow Twins (sslbench/regularizers/barlow_twins.py) and the primal/Gram kernels (_gram.py) against references
written from the formulas (spec §1 and §5) in float64 with a two-pass standardisation, the full D×D matrix and
explicit masks. What every regularizer must do (dtypes, bad input, state, distributed) is in test_conformance.py."""

import itertools

import pytest
import torch

from sslbench.regularizers import _gram, barlow_twins, create
from sslbench.regularizers.barlow_twins import BarlowTwins

SHAPES = [(7, 5), (16, 33), (40, 9)]  # (N, D): odd D; D > N (gram under auto) and D < N (cross_correlation)
ALGORITHMS = ["cross_correlation", "gram", "auto"]


# --------------------------------------------------------------------------------------------------------------
# references (float64, naive)
# --------------------------------------------------------------------------------------------------------------
def bn(z, eps):
    """(z − mean_i z) / sqrt(mean_i (z − mean)² + eps), two passes in float64 (BatchNorm1d's CPU kernel is not
    exact for constant features of large magnitude)."""
    z = z.double()
    zc = z - z.mean(dim=0)
    return zc / torch.sqrt(zc.square().mean(dim=0) + eps)


def off_mask(d):
    return ~torch.eye(d, dtype=torch.bool)


def ref_pair(za, zb, lambd, scale, eps):
    n, d = za.shape
    c = bn(za, eps).T @ bn(zb, eps) / n
    on = sum((1 - c[k, k]) ** 2 for k in range(d))
    off = c[off_mask(d)].square().sum()
    return scale * (on + lambd * off), on, off


def ref_barlow_twins(zs, lambd=0.0051, scale=1.0, eps=1e-5, multiview="pairs"):
    """(loss, on_diagonal, off_diagonal) of spec §1 (pairs) or §5 (mean)."""
    zs = [z.double() for z in zs]
    if multiview == "pairs":
        res = [ref_pair(zs[a], zs[b], lambd, scale, eps) for a, b in itertools.combinations(range(len(zs)), 2)]
        return tuple(sum(r[i] for r in res) / len(res) for i in range(3))
    n, d = zs[0].shape
    xs = [bn(z, eps) for z in zs]
    zbar = torch.stack(xs).mean(0)
    on = 0.0
    for x in xs:
        for k in range(d):
            on = on + (1 - (x[:, k] * zbar[:, k]).mean()) ** 2
    on = on / len(xs)
    cbar = zbar.T @ zbar / n
    off = cbar[off_mask(d)].square().sum()
    return scale * (on + lambd * off), on, off


def make_views(v, n, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g, dtype=torch.float64)
    zs = [(base + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)) * (1 + torch.rand(d, generator=g,
          dtype=torch.float64)) + torch.randn(d, generator=g, dtype=torch.float64) for _ in range(v)]
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
    hp = dict(lambd=0.013, scale=0.7, eps=1e-5)
    reg = create("barlow_twins", algorithm=algorithm, multiview=multiview, **hp)
    out = reg(*zs)
    loss, on, off = ref_barlow_twins(zs, multiview=multiview, **hp)
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(out.terms["on_diagonal"], on)
    torch.testing.assert_close(out.terms["off_diagonal"], off)
    assert set(out.terms) == {"on_diagonal", "off_diagonal"}
    # the stacked (V, N, D) form gives the same
    torch.testing.assert_close(reg(torch.stack(zs)).loss, out.loss)


def test_defaults_match_the_paper():
    reg = BarlowTwins()
    assert (reg.lambd, reg.scale, reg.eps, reg.algorithm, reg.multiview) == (0.0051, 1.0, 1e-5, "auto", "pairs")
    zs = make_views(2, 16, 12, seed=3)
    torch.testing.assert_close(reg(*zs).loss, ref_barlow_twins(zs)[0])


def test_pairs_mode_averages_the_two_view_loss_over_pairs():
    zs = make_views(3, 10, 6, seed=4)
    reg = BarlowTwins(algorithm="gram")
    pairwise = [reg(zs[a], zs[b]).loss for a, b in [(0, 1), (0, 2), (1, 2)]]
    torch.testing.assert_close(reg(*zs).loss, sum(pairwise) / 3)
    torch.testing.assert_close(reg.pair(zs[0], zs[2]).loss, pairwise[1])


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
def test_decorrelated_identical_views_give_zero_loss(algorithm):
    # centred columns made orthonormal, scaled to unit biased variance: bn(z) = z and C = zᵀz/N = I
    z = torch.randn(16, 6, dtype=torch.float64)
    q, _ = torch.linalg.qr(z - z.mean(0))
    z = q * 16 ** 0.5
    out = BarlowTwins(algorithm=algorithm, eps=1e-12, lambd=1.0)(z, z)
    assert float(out.loss) < 1e-10
    # one perturbed feature: the loss is the reference's and no longer zero
    z2 = z.clone()
    z2[:, 0] += 0.5 * z[:, 1]
    out = BarlowTwins(algorithm=algorithm, eps=1e-12, lambd=1.0)(z, z2)
    torch.testing.assert_close(out.loss, ref_barlow_twins([z, z2], lambd=1.0, eps=1e-12)[0])
    assert float(out.loss) > 1e-3


# --------------------------------------------------------------------------------------------------------------
# algorithms
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multiview, views", [("pairs", 2), ("pairs", 4), ("mean", 3)])
def test_gram_equals_cross_correlation_float32(multiview, views):
    zs = make_views(views, 48, 37, seed=7, dtype=torch.float32)
    res = {}
    for algorithm in ("cross_correlation", "gram"):
        leaves = [z.clone().requires_grad_(True) for z in zs]
        out = BarlowTwins(algorithm=algorithm, multiview=multiview, lambd=0.02)(*leaves)
        out.loss.backward()
        assert out.loss.dtype == torch.float32
        res[algorithm] = (out.loss.detach(), [t.grad for t in leaves])
    torch.testing.assert_close(res["gram"][0], res["cross_correlation"][0], rtol=1e-5, atol=1e-5)
    for gg, gc in zip(res["gram"][1], res["cross_correlation"][1]):
        torch.testing.assert_close(gg, gc, rtol=1e-4, atol=1e-6)


def test_choose_algorithm_follows_the_documented_rule():
    f = _gram.GRAM_COST_FACTOR
    assert f == 1.0
    # two views: gram iff D > (4/3)·N
    assert _gram.choose_algorithm(256, 341) == "cross_correlation"
    assert _gram.choose_algorithm(256, 342) == "gram"
    # self pairs (VICReg, Barlow Twins mean mode): gram iff D > N
    assert _gram.choose_algorithm(256, 256, [(0, 0)]) == "cross_correlation"
    assert _gram.choose_algorithm(256, 257, [(0, 0), (1, 1)]) == "gram"
    # V views in pairs mode: gram iff D > 4·N / (3·(V − 1))
    four = list(itertools.combinations(range(4), 2))
    assert _gram.choose_algorithm(270, 120, four) == "cross_correlation"
    assert _gram.choose_algorithm(270, 121, four) == "gram"
    # the targets: N = 256 with D = 8192 or 16384 go to the Gram form
    assert _gram.choose_algorithm(256, 8192) == _gram.choose_algorithm(256, 16384) == "gram"


@pytest.mark.parametrize("n, d, views, multiview, expected", [
    (7, 5, 2, "pairs", "cross_correlation"),
    (16, 33, 2, "pairs", "gram"),
    (40, 9, 2, "pairs", "cross_correlation"),
    (16, 20, 2, "pairs", "cross_correlation"),  # 20 < 4/3·16
    (16, 20, 3, "pairs", "gram"),  # 20 > 4/3·16/2: shared Gram matrices
    (16, 20, 2, "mean", "gram"),  # 20 > 16
    (40, 9, 3, "mean", "cross_correlation"),
])


def test_auto_picks_what_is_documented(monkeypatch, n, d, views, multiview, expected):
    seen = []
    real = barlow_twins.correlation_stats

    def spy(xs, pairs, algorithm):
        seen.append(algorithm)
        return real(xs, pairs, algorithm)

    monkeypatch.setattr(barlow_twins, "correlation_stats", spy)
    reg = BarlowTwins(multiview=multiview)
    assert reg.algorithm_for(n, d, views) == expected
    reg(*make_views(views, n, d))
    assert seen == [expected]
    assert BarlowTwins(algorithm="gram").algorithm_for(n, d, views) == "gram"


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
def test_kernel_against_explicit_matrices(algorithm):
    g = torch.Generator().manual_seed(11)
    xs = [torch.randn(9, 6, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    pairs = [(0, 1), (1, 1), (2, 0), (0, 2)]
    frob, diags = _gram.correlation_stats(xs, pairs, algorithm)
    ref_c = [xs[a].T @ xs[b] for a, b in pairs]
    ref_frob = torch.stack([c.square().sum() for c in ref_c])
    ref_diags = torch.stack([torch.diagonal(c) for c in ref_c])
    torch.testing.assert_close(frob, ref_frob)
    torch.testing.assert_close(diags, ref_diags)
    torch.testing.assert_close(_gram.frobenius_sq(xs, pairs, algorithm), ref_frob)
    # gradients through both outputs, with arbitrary weights
    w = torch.tensor([0.3, -1.2, 0.7, 2.0], dtype=torch.float64)
    wd = torch.randn(4, 6, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((frob * w).sum() + (diags * wd).sum(), xs, retain_graph=True)
    refs = torch.autograd.grad((ref_frob * w).sum() + (ref_diags * wd).sum(), xs, retain_graph=True)
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b)
    # only one output used: the other's gradient is zero-filled
    for a, b in zip(torch.autograd.grad(diags.sum(), xs), torch.autograd.grad(ref_diags.sum(), xs)):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda *t: _gram.correlation_stats(t, pairs, algorithm), xs)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
def test_frobenius_kernel_input_without_grad(algorithm):
    a = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, dtype=torch.float64)
    out = _gram.frobenius_sq([a, b], [(0, 1)], algorithm)[0]
    (ga,) = torch.autograd.grad(out, a)
    torch.testing.assert_close(ga, 2 * b @ (a.T @ b).T)


def test_frobenius_kernel_rejects_bad_arguments():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="algorithm='x'"):
        _gram.frobenius_sq([x], [(0, 0)], "x")
    with pytest.raises(ValueError, match="out of range"):
        _gram.frobenius_sq([x], [(0, 1)], "gram")
    with pytest.raises(ValueError, match="at least one pair"):
        _gram.frobenius_sq([x], [], "gram")


# --------------------------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("multiview, views", [("pairs", 2), ("pairs", 3), ("mean", 3)])
def test_gradcheck(algorithm, multiview, views):
    zs = [z.requires_grad_(True) for z in make_views(views, 6, 5, seed=2)]
    reg = BarlowTwins(algorithm=algorithm, multiview=multiview, lambd=0.1)
    assert torch.autograd.gradcheck(lambda *t: reg(*t).loss, zs)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
def test_gradient_matches_reference(algorithm, multiview):
    zs = [z.requires_grad_(True) for z in make_views(3, 11, 7, seed=5)]
    out = BarlowTwins(algorithm=algorithm, multiview=multiview, lambd=0.05, scale=2.0)(*zs).loss
    ref = ref_barlow_twins(zs, lambd=0.05, scale=2.0, multiview=multiview)[0]
    for a, b in zip(torch.autograd.grad(out, zs), torch.autograd.grad(ref, zs)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
def test_gradgradcheck(algorithm, multiview):
    zs = [z.requires_grad_(True) for z in make_views(3, 5, 4, seed=8)]
    reg = BarlowTwins(algorithm=algorithm, multiview=multiview, lambd=0.3)
    assert torch.autograd.gradgradcheck(lambda *t: reg(*t).loss, zs)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
def test_kernel_gradgradcheck(algorithm):
    g = torch.Generator().manual_seed(12)
    xs = [torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    assert torch.autograd.gradgradcheck(lambda *t: _gram.correlation_stats(t, [(0, 1), (1, 1)], algorithm), xs)


# --------------------------------------------------------------------------------------------------------------
# extreme scales and constant features (issue 12, item 8)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("scale", [1e-20, 1e10, 1e20, 1e30])
def test_float32_at_extreme_scales_matches_float64(algorithm, scale):
    """Standardisation makes the loss scale-invariant; float32 embeddings at 1e20 or 1e30 must give the float64
    reference (16.0 instead of about 16.7 before the overflow guard)."""
    zs = [(z * scale).float() for z in make_views(2, 64, 16, seed=40)]
    out = BarlowTwins(algorithm=algorithm)(*zs)
    ref = ref_barlow_twins([z.double() for z in zs])
    torch.testing.assert_close(out.loss.double(), ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.terms["off_diagonal"].double(), ref[2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("value", [0.0, 3.0, 1e6, 1e20])
def test_constant_features_standardise_to_zero(algorithm, value):
    """A zero-variance feature standardises to 0, as BatchNorm1d in float64 does: it adds 1 to the on-diagonal
    term and nothing off the diagonal; the loss and the gradient stay finite. All-constant views give scale·D."""
    zs = [z.float() for z in make_views(2, 16, 6, seed=41)]
    for z in zs:
        z[:, 2] = value
    leaves = [z.clone().requires_grad_(True) for z in zs]
    out = BarlowTwins(algorithm=algorithm, lambd=0.1)(*leaves)
    out.loss.backward()
    ref = ref_barlow_twins([z.double() for z in zs], lambd=0.1)
    torch.testing.assert_close(out.loss.double(), ref[0], rtol=1e-5, atol=1e-5)
    assert all(bool(torch.isfinite(z.grad).all()) for z in leaves)
    flat = [torch.full((8, 5), value, requires_grad=True) for _ in range(2)]
    out = BarlowTwins(algorithm=algorithm, scale=2.0)(*flat)
    out.loss.backward()
    assert float(out.loss.detach()) == 2.0 * 5 and all(bool(torch.isfinite(z.grad).all()) for z in flat)


# --------------------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# --------------------------------------------------------------------------------------------------------------
def official_formulation(z1, z2, lambd=0.0051):
    """The official main.py's steps (BatchNorm1d, C.div_, the flatten/view off-diagonal copy), for the memory
    comparison."""
    n, d = z1.shape
    bn_ = torch.nn.BatchNorm1d(d, affine=False).to(z1.device)
    c = bn_(z1).T @ bn_(z2)
    c.div_(n)
    on = torch.diagonal(c).add_(-1).pow_(2).sum()
    off = c.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten().pow_(2).sum()
    return on + lambd * off


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
    ref = ref_barlow_twins(zs, multiview="pairs")[0]
    reg = BarlowTwins(algorithm=algorithm)
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
    reg = BarlowTwins()
    assert reg.algorithm_for(n, d) == "gram"
    ours = _peak_bytes(lambda a, b: reg(a, b).loss, n, d)
    assert ours <= official / 10, (ours, official)
