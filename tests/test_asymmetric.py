"""Tests of the asymmetric regularizers byol, directpred, isoloss against references written from the formulas
(spec §6; fmi-basel/implicit-var-reg), in float64 with naive loops and explicit matrices."""

import pytest
import torch

from dist_asym_cases import asymmetric_contract
from distributed_harness import run_ranks
from sslbench import regularizers
from sslbench.regularizers import _asymmetric as A

DT = torch.float64


# --------------------------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------------------------
def ref_cosine_loss(p, zt):
    """mean_n (2 − 2 cos(p_n, zt_n)), one sample at a time."""
    total = 0.0
    for n in range(p.shape[0]):
        total = total + 2 - 2 * torch.dot(p[n], zt[n]) / (torch.sqrt(torch.dot(p[n], p[n])) *
                                                          torch.sqrt(torch.dot(zt[n], zt[n])))
    return total / p.shape[0]


def ref_correlation(z):
    """(1/N) Σ_n z_n z_nᵀ with explicit outer products."""
    c = torch.zeros(z.shape[1], z.shape[1], dtype=z.dtype)
    for n in range(z.shape[0]):
        c += torch.outer(z[n], z[n])
    return c / z.shape[0]


def ref_weight(f, alpha, eps, normalize, power=1.0):
    """U diag(s^(α·power)) Uᵀ with s from the spec; power 0.5 gives W_p^{1/2} (the p_sqrt matrix)."""
    lam, u = torch.linalg.eigh(f)
    if normalize:
        s = torch.clamp(lam, min=0) / lam.max() + eps
    else:
        s = torch.clamp(lam, 0, 1e6)
    return u @ torch.diag(s ** (alpha * power)) @ u.T


def ref_iso_loss(z, zt, w, w_sqrt):
    """−2 mean_n sim_n with sim from the paper, p = z W_p, p_sqrt = z W_p^{1/2}, one sample at a time."""
    total = 0.0
    for n in range(z.shape[0]):
        p, ps, t = z[n] @ w, z[n] @ w_sqrt, zt[n]
        pn, tn = p.norm(), t.norm()
        sim = torch.dot(z[n], t) / (pn * tn) - 0.5 * torch.dot(p, t) / (pn ** 3 * tn) * torch.dot(ps, ps)
        total = total - 2 * sim
    return total / z.shape[0]


def ref_run(calls, *, tau, alpha, eps, normalize, iso=False, f0=None):
    """Replays training-mode calls: per view v, F ← τF + (1−τ)·corr(z_v), then W_v from F.
    Returns the loss of the last call, F, and the per-view predictors of the last call."""
    d = calls[0][0].shape[-1]
    f = torch.zeros(d, d, dtype=DT) if f0 is None else f0.clone()
    for online, target in calls:
        ws, wsq = [], []
        for z in online:
            f = tau * f + (1 - tau) * ref_correlation(z)
            ws.append(ref_weight(f, alpha, eps, normalize))
            wsq.append(ref_weight(f, alpha, eps, normalize, power=0.5))
        loss = ref_pair_loss(online, target, ws, wsq, iso)
    return loss, f, ws


def ref_pair_loss(online, target, ws, wsq, iso):
    v = len(online)
    loss = 0.0
    for i in range(v):
        for j in range(v):
            if i != j:
                if iso:
                    loss = loss + ref_iso_loss(online[i], target[j], ws[i], wsq[i])
                else:
                    loss = loss + ref_cosine_loss(online[i] @ ws[i], target[j])
    return loss


def ref_isotropic_grad(online, target, ws):
    """The paper's isotropic update: ∂L/∂z_i = Σ_{j≠i} −(2/N)[z_t/(‖p‖‖z_t‖) − ⟨p,z_t⟩ p/(‖p‖³‖z_t‖)]."""
    v, n = len(online), online[0].shape[0]
    grads = torch.zeros(v, *online[0].shape, dtype=DT)
    for i in range(v):
        for j in range(v):
            if i == j:
                continue
            for k in range(n):
                p, t = online[i][k] @ ws[i], target[j][k]
                pn, tn = p.norm(), t.norm()
                grads[i, k] += -2.0 / n * (t / (pn * tn) - torch.dot(p, t) * p / (pn ** 3 * tn))
    return grads


