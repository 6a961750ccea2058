"""SFRIK against references written from the paper's formulas (float64, explicit loops), plus the
Legendre recurrence, the kernel's orthogonality, gradients, dtypes, bad inputs and the distributed contract
of the three sphere-based regularizers (sfrik, uniformity, simclr) in one spawn."""

import math

import numpy as np
import pytest
import torch

from sslbench.regularizers import create
from sslbench.regularizers.sfrik import SFRIK, legendre, sphere_kernel


# ----------------------------------------------------------------------------------------------------------
# References (float64, from the formulas)
# ----------------------------------------------------------------------------------------------------------
def closed_form_p(k, d, t):
    """P_1..P_3 as printed in the spec, P_4 as in the official file (valeoai/sfrik legendre_polynomial)."""
    if k == 1:
        return t
    if k == 2:
        return (d * t**2 - 1) / (d - 1)
    if k == 3:
        return ((d + 2) * t**3 - 3 * t) / (d - 1)
    if k == 4:
        a1 = 1 + 6 / (d - 1) + 3 / ((d + 1) * (d - 1))
        a2 = -6 / (d - 1) * (1 + 1 / (d + 1))
        a3 = 3 / ((d + 1) * (d - 1))
        return a1 * t**4 + a2 * t**2 + a3
    raise ValueError(k)


def gegenbauer_normalised(k, d, t):
    """P_k for dimension d from scipy's Gegenbauer C_k^{(d-2)/2} (Chebyshev cos(kθ) for d = 2), P_k(1) = 1."""
    if d == 2:
        return math.cos(k * math.acos(max(-1.0, min(1.0, t))))
    special = pytest.importorskip("scipy.special")
    alpha = (d - 2) / 2
    return float(special.eval_gegenbauer(k, alpha, t) / special.eval_gegenbauer(k, alpha, 1.0))


def ref_p(k, d, t):
    return closed_form_p(k, d, t) if k <= 4 else gegenbauer_normalised(k, d, t)


def ref_sphere(z):
    z = np.asarray(z, dtype=np.float64)
    return [row / math.sqrt(sum(x * x for x in row)) for row in z]


def ref_mmd(e, weights):
    n, d = len(e), len(e[0])
    total = 0.0
    for i in range(n):
        for j in range(n):
            t = float(np.dot(e[i], e[j]))
            total += sum(w * ref_p(k, d, t) for k, w in enumerate(weights, start=1))
    return total / (n * n)


def ref_mse(a, b):
    n, d = len(a), len(a[0])
    return sum((a[i][k] - b[i][k]) ** 2 for i in range(n) for k in range(d)) / (n * d)


def ref_sfrik(zs, sim_coeff, mmd_coeff, weights, multiview):
    es = [ref_sphere(z) for z in zs]
    v = len(es)
    if multiview == "pairs":
        pairs = [(a, b) for a in range(v) for b in range(a + 1, v)]
        inv = sum(ref_mse(es[a], es[b]) for a, b in pairs) / len(pairs)
        mmd = sum((ref_mmd(es[a], weights) + ref_mmd(es[b], weights)) / 2 for a, b in pairs) / len(pairs)
    else:
        mean = [sum(es[w][i] for w in range(v)) / v for i in range(len(es[0]))]
        consensus = ref_sphere(mean)
        inv = sum(ref_mse(e, consensus) for e in es) / v
        mmd = sum(ref_mmd(e, weights) for e in es) / v
    return sim_coeff * inv + mmd_coeff * mmd, inv, mmd


# ----------------------------------------------------------------------------------------------------------
# Legendre polynomials
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 7, 128])
def test_recurrence_matches_closed_forms_and_official_p4(d):
    t = torch.linspace(-1, 1, 41, dtype=torch.float64)
    for k in range(1, 5):
        expected = torch.tensor([closed_form_p(k, d, float(x)) for x in t], dtype=torch.float64)
        torch.testing.assert_close(legendre(t, k, d), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [2, 3, 5, 16])
