"""VICReg (sslbench/regularizers/vicreg.py) against a reference written from the formulas (spec §2) in float64
with explicit means, unbiased variances, the full D×D covariance and an explicit off-diagonal mask."""

import itertools

import pytest
import torch

from distributed_harness import run_ranks
from dist_bt_vicreg_cases import regularizer_cases
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
# dtypes, autocast
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("dtype, expected", [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                             (torch.float32, torch.float32), (torch.float64, torch.float64)])
def test_dtypes(algorithm, dtype, expected):
    zs = [z.to(dtype).requires_grad_(True) for z in make_views(2, 12, 9, dtype=torch.float32)]
    out = VICReg(algorithm=algorithm)(*zs)
    assert out.loss.dtype == expected
    assert all(t.dtype == expected for t in out.terms.values())
    out.loss.backward()
    assert all(z.grad.dtype == dtype for z in zs)
    torch.testing.assert_close(out.loss.double(), ref_vicreg([z.detach() for z in zs])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["cross_correlation", "gram"])
@pytest.mark.parametrize("multiview", ["pairs", "mean"])
def test_autocast_computes_in_float32(algorithm, multiview):
    zs = make_views(3, 20, 13, seed=9, dtype=torch.float32)
    reg = VICReg(algorithm=algorithm, multiview=multiview)
    leaves = [z.clone().requires_grad_(True) for z in zs]
    expected = reg(*leaves)
    expected.loss.backward()
    leaves_ac = [z.clone().requires_grad_(True) for z in zs]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = reg(*leaves_ac)
        got.loss.backward()
    assert got.loss.dtype == torch.float32
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-6, atol=1e-6)
    for a, b in zip(leaves_ac, leaves):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------------------------
# hyper-parameters and inputs
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hparams, name", [
    (dict(sim_coeff=-1.0), "sim_coeff"), (dict(std_coeff=-1.0), "std_coeff"), (dict(cov_coeff=-0.5), "cov_coeff"),
    (dict(eps=0.0), "eps"), (dict(eps=-1e-4), "eps"), (dict(algorithm="fft"), "algorithm"),
    (dict(multiview="all"), "multiview"), (dict(sim_coeff=float("inf")), "sim_coeff"), (dict(lambd=0.1), "lambd"),
])
def test_bad_hyper_parameters_raise(hparams, name):
    with pytest.raises(ValueError, match=name):
        create("vicreg", **hparams)


def test_bad_inputs_raise():
    reg = VICReg()
    with pytest.raises(ValueError, match="at least 2 views"):
        reg(torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match="N >= 2"):
        reg(torch.randn(1, 3), torch.randn(1, 3))
    z = torch.randn(4, 3)
    z[1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        VICReg(check_finite=True)(z, torch.randn(4, 3))


# --------------------------------------------------------------------------------------------------------------
# distributed contract (2 real gloo processes, all cases in one spawn)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.distributed
def test_distributed_contract():
    world, n, d = 2, 12, 7
    z_full = torch.stack(make_views(3, n, d, seed=21))
    cases = [("vicreg", dict(algorithm=alg, multiview=mv, std_coeff=10.0), v)
             for alg in ("cross_correlation", "gram", "auto") for mv in ("pairs", "mean") for v in (2, 3)]
    results = run_ranks(regularizer_cases, world, z_full, cases)
    h = n // world
    for i, (name, hp, v) in enumerate(cases):
        z = z_full[:v].clone().requires_grad_(True)
        single = create(name, **hp)(z)
        single.loss.backward()
        torch.testing.assert_close(single.loss, ref_vicreg(list(z_full[:v]), std_coeff=10.0,
                                                           multiview=hp["multiview"])[0])
        losses = torch.stack([results[r][i]["loss"] for r in range(world)])
        torch.testing.assert_close(losses.mean(), single.loss.detach(), msg=f"case {i}: {hp}, V={v}")
        for r in range(world):
            torch.testing.assert_close(results[r][i]["grad"], world * z.grad[:, r * h:(r + 1) * h],
                                       msg=f"case {i}: {hp}, V={v}, rank {r}")
            # variance and covariance are global; the invariance is the rank's local one
            for k in ("variance", "covariance"):
                torch.testing.assert_close(results[r][i]["terms"][k], single.terms[k].detach())
        invs = torch.stack([results[r][i]["terms"]["invariance"] for r in range(world)])
        torch.testing.assert_close(invs.mean(), single.terms["invariance"].detach())


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
