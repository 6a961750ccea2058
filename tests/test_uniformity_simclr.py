"""Uniformity (alignment & uniformity) and SimCLR's NT-Xent against references written from the formulas
(float64, explicit loops over pairs and anchors), plus gradients, dtypes, stability and bad inputs.
The distributed contract of both is tested with SFRIK's in tests/test_sfrik.py (one spawn)."""

import math

import pytest
import torch

from sslbench.regularizers import create
from sslbench.regularizers.simclr import SimCLR
from sslbench.regularizers.uniformity import Uniformity


# ----------------------------------------------------------------------------------------------------------
# References (float64, from the formulas)
# ----------------------------------------------------------------------------------------------------------
def ref_sphere(z):
    rows = [[float(x) for x in row] for row in z]
    return [[x / math.sqrt(sum(y * y for y in row)) for x in row] for row in rows]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def ref_mse(a, b):
    n, d = len(a), len(a[0])
    return sum((a[i][k] - b[i][k]) ** 2 for i in range(n) for k in range(d)) / (n * d)


def ref_unif(e, t):
    """Wang & Isola's form: log mean_{i != j} exp(-t ||e_i - e_j||^2)."""
    n = len(e)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += math.exp(-t * sum((x - y) ** 2 for x, y in zip(e[i], e[j])))
    return math.log(total / (n * (n - 1)))


def ref_consensus(es):
    v, n = len(es), len(es[0])
    mean = [[sum(es[w][i][k] for w in range(v)) / v for k in range(len(es[0][0]))] for i in range(n)]
    return ref_sphere(mean)


def ref_uniformity_loss(zs, sim_coeff, unif_coeff, t, multiview):
    es = [ref_sphere(z) for z in zs]
    v = len(es)
    if multiview == "pairs":
        pairs = [(a, b) for a in range(v) for b in range(a + 1, v)]
        inv = sum(ref_mse(es[a], es[b]) for a, b in pairs) / len(pairs)
        unif = sum((ref_unif(es[a], t) + ref_unif(es[b], t)) / 2 for a, b in pairs) / len(pairs)
    else:
        c = ref_consensus(es)
        inv = sum(ref_mse(e, c) for e in es) / v
        unif = sum(ref_unif(e, t) for e in es) / v
    return sim_coeff * inv + unif_coeff * unif, inv, unif


def ref_nt_xent(za, zb, tau):
    """SimCLR: 2N anchors, positive the other view of the same sample, denominator over the 2N - 1 others."""
    u = ref_sphere(za) + ref_sphere(zb)
    n2 = len(u)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        p = i + n if i < n else i - n
        denominator = sum(math.exp(dot(u[i], u[k]) / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(dot(u[i], u[p]) / tau) / denominator)
    return total / n2


def ref_supcon(zs, tau):
    """Multi-positive NT-Xent (SupCon L_out, label = sample index) over V views."""
    es = [ref_sphere(z) for z in zs]
    v, n = len(es), len(es[0])
    total = 0.0
    for a in range(v):
        for i in range(n):
            denominator = sum(math.exp(dot(es[a][i], es[w][j]) / tau)
                              for w in range(v) for j in range(n) if (w, j) != (a, i))
            positives = [w for w in range(v) if w != a]
            total += -sum(math.log(math.exp(dot(es[a][i], es[w][i]) / tau) / denominator)
                          for w in positives) / len(positives)
    return total / (v * n)


# ----------------------------------------------------------------------------------------------------------
# Uniformity
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v", [2, 3])
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
@pytest.mark.parametrize("n, d, t", [(6, 5, 2.5), (5, 3, 0.7)])
def test_uniformity_matches_reference(v, multiview, n, d, t):
    g = torch.Generator().manual_seed(n * 100 + d * 10 + v)
    zs = torch.randn(v, n, d, generator=g, dtype=torch.float64) + 0.2
    out = create("uniformity", sim_coeff=11.0, unif_coeff=0.7, t=t, multiview=multiview)(zs)
    loss, inv, unif = ref_uniformity_loss(zs, 11.0, 0.7, t, multiview)
    assert out.loss.dtype == torch.float64
    assert float(out.terms["invariance"]) == pytest.approx(inv, rel=1e-10, abs=1e-12)
    assert float(out.terms["uniformity"]) == pytest.approx(unif, rel=1e-10, abs=1e-12)
    assert float(out.loss) == pytest.approx(loss, rel=1e-10, abs=1e-12)


def test_uniformity_defaults():
    reg = Uniformity()
    assert (reg.sim_coeff, reg.unif_coeff, reg.t, reg.multiview) == (3000.0, 1.0, 2.5, "pairs")
    zs = torch.randn(2, 5, 4, dtype=torch.float64)
    assert float(reg(zs).loss) == pytest.approx(ref_uniformity_loss(zs, 3000.0, 1.0, 2.5, "pairs")[0], rel=1e-10)


def test_uniformity_is_stable_for_large_t_in_float32():
    # near-orthogonal / antipodal rows (cosines <= ~0.1): exp(-2t(1 - <e_i, e_j>)) is below exp(-250) for
    # every pair at t = 150, which underflows to 0 in float32, so a naive log(mean(exp(.))) gives -inf; the
    # log-sum-exp must match the float64 reference.
    g = torch.Generator().manual_seed(3)
    spread = torch.cat([torch.eye(4), -torch.eye(4)])
    z = torch.stack([spread, spread.flip(0)]) + 0.05 * torch.randn(2, 8, 4, generator=g)
    e = torch.nn.functional.normalize(z[0], dim=1)
    naive = torch.log(torch.exp(-300.0 * (1 - e @ e.T))[~torch.eye(8, dtype=torch.bool)].mean())
    assert torch.isinf(naive)  # the case really underflows
    out = Uniformity(t=150.0)(z)
    assert torch.isfinite(out.loss)
    expected = ref_uniformity_loss(z.double(), 3000.0, 1.0, 150.0, "pairs")[2]
    assert float(out.terms["uniformity"]) == pytest.approx(expected, rel=1e-4)
    z.requires_grad_(True)
    Uniformity(t=150.0)(z).loss.backward()
    assert torch.isfinite(z.grad).all()


def test_uniformity_collapse_gives_zero_and_spread_gives_negative():
    collapsed = torch.ones(2, 6, 4, dtype=torch.float64)
    assert float(Uniformity()(collapsed).terms["uniformity"]) == pytest.approx(0.0, abs=1e-12)
    spread = torch.cat([torch.eye(4), -torch.eye(4)]).double()
    assert float(Uniformity()(spread, spread).terms["uniformity"]) < -4.0


@pytest.mark.parametrize("multiview, v", [("pairs", 2), ("pairs", 3), ("mean", 3)])
def test_uniformity_gradcheck(multiview, v):
    zs = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(v)]
    reg = Uniformity(sim_coeff=5.0, t=1.5, multiview=multiview)
    assert torch.autograd.gradcheck(lambda *z: reg(*z).loss, zs)