def test_recurrence_matches_gegenbauer_high_degree(d):
    t = torch.linspace(-1, 1, 17, dtype=torch.float64)
    for k in range(5, 9):
        expected = torch.tensor([gegenbauer_normalised(k, d, float(x)) for x in t], dtype=torch.float64)
        torch.testing.assert_close(legendre(t, k, d), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("d", [2, 3, 5, 33, 2048])
def test_legendre_is_one_at_one(d):
    one = torch.ones((), dtype=torch.float64)
    for k in range(0, 10):
        assert float(legendre(one, k, d)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("d, power", [(5, 1), (7, 2)])
def test_legendre_orthogonal_for_the_sphere_weight(d, power):
    # weight (1 - t^2)^{(d-3)/2} is a polynomial for odd d, so Gauss-Legendre quadrature is exact
    nodes, w = np.polynomial.legendre.leggauss(20)
    t = torch.tensor(nodes, dtype=torch.float64)
    weight = torch.tensor(w, dtype=torch.float64) * (1 - t**2) ** power
    p = [legendre(t, k, d) for k in range(7)]
    for j in range(7):
        for k in range(7):
            inner = float((weight * p[j] * p[k]).sum())
            if j == k:
                assert inner > 1e-3
            else:
                assert abs(inner) < 1e-12, (j, k, inner)


def test_sphere_kernel_is_weighted_sum_of_legendre():
    t = torch.linspace(-1, 1, 9, dtype=torch.float64)
    weights = (0.5, 0.0, 3.0, 1.5, 2.0)
    expected = sum(w * legendre(t, k, 6) for k, w in enumerate(weights, start=1))
    torch.testing.assert_close(sphere_kernel(t, weights, 6), expected)


# ----------------------------------------------------------------------------------------------------------
# The loss against the reference
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v", [2, 3])
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
@pytest.mark.parametrize("n, d, weights", [(6, 5, (1.0, 40.0, 40.0)), (5, 7, (0.3, 2.0, 0.0, 1.5, 0.7)),
                                           (7, 3, (2.0,))])


def test_sfrik_matches_reference(v, multiview, n, d, weights):
    g = torch.Generator().manual_seed(n * 100 + d * 10 + v)
    zs = torch.randn(v, n, d, generator=g, dtype=torch.float64) + 0.3
    reg = create("sfrik", sim_coeff=7.0, mmd_coeff=0.5, weights=weights, multiview=multiview)
    out = reg(zs)
    loss, inv, mmd = ref_sfrik(zs, 7.0, 0.5, weights, multiview)
    assert out.loss.dtype == torch.float64
    assert float(out.terms["invariance"]) == pytest.approx(inv, rel=1e-10, abs=1e-12)
    assert float(out.terms["mmd"]) == pytest.approx(mmd, rel=1e-10, abs=1e-12)
    assert float(out.loss) == pytest.approx(loss, rel=1e-10, abs=1e-12)


def test_sfrik_defaults_are_the_official_ones():
    reg = SFRIK()
    assert (reg.sim_coeff, reg.mmd_coeff, reg.weights, reg.multiview) == (4000.0, 1.0, (1.0, 40.0, 40.0), "pairs")
    zs = torch.randn(2, 6, 5, dtype=torch.float64)
    loss, _, _ = ref_sfrik(zs, 4000.0, 1.0, (1.0, 40.0, 40.0), "pairs")
    assert float(reg(zs).loss) == pytest.approx(loss, rel=1e-10)


def test_sfrik_is_scale_invariant_per_row():
    z = torch.randn(2, 8, 5, dtype=torch.float64)
    scale = torch.rand(2, 8, 1, dtype=torch.float64) * 10 + 0.1
    reg = SFRIK()
    torch.testing.assert_close(reg(z).loss, reg(z * scale).loss)


@pytest.mark.parametrize("d", [5, 9])
def test_degree_two_truncation_is_the_covariance_penalty(d):
    e = torch.nn.functional.normalize(torch.randn(11, d, dtype=torch.float64) + 0.5, dim=1)
    w2 = 3.0
    out = SFRIK(weights=(0.0, w2))(e, e)  # identical views: invariance 0, mmd of e
    assert float(out.terms["invariance"]) == 0.0
    second_moment = e.T @ e / e.shape[0]
    expected = w2 * (d * float((second_moment**2).sum()) - 1) / (d - 1)
    assert float(out.terms["mmd"]) == pytest.approx(expected, rel=1e-12)


def test_mmd_of_uniform_sample_is_near_zero_and_of_a_cap_is_not():
    g = torch.Generator().manual_seed(0)
    n, d = 1500, 5
    u = torch.randn(n, d, generator=g, dtype=torch.float64)
    out = SFRIK(weights=(1.0, 1.0, 1.0))(u, u)
    # E[mmd] = sum(w)/N = 0.002 for uniform rows (diagonal terms only); standard deviation ~ 1e-3. A wrong
    # polynomial (e.g. P_2 = t^2, P_3 = t^3 or a missing normalisation) shifts the value by >= 1/D = 0.2.
    assert abs(float(out.terms["mmd"]) - 3.0 / n) < 0.01
    cap = u.clone()
    cap[:, 0] = cap[:, 0].abs() + 2.0  # concentrated around e_1
    assert float(SFRIK(weights=(1.0, 1.0, 1.0))(cap, cap).terms["mmd"]) > 0.5


def test_mmd_is_nonnegative_for_nonnegative_weights():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        z = torch.randn(9, 4, generator=g, dtype=torch.float64) + torch.randn(4, generator=g, dtype=torch.float64)
        assert float(SFRIK(weights=(0.5, 2.0, 1.0, 3.0))(z, z).terms["mmd"]) >= -1e-12


# ----------------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multiview, v", [("pairs", 2), ("pairs", 3), ("mean", 3)])
def test_sfrik_gradcheck(multiview, v):
    zs = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(v)]
    reg = SFRIK(sim_coeff=5.0, weights=(1.0, 2.0, 3.0, 0.5), multiview=multiview)
    assert torch.autograd.gradcheck(lambda *z: reg(*z).loss, zs)


# ----------------------------------------------------------------------------------------------------------
# Hyper-parameters (the bad values are in test_conformance.py)
# ----------------------------------------------------------------------------------------------------------
def test_sfrik_weights_accept_lists_arrays_and_the_official_string():
    assert SFRIK(weights=[1, 40, 40]).weights == (1.0, 40.0, 40.0)
    assert SFRIK(weights=np.array([1.0, 2.5], dtype=np.float32)).weights == (1.0, 2.5)
    assert SFRIK(weights="1-40-40").weights == (1.0, 40.0, 40.0)
    assert create("sfrik", weights=(0.0, 2.0)).hparams()["weights"] == (0.0, 2.0)


@pytest.mark.parametrize("name", ["sfrik", "uniformity", "simclr"])
def test_sphere_family_is_scale_invariant_in_float32_at_extreme_scales(name):
    """The losses on the sphere do not depend on the embeddings' scale: float32 at 1e20 (where the row norms
    overflowed and every row became 0) gives the float64 loss."""
    z = torch.randn(2, 8, 6, dtype=torch.float64)
    ref = create(name)(z).loss
    torch.testing.assert_close(create(name)((z * 1e20).float()).loss.double(), ref, rtol=1e-4, atol=1e-4)