def views(v, n, d, seed, dtype=DT, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(v, n, d, generator=g, dtype=dtype) + shift


# --------------------------------------------------------------------------------------------------------------
# BYOL
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v, n, d", [(2, 6, 5), (3, 5, 7), (2, 9, 2)])
def test_byol_matches_reference(v, n, d):
    p, zt = views(v, n, d, 1), views(v, n, d, 2)
    reg = regularizers.create("byol")
    out = reg(p, zt)
    ref = sum(ref_cosine_loss(p[i], zt[j]) for i in range(v) for j in range(v) if i != j)
    torch.testing.assert_close(out.loss, ref)
    torch.testing.assert_close(out.terms["cosine"], ref)
    torch.testing.assert_close(reg(list(p), list(zt)).loss, out.loss)  # sequence == stacked
    assert reg.symmetric is False


def test_byol_gradcheck_and_stop_gradient():
    p = views(2, 5, 3, 3).requires_grad_(True)
    zt = views(2, 5, 3, 4).requires_grad_(True)
    reg = regularizers.create("byol")
    assert torch.autograd.gradcheck(lambda x: reg(x, zt.detach()).loss, (p,))
    reg(p, zt).loss.backward()
    assert zt.grad is None and p.grad is not None  # the target is detached inside the loss


def test_byol_perfect_prediction_is_zero():
    zt = views(2, 4, 6, 5)
    out = regularizers.create("byol")(3.0 * zt.flip(0), zt)  # p_i ∝ z_t_j for the pair (i, j≠i)
    torch.testing.assert_close(out.loss, torch.zeros((), dtype=DT))


# --------------------------------------------------------------------------------------------------------------
# DirectPred / IsoLoss: values and state
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, iso", [("directpred", False), ("isoloss", True)])
@pytest.mark.parametrize("hp", [dict(alpha=0.5, tau=0.998, eps=0.0, normalize=True),
                                dict(alpha=1.0, tau=0.9, eps=0.25, normalize=True),  # DirectCopy
                                dict(alpha=0.7, tau=0.5, eps=0.1, normalize=False)])
def test_training_calls_match_explicit_ema_reference(name, iso, hp):
    d = 5
    calls = [(views(2, 8, d, 10 + k, shift=0.3), views(2, 8, d, 20 + k)) for k in range(3)]
    reg = regularizers.create(name, **hp)
    for online, target in calls:
        out = reg(online, target)
    loss, f, ws = ref_run(calls, iso=iso, **hp)
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(reg.F, f)
    assert reg.F.dtype == DT and int(reg.num_updates) == 3 * 2  # one EMA update per view and call
    key = "isoloss" if iso else "cosine"
    torch.testing.assert_close(out.terms[key], loss)
    if iso:  # the diagnostic is BYOL's loss of the same predictions
        last_online, last_target = calls[-1]
        torch.testing.assert_close(out.terms["cosine"],
                                   ref_pair_loss(last_online, last_target, ws, ws, iso=False))


def test_three_views_odd_dim_and_sequence_input():
    online, target = views(3, 7, 9, 30), views(3, 7, 9, 31)
    a, b = regularizers.create("isoloss", tau=0.7), regularizers.create("isoloss", tau=0.7)
    out_a, out_b = a(online, target), b(list(online), list(target))
    loss, f, _ = ref_run([(online, target)], tau=0.7, alpha=0.5, eps=0.0, normalize=True, iso=True)
    torch.testing.assert_close(out_a.loss, loss)
    torch.testing.assert_close(out_b.loss, out_a.loss)
    torch.testing.assert_close(a.F, f)
    torch.testing.assert_close(b.F, f)


@pytest.mark.parametrize("name, iso", [("directpred", False), ("isoloss", True)])
def test_eval_mode_freezes_the_state(name, iso):
    reg = regularizers.create(name, tau=0.6)
    reg(views(2, 8, 4, 40), views(2, 8, 4, 41))
    f, count = reg.F.clone(), int(reg.num_updates)
    reg.eval()
    online, target = views(2, 8, 4, 42), views(2, 8, 4, 43)
    out = reg(online, target)
    assert torch.equal(reg.F, f) and int(reg.num_updates) == count
    w, wsq = ref_weight(f, 0.5, 0.0, True), ref_weight(f, 0.5, 0.0, True, power=0.5)
    torch.testing.assert_close(out.loss, ref_pair_loss(online, target, [w, w], [wsq, wsq], iso))
    reg.train()
    reg(online, target)
    assert not torch.equal(reg.F, f) and int(reg.num_updates) == count + 2


def test_eval_before_any_update_raises():
    reg = regularizers.create("directpred", dim=4).eval()
    with pytest.raises(RuntimeError, match="training mode"):
        reg(views(2, 5, 4, 0), views(2, 5, 4, 1))
    with pytest.raises(RuntimeError, match="training mode"):
        regularizers.create("isoloss").predictor()


def test_predictor_closed_forms():
    """W_p checked against forms that need no eigendecomposition (F is PSD)."""
    reg = regularizers.create("directpred", tau=0.5)
    reg(views(2, 4, 9, 50, shift=0.2), views(2, 4, 9, 51))  # N·V = 8 < D = 9: rank-deficient F
    f = reg.F
    top = torch.linalg.matrix_norm(f, ord=2)  # λ_max of a PSD matrix
    pred = reg.predictor()
    torch.testing.assert_close(pred.weight, pred.weight.T)
    torch.testing.assert_close(pred.weight @ pred.weight, f / top)  # α = 0.5: W_p² = F/λ_max
    torch.testing.assert_close(pred.eigenvalues, torch.linalg.eigvalsh(f))
    torch.testing.assert_close(pred.spectrum.max(), torch.ones((), dtype=DT))

    def weight(**hp):
        return A.eigen_predictor(f, **hp).weight

    eye = torch.eye(9, dtype=DT)
    torch.testing.assert_close(weight(alpha=1.0, eps=0.25, normalize=True), f / top + 0.25 * eye)  # DirectCopy
    torch.testing.assert_close(weight(alpha=1.0, eps=0.0, normalize=False), f)
    torch.testing.assert_close(weight(alpha=0.0, eps=0.0, normalize=True), eye)


def test_scale_eigenvalues_guards():
    s = torch.tensor([-1e-3, 0.0, 2.0, 4.0], dtype=DT)
    torch.testing.assert_close(A.scale_eigenvalues(s, alpha=1.0, eps=0.1, normalize=True),
                               torch.tensor([0.1, 0.1, 0.6, 1.1], dtype=DT))
    zero = A.scale_eigenvalues(torch.zeros(3, dtype=DT), alpha=0.5, eps=0.0, normalize=True)
    assert torch.isfinite(zero).all() and (zero == 0).all()  # all-zero F: no NaN
    raw = torch.tensor([float("nan"), -2.0, 3.0, 1e7], dtype=DT)
    torch.testing.assert_close(A.scale_eigenvalues(raw, alpha=1.0, eps=0.5, normalize=False),
                               torch.tensor([0.0, 0.0, 3.0, 1e6], dtype=DT))


# --------------------------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------------------------
def test_directpred_gradcheck_in_eval_mode():
    # (IsoLoss is not the gradient of its own value: its detached factors define a surrogate update, checked
    # against the paper's formula in test_isoloss_gradient_is_the_isotropic_update)
    reg = regularizers.create("directpred", tau=0.5)
    reg(views(2, 6, 4, 60, shift=0.5), views(2, 6, 4, 61))
    reg.eval()
    z = views(2, 5, 4, 62).requires_grad_(True)
    zt = views(2, 5, 4, 63)
    assert torch.autograd.gradcheck(lambda x: reg(x, zt).loss, (z,))


def test_isoloss_gradient_is_the_isotropic_update():
    """∂L_iso/∂z = ∂L_BYOL/∂p (no factor W_p); ∂L_DP/∂z = W_p ∂L_BYOL/∂p; the two differ."""
    online, target = views(2, 6, 5, 70, shift=0.4), views(2, 6, 5, 71)
    z_iso = online.clone().requires_grad_(True)
    z_dp = online.clone().requires_grad_(True)
    regularizers.create("isoloss", tau=0.3)(z_iso, target).loss.backward()
    regularizers.create("directpred", tau=0.3)(z_dp, target).loss.backward()
    _, _, ws = ref_run([(online, target)], tau=0.3, alpha=0.5, eps=0.0, normalize=True)
    iso = ref_isotropic_grad(online, target, ws)
    torch.testing.assert_close(z_iso.grad, iso)
    torch.testing.assert_close(z_dp.grad, torch.stack([iso[v] @ ws[v] for v in range(2)]))
    assert (z_iso.grad - z_dp.grad).norm() > 0.1 * z_iso.grad.norm()


@pytest.mark.parametrize("name", ["byol", "directpred", "isoloss"])
def test_target_gets_no_gradient(name):
    z = views(2, 5, 4, 80).requires_grad_(True)
    zt = views(2, 5, 4, 81).requires_grad_(True)
    regularizers.create(name)(z, zt).loss.backward()
    assert zt.grad is None and z.grad is not None and torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------------------------------------------
# Dtype policy, state handling, errors
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["byol", "directpred", "isoloss"])
@pytest.mark.parametrize("dtype, expected", [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                             (torch.float32, torch.float32), (torch.float64, torch.float64)])
def test_dtype_policy(name, dtype, expected):
    z = views(2, 6, 4, 90, dtype=torch.float32).to(dtype).requires_grad_(True)
    zt = views(2, 6, 4, 91, dtype=torch.float32).to(dtype)
    reg = regularizers.create(name)
    out = reg(z, zt)
    assert out.loss.dtype == expected
    out.loss.backward()
    assert z.grad.dtype == dtype
    if name != "byol":
        assert reg.F.dtype == expected  # lazily created in the compute dtype


