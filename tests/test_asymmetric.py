"""Tests of the asymmetric regularizers byol, directpred, isoloss against references written from the formulas
(spec §6; fmi-basel/implicit-var-reg), in float64 with naive loops and explicit matrices."""

import pytest
import torch

from dist_common_cases import directpred_skip
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
def test_eager_buffer_is_float32_and_keeps_its_dtype():
    reg = regularizers.create("isoloss", dim=4)
    assert reg.F.dtype == torch.float32 and reg.F.shape == (4, 4)
    out = reg(views(2, 6, 4, 92), views(2, 6, 4, 93))
    assert out.loss.dtype == DT and reg.F.dtype == torch.float32
    assert reg.double().F.dtype == DT


def test_dimension_mismatch_raises():
    with pytest.raises(ValueError, match="dim=8"):
        regularizers.create("directpred", dim=8)(views(2, 5, 7, 0), views(2, 5, 7, 1))
    reg = regularizers.create("isoloss")
    reg(views(2, 5, 7, 0), views(2, 5, 7, 1))
    with pytest.raises(ValueError, match="D=9"):
        reg(views(2, 5, 9, 0), views(2, 5, 9, 1))


@pytest.mark.parametrize("name", ["byol", "directpred", "isoloss"])
@pytest.mark.parametrize("online, target, exc, match", [
    (torch.randn(5, 4), torch.randn(5, 4), ValueError, r"reg\(online, target\)"),
    (torch.randn(2, 5, 4), torch.randn(3, 5, 4), ValueError, "views"),
    (torch.randn(2, 5, 4), torch.randn(2, 6, 4), ValueError, "same N and D"),
    (torch.randn(2, 5, 4), torch.ones(2, 5, 4, dtype=torch.long), TypeError, r"target\[0\].*floating point"),
])


def test_bad_inputs_raise(name, online, target, exc, match):
    """The (online, target) convention; the checks every regularizer shares are in test_conformance.py."""
    with pytest.raises(exc, match=match):
        regularizers.create(name)(online, target)


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


# --------------------------------------------------------------------------------------------------------------
# One bad batch must not poison DirectPred's state (issue 12, item 3)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["directpred", "isoloss"])
@pytest.mark.parametrize("bad", ["nan", "inf", "huge"])
def test_a_nonfinite_update_is_skipped_and_counted(name, bad):
    """A batch whose update would make F non-finite (NaN/Inf embeddings, or float32 products overflowing at 1e30)
    leaves F as it was and counts one skipped call; the next good batch gives exactly what it gives from that
    state without the bad batch."""
    reg = regularizers.create(name, tau=0.6)
    reg(views(2, 8, 5, 130, dtype=torch.float32), views(2, 8, 5, 131, dtype=torch.float32))
    before = {k: v.clone() for k, v in reg.state_dict().items()}
    online = views(2, 8, 5, 132, dtype=torch.float32)
    if bad == "huge":
        online = online * 1e30
    else:
        online[1, 2, 3] = float(bad)
    reg(online, views(2, 8, 5, 133, dtype=torch.float32))
    assert torch.equal(reg.F, before["F"]) and bool(torch.isfinite(reg.F).all())
    assert int(reg.skipped_updates) == 1 and int(reg.num_updates) == int(before["num_updates"])
    twin = regularizers.create(name, tau=0.6)
    twin.load_state_dict(before)
    good = views(2, 8, 5, 134, dtype=torch.float32), views(2, 8, 5, 135, dtype=torch.float32)
    out = reg(*good)
    ref = twin(*good)
    assert bool(torch.isfinite(out.loss))
    torch.testing.assert_close(out.loss, ref.loss, rtol=0, atol=0)
    torch.testing.assert_close(reg.F, twin.F, rtol=0, atol=0)
    assert int(reg.skipped_updates) == 1 and int(twin.skipped_updates) == 0
    assert "skipped_updates" in reg.state_dict()


def test_a_checkpoint_without_the_skip_counter_still_loads():
    reg = regularizers.create("directpred", tau=0.6).double()
    reg(views(2, 8, 5, 136), views(2, 8, 5, 137))
    old = {k: v for k, v in reg.state_dict().items() if k != "skipped_updates"}
    fresh = regularizers.create("directpred", tau=0.6).double()
    fresh.load_state_dict(old)  # strict
    assert int(fresh.skipped_updates) == 0 and torch.equal(fresh.F, reg.F)


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("name", ["directpred", "isoloss"])
def test_the_skip_decision_is_the_same_on_every_rank(name):
    """Only rank 1's rows hold a NaN: F is all-reduced before the decision, so both ranks skip and keep equal
    states, equal to a single process that never saw the bad batch."""
    calls = [(views(2, 8, 5, 140 + 2 * c, shift=0.2), views(2, 8, 5, 141 + 2 * c)) for c in range(3)]
    ranks = run_ranks(directpred_skip, 2, name, calls, 1)
    single = regularizers.create(name, tau=0.6).double().train()
    for c in (0, 2):
        single(*calls[c])
    for states in ranks:
        assert int(states[1]["skipped_updates"]) == 1
        torch.testing.assert_close(states[1]["F"], states[0]["F"], rtol=0, atol=0)
        torch.testing.assert_close(states[2]["F"], single.F)
        assert int(states[2]["num_updates"]) == int(single.num_updates) == 4
