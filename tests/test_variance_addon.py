"""VICReg's variance term as an add-on (sslbench.regularizers.variance) against a NumPy reference written from
the formula, VICReg's own term, gradcheck, attribute forwarding, state and the 2-process gloo contract."""

import math

import numpy as np
import pytest
import torch

from sslbench import regularizers
from sslbench.regularizers.variance import VarianceAddOn, variance_hinge

DT = torch.float64
SYMMETRIC = [n for n in regularizers.available() if n not in ("vicreg", "vicreg_fft", "byol", "directpred", "isoloss")]


def views(v, n, d, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(v, n, d, generator=g, dtype=DT) * scale


def hinge_reference(z: np.ndarray, eps: float) -> float:
    """mean_k max(0, 1 − sqrt(var_unbiased_k + eps)) (VICReg's variance term for one view)."""
    std = np.sqrt(z.var(axis=0, ddof=1) + eps)
    return float(np.maximum(0.0, 1.0 - std).mean())


def small_hp(name):
    return {"lambd": 1 / 16} if name.startswith("barlow") else {}


# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SYMMETRIC)
@pytest.mark.parametrize("coeff,eps", [(1.0, 1e-4), (25.0, 0.3)])
def test_symmetric_loss_is_base_plus_coeff_times_hinge(name, coeff, eps):
    z = views(3, 12, 6, 1, scale=0.4)  # std 0.4 < 1: the hinge is active
    z[:, :, 0] *= 5.0  # one feature above the target: its hinge is zero
    base = regularizers.create(name, **small_hp(name)).to(DT)
    reg = regularizers.create(name, **small_hp(name), variance_coeff=coeff, variance_eps=eps).to(DT)
    assert isinstance(reg, VarianceAddOn)
    torch.manual_seed(0)  # the same FFT permutation draws in both calls
    plain = base(z)
    torch.manual_seed(0)
    out = reg(z)
    expected_term = np.mean([hinge_reference(z[v].numpy(), eps) for v in range(3)])
    assert 0.1 < expected_term < 1  # the hinge is active
    assert float(out.terms["variance_addon"]) == pytest.approx(expected_term, rel=1e-12)
    assert float(out.loss) == pytest.approx(float(plain.loss) + coeff * expected_term, rel=1e-12)
    for k, v in plain.terms.items():
        torch.testing.assert_close(out.terms[k], v)
    # views as separate arguments give the same
    torch.manual_seed(0)
    assert float(reg(*z.unbind(0)).loss) == pytest.approx(float(out.loss), rel=1e-12)


@pytest.mark.parametrize("name", ["byol", "directpred", "isoloss"])
def test_asymmetric_hinge_is_on_the_online_branch(name):
    online, target = views(2, 10, 5, 2, scale=0.3), views(2, 10, 5, 3, scale=3.0)
    base = regularizers.create(name).to(DT).train()
    reg = regularizers.create(name, variance_coeff=2.0).to(DT).train()
    plain, out = base(online, target), reg(online, target)
    term = np.mean([hinge_reference(online[v].numpy(), 1e-4) for v in range(2)])
    assert float(out.terms["variance_addon"]) == pytest.approx(term, rel=1e-12)
    assert float(out.loss) == pytest.approx(float(plain.loss) + 2.0 * term, rel=1e-12)
    if name != "byol":  # the wrapped module's state moved exactly as the plain one's (one call, V updates)
        torch.testing.assert_close(reg.F, base.F)
        assert int(reg.num_updates) == int(base.num_updates) == 2
        torch.testing.assert_close(reg.predictor().weight, base.predictor().weight)


def test_matches_vicregs_own_variance_term():
    z = views(2, 16, 8, 4, scale=0.5)
    vic = regularizers.create("vicreg").to(DT)(z)
    add = regularizers.create("simclr", variance_coeff=1.0).to(DT)(z)
    torch.testing.assert_close(add.terms["variance_addon"], vic.terms["variance"])


def test_collapsed_embeddings_give_the_full_hinge():
    z = torch.ones(2, 8, 4, dtype=DT)
    out = regularizers.create("barlow_twins", variance_coeff=1.0).to(DT)(z)
    assert float(out.terms["variance_addon"]) == pytest.approx(1 - math.sqrt(1e-4), rel=1e-12)
    assert float(variance_hinge(torch.randn(64, 3, dtype=DT) * 10)) == 0.0


def test_gradcheck():
    z = views(2, 6, 4, 5, scale=0.5).requires_grad_(True)
    reg = regularizers.create("barlow_twins", lambd=0.1, variance_coeff=3.0).to(DT)
    assert torch.autograd.gradcheck(lambda x: reg(x).loss, (z,))
    online = views(2, 6, 4, 6, scale=0.5).requires_grad_(True)
    target = views(2, 6, 4, 7)
    byol = regularizers.create("byol", variance_coeff=3.0)
    assert torch.autograd.gradcheck(lambda x: byol(x, target).loss, (online,))


def test_off_is_the_plain_module_and_records_are_unchanged():
    plain = regularizers.create("byol")
    assert type(plain).__name__ == "BYOL"
    assert "variance_coeff" not in plain.hparams()
    off = regularizers.create("byol", variance_coeff=0.0)
    assert type(off).__name__ == "BYOL" and off.hparams() == plain.hparams()
    on = regularizers.create("byol", variance_coeff=0.5)
    assert on.hparams() == {**plain.hparams(), "variance_coeff": 0.5, "variance_eps": 1e-4}
    assert on.symmetric is False and regularizers.create("sfrik", variance_coeff=1.0).symmetric is True
    assert regularizers.hparam_defaults("byol")["variance_coeff"] == 0.0
    assert "variance_coeff" in regularizers.hparam_names("isoloss")
    assert "variance_coeff" not in regularizers.hparam_names("vicreg")


def test_vicreg_points_to_std_coeff():
    with pytest.raises(ValueError, match="std_coeff"):
        regularizers.create("vicreg", variance_coeff=1.0)


def test_state_dict_round_trip():
    a = regularizers.create("directpred", variance_coeff=1.0).to(DT).train()
    a(views(2, 8, 4, 9), views(2, 8, 4, 10))
    b = regularizers.create("directpred", variance_coeff=1.0).to(DT)
    b.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == {"base.F", "base.num_updates", "base.skipped_updates"}
    torch.testing.assert_close(b.F, a.F)
