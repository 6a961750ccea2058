import pytest
import torch

from dist_common_cases import standardize_and_gather
from distributed_harness import run_ranks
from sslbench.regularizers import _common as C


def test_as_views_accepts_sequence_and_stacked():
    z = torch.randn(3, 5, 4)
    a = C.as_views(z)
    b = C.as_views(list(z))
    assert len(a) == len(b) == 3 and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(
    "views, exc, match",
    [
        ([torch.randn(4, 3)], ValueError, "at least 2 views"),
        ([torch.randn(4, 3), torch.randn(5, 3)], ValueError, "same shape"),
        ([torch.randn(1, 3), torch.randn(1, 3)], ValueError, "N >= 2"),
        ([torch.randn(4, 1), torch.randn(4, 1)], ValueError, "D >= 2"),
        ([torch.ones(4, 3, dtype=torch.long)] * 2, TypeError, "floating point"),
        ([torch.randn(4, 3, 2)] * 2, ValueError, r"shape \(N, D\)"),
        (torch.randn(4, 3), ValueError, r"\(V, N, D\)"),
        (["a", "b"], TypeError, "torch.Tensor"),
    ],
)
def test_as_views_rejects_bad_input(views, exc, match):
    with pytest.raises(exc, match=match):
        C.as_views(views)


def test_as_views_finite_check_is_optional():
    z = torch.randn(4, 3)
    z[1, 2] = float("nan")
    C.as_views([z, z])  # no check by default
    with pytest.raises(ValueError, match="NaN or Inf"):
        C.as_views([z, z], check_finite=True)


@pytest.mark.parametrize("dtype, expected", [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                             (torch.float32, torch.float32), (torch.float64, torch.float64)])
def test_compute_dtype(dtype, expected):
    assert C.as_views([torch.randn(4, 3).to(dtype)] * 2)[0].dtype == expected


def test_batch_standardize_matches_batchnorm():
    z = torch.randn(33, 7, dtype=torch.float64) * 3 + 1
    bn = torch.nn.BatchNorm1d(7, affine=False, eps=1e-5).double().train()
    torch.testing.assert_close(C.batch_standardize(z, 1e-5), bn(z))


def test_off_diagonal_sq_sum():
    c = torch.randn(6, 6, dtype=torch.float64)
    ref = sum(c[k, l] ** 2 for k in range(6) for l in range(6) if k != l)
    torch.testing.assert_close(C.off_diagonal_sq_sum(c), ref)


@pytest.mark.parametrize("name, fn, bad", [("lambd", C.check_positive, 0), ("eps", C.check_nonnegative, -1.0),
                                           ("tau", C.check_positive, float("nan")), ("x", C.check_positive, True)])
def test_hparam_checks_name_the_parameter(name, fn, bad):
    with pytest.raises(ValueError, match=name):
        fn(name, bad)


@pytest.mark.parametrize("scale", [1e-20, 1.0, 1e20, 1e30])
def test_batch_standardize_is_exact_at_any_scale(scale):
    """Float32 at 1e20 or 1e30 gives the float64 two-pass formula; constant features (one at a large value) give
    exactly 0 with a finite gradient."""
    z = torch.randn(16, 6, dtype=torch.float64) * torch.tensor([1.0, 3.0, 1e-3, 1.0, 1.0, 1.0], dtype=torch.float64)
    z[:, 3] = 7.0
    z[:, 4] = 1e6
    z32 = (z * scale).float().requires_grad_(True)
    x = z32.detach().double()
    ref = (x - x.mean(0)) / torch.sqrt((x - x.mean(0)).square().mean(0) + 1e-5)
    out = C.batch_standardize(z32, 1e-5)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    assert bool((out[:, 3:5] == 0).all())
    (out * torch.randn(16, 6)).sum().backward()
    assert bool(torch.isfinite(z32.grad).all())


def test_overflow_guard_is_one_below_the_threshold_and_a_power_of_two_above():
    x = torch.tensor([[1.0, -3e15, 0.0], [2.0, 1.0, 0.0]])
    s = C.overflow_guard(x, dim=0, max_exponent=50)
    assert s[0] == 1.0 and s[2] == 1.0
    assert float(torch.log2(s[1])).is_integer() and float((x[:, 1] / s[1]).abs().max()) < 2.0 ** 50
    assert torch.equal(x / C.overflow_guard(x[:1, :1], max_exponent=50), x)  # bitwise unchanged


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e20, 1e35])
def test_sphere_is_exact_at_any_scale(scale):
    z = torch.randn(5, 7, dtype=torch.float64)
    out = C.sphere((z * scale).float())
    torch.testing.assert_close(out.double(), z / z.norm(dim=1, keepdim=True), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.distributed
def test_collectives_global_statistics_and_gradient_contract():
    torch.manual_seed(0)
    z_full = torch.randn(8, 5, dtype=torch.float64) * 2 + 0.5
    results = run_ranks(standardize_and_gather, 2, z_full)
    # single-process reference on the concatenated batch
    z = z_full.clone().requires_grad_(True)
    a = C.batch_standardize(z, 1e-5)
    loss = (a * torch.arange(a.numel(), dtype=a.dtype).reshape(a.shape)).sum().sin()
    loss.backward()
    for r, res in enumerate(results):
        torch.testing.assert_close(res["g"], a.detach())
        torch.testing.assert_close(res["a"], a.detach()[r * 4:(r + 1) * 4])
        torch.testing.assert_close(res["loss"], loss.detach())
        torch.testing.assert_close(res["grad"], 2 * z.grad[r * 4:(r + 1) * 4])