# ----------------------------------------------------------------------------------------------------------
# SimCLR
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, d, tau", [(5, 3, 0.15), (4, 7, 0.5)])
def test_simclr_two_views_matches_nt_xent(n, d, tau):
    g = torch.Generator().manual_seed(n + d)
    za, zb = torch.randn(2, n, d, generator=g, dtype=torch.float64)
    out = create("simclr", temperature=tau)(za, zb)
    assert out.loss.dtype == torch.float64
    assert float(out.loss) == pytest.approx(ref_nt_xent(za, zb, tau), rel=1e-10)
    assert torch.equal(out.terms["nt_xent"], out.loss)
    # the official (SFRIK) form via cross-entropy on [positive, negatives] logits agrees too
    u = torch.nn.functional.normalize(torch.cat([za, zb]), dim=1)
    sim = u @ u.T / tau
    logits = []
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        negatives = [k for k in range(2 * n) if k not in (i, p)]
        logits.append(torch.cat([sim[i, p:p + 1], sim[i, negatives]]))
    ce = torch.nn.functional.cross_entropy(torch.stack(logits), torch.zeros(2 * n, dtype=torch.long))
    torch.testing.assert_close(out.loss, ce)


def test_simclr_pairs_three_views_is_mean_of_pair_losses():
    g = torch.Generator().manual_seed(7)
    zs = torch.randn(3, 5, 3, generator=g, dtype=torch.float64)
    expected = sum(ref_nt_xent(zs[a], zs[b], 0.15) for a, b in [(0, 1), (0, 2), (1, 2)]) / 3
    assert float(SimCLR()(zs).loss) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("v, n, d", [(3, 5, 3), (4, 3, 5)])
def test_simclr_mean_is_multi_positive_supcon(v, n, d):
    g = torch.Generator().manual_seed(v * n * d)
    zs = torch.randn(v, n, d, generator=g, dtype=torch.float64)
    out = SimCLR(temperature=0.4, multiview="mean")(zs)
    assert float(out.loss) == pytest.approx(ref_supcon(zs, 0.4), rel=1e-10)


def test_simclr_mean_with_two_views_is_nt_xent():
    zs = torch.randn(2, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(SimCLR(multiview="mean")(zs).loss, SimCLR()(zs).loss)
    assert float(SimCLR(multiview="mean")(zs).loss) == pytest.approx(ref_nt_xent(zs[0], zs[1], 0.15), rel=1e-10)


def test_simclr_default_temperature_and_row_scale_invariance():
    reg = SimCLR()
    assert reg.temperature == 0.15 and reg.multiview == "pairs"
    z = torch.randn(2, 6, 5, dtype=torch.float64)
    scale = torch.rand(2, 6, 1, dtype=torch.float64) * 5 + 0.1
    torch.testing.assert_close(reg(z).loss, reg(z * scale).loss)


@pytest.mark.parametrize("multiview, v", [("pairs", 2), ("pairs", 3), ("mean", 3)])
def test_simclr_gradcheck(multiview, v):
    zs = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(v)]
    reg = SimCLR(temperature=0.5, multiview=multiview)
    assert torch.autograd.gradcheck(lambda *z: reg(*z).loss, zs)