def test_eager_buffer_is_float32_and_keeps_its_dtype():
    reg = regularizers.create("isoloss", dim=4)
    assert reg.F.dtype == torch.float32 and reg.F.shape == (4, 4)
    out = reg(views(2, 6, 4, 92), views(2, 6, 4, 93))
    assert out.loss.dtype == DT and reg.F.dtype == torch.float32
    assert reg.double().F.dtype == DT


def test_autocast_is_switched_off():
    z, zt = views(2, 6, 4, 94, dtype=torch.float32), views(2, 6, 4, 95, dtype=torch.float32)
    ref = regularizers.create("isoloss")(z, zt).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = regularizers.create("isoloss")(z, zt).loss
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def test_state_dict_round_trip_of_a_lazy_buffer():
    reg = regularizers.create("isoloss", tau=0.5)
    reg(views(2, 6, 5, 96), views(2, 6, 5, 97))
    fresh = regularizers.create("isoloss", tau=0.5)
    fresh.load_state_dict(reg.state_dict())
    torch.testing.assert_close(fresh.F, reg.F)
    assert int(fresh.num_updates) == 2
    online, target = views(2, 6, 5, 98), views(2, 6, 5, 99)
    torch.testing.assert_close(fresh.eval()(online, target).loss, reg.eval()(online, target).loss)


def test_dimension_mismatch_raises():
    with pytest.raises(ValueError, match="dim=8"):
        regularizers.create("directpred", dim=8)(views(2, 5, 7, 0), views(2, 5, 7, 1))
    reg = regularizers.create("isoloss")
    reg(views(2, 5, 7, 0), views(2, 5, 7, 1))
    with pytest.raises(ValueError, match="D=9"):
        reg(views(2, 5, 9, 0), views(2, 5, 9, 1))


@pytest.mark.parametrize("name", ["directpred", "isoloss"])
@pytest.mark.parametrize("hp, match", [({"tau": 1.5}, "tau"), ({"tau": 1.0}, "tau"), ({"tau": -0.1}, "tau"),
                                       ({"alpha": -1.0}, "alpha"), ({"eps": -0.5}, "eps"),
                                       ({"dim": 1}, "dim"), ({"dim": 2.5}, "dim"), ({"normalize": "yes"}, "normalize"),
                                       ({"check_finite": 1}, "check_finite"), ({"lambd": 1.0}, "lambd")])
def test_bad_hparams_raise(name, hp, match):
    with pytest.raises(ValueError, match=match):
        regularizers.create(name, **hp)


def test_byol_takes_no_state_hparams():
    with pytest.raises(ValueError, match="tau"):
        regularizers.create("byol", tau=0.9)


@pytest.mark.parametrize("name", ["byol", "directpred", "isoloss"])
@pytest.mark.parametrize("online, target, match", [
    (torch.randn(5, 4), torch.randn(5, 4), r"reg\(online, target\)"),
    (torch.randn(2, 5, 4), torch.randn(3, 5, 4), "views"),
    (torch.randn(2, 5, 4), torch.randn(2, 6, 4), "same N and D"),
    (torch.randn(1, 5, 4), torch.randn(1, 5, 4), "at least 2 views"),
])
def test_bad_inputs_raise(name, online, target, match):
    with pytest.raises(ValueError, match=match):
        regularizers.create(name)(online, target)


def test_check_finite_protects_the_state():
    reg = regularizers.create("directpred", check_finite=True)
    z = views(2, 5, 4, 0)
    z[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        reg(z, views(2, 5, 4, 1))
    assert reg.F is None or int(reg.num_updates) == 0


# --------------------------------------------------------------------------------------------------------------
# Distributed contract (2 gloo processes, one spawn for all cases)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.distributed
def test_distributed_contract():
    world = 2
    cases = [
        ("byol", {}, views(2, 8, 5, 100), views(2, 8, 5, 101)),
        ("directpred", {"tau": 0.6}, views(2, 8, 5, 102, shift=0.3), views(2, 8, 5, 103)),
        ("isoloss", {"tau": 0.6, "dim": 7, "eps": 0.1}, views(3, 6, 7, 104, shift=0.3), views(3, 6, 7, 105)),
    ]
    results = run_ranks(asymmetric_contract, world, cases)
    for c, (name, hp, online_full, target_full) in enumerate(cases):
        reg = regularizers.create(name, **hp).to(DT).train()
        z = online_full.clone().requires_grad_(True)
        out = reg(z, target_full)
        out.loss.backward()
        n = online_full.shape[1] // world
        losses = torch.stack([results[r][c]["loss"] for r in range(world)])
        torch.testing.assert_close(losses.mean(), out.loss.detach(), msg=f"{name}: mean of ranks' losses")
        for r in range(world):
            res = results[r][c]
            torch.testing.assert_close(res["grad"], world * z.grad[:, r * n:(r + 1) * n], msg=f"{name} rank {r}")
            if name != "byol":  # every rank holds the global-batch F
                torch.testing.assert_close(res["F"], reg.F, msg=f"{name} rank {r}: F")
                assert int(res["num_updates"]) == online_full.shape[0]


# --------------------------------------------------------------------------------------------------------------
# GPU (skipped without CUDA)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["byol", "directpred", "isoloss"])
def test_cuda_matches_cpu(name):
    calls = [(views(2, 32, 16, 110 + k, dtype=torch.float32, shift=0.2), views(2, 32, 16, 120 + k,
                                                                                 dtype=torch.float32))
             for k in range(2)]
    cpu, gpu = regularizers.create(name), regularizers.create(name).cuda()
    for online, target in calls:
        ref = cpu(online, target)
        z = online.cuda().half().requires_grad_(True)
        with torch.autocast("cuda", dtype=torch.float16):
            out = gpu(z, target.cuda().half())
        out.loss.backward()
        assert out.loss.dtype == torch.float32 and z.grad.dtype == torch.float16
    torch.testing.assert_close(out.loss.cpu(), ref.loss, atol=5e-3, rtol=5e-3)
    if name != "byol":
        assert gpu.F.device.type == "cuda"
        torch.testing.assert_close(gpu.F.cpu(), cpu.F, atol=1e-3, rtol=1e-3)
