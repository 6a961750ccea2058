"""The statistics of the claims (:mod:`sslbench.analysis.claims.stats`): Student's t distribution against its closed
forms (1 and 2 degrees of freedom) and scipy, Welch's and the paired interval, the equivalence test (TOST) and the
seeds that would settle a comparison, on small made-up samples computed by hand."""

from __future__ import annotations

import math

import pytest

from sslbench.analysis.claims import stats

scipy_stats = pytest.importorskip("scipy.stats")


# ---- Student's t ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [-30.0, -3.0, -0.7, 0.0, 0.4, 1.0, 2.5, 12.0])
def test_t_cdf_matches_the_closed_forms_of_one_and_two_degrees_of_freedom(t):
    assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)  # Cauchy
    assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)


@pytest.mark.parametrize("p", [0.001, 0.05, 0.2, 0.5, 0.8, 0.95, 0.975, 0.999])
def test_t_ppf_inverts_the_closed_forms(p):
    assert stats.t_ppf(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9, abs=1e-12)
    assert stats.t_ppf(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("df", [0.5, 1.0, 2.9, 4.0, 7.3, 30.0, 300.0])
def test_t_cdf_and_ppf_match_scipy_for_whole_and_fractional_degrees_of_freedom(df):
    for t in (-8.0, -2.1, -0.3, 0.0, 0.9, 1.96, 6.0):
        assert stats.t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-12)
    for p in (0.0005, 0.025, 0.1, 0.5, 0.9, 0.95, 0.975, 0.9995):
        assert stats.t_ppf(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12)


def test_the_textbook_quantiles():
    assert stats.t_ppf(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert stats.t_ppf(0.975, 10) == pytest.approx(2.228139, abs=1e-6)
    assert stats.t_ppf(0.95, 4) == pytest.approx(2.131847, abs=1e-6)


def test_betainc_matches_scipy_and_its_edges():
    special = pytest.importorskip("scipy.special")
    for a, b, x in ((0.5, 0.5, 0.3), (2.0, 3.0, 0.9), (10.0, 0.5, 0.99), (1.5, 20.0, 0.01)):
        assert stats.betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), abs=1e-13)
    assert stats.betainc(2.0, 3.0, 0.0) == 0.0 and stats.betainc(2.0, 3.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="x="):
        stats.betainc(1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="p="):
        stats.t_ppf(1.0, 3)


# ---- intervals --------------------------------------------------------------------------------------------------
def test_welch_interval_by_hand():
    """a = 1, 2, 3 (mean 2, s² 1), b = 2, 4, 6 (mean 4, s² 4): se² = 1/3 + 4/3 = 5/3,
    ν = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 50/17, Δ = -2."""
    c = stats.welch([1, 2, 3], [2, 4, 6])
    se, df = math.sqrt(5 / 3), 50 / 17
    assert (c.diff, c.method, c.n_test, c.n_ref) == (-2.0, "Welch", 3, 3)
    assert c.se == pytest.approx(se) and c.df == pytest.approx(df)
    h = scipy_stats.t.ppf(0.975, df) * se
    assert (c.lo, c.hi) == (pytest.approx(-2 - h), pytest.approx(-2 + h))
    assert c.text() == f"Δ = -2.00 [{-2 - h:+.2f}, {-2 + h:+.2f}] (Welch 95 %, n = 3/3)"
    assert c.sd == pytest.approx(math.sqrt(2.5))  # pooled: (2·1 + 2·4) / 4


def test_welch_matches_scipys_interval_on_unequal_arms():
    a, b = [89.5, 89.2, 89.7], [88.1, 88.6, 87.9, 88.3]
    c = stats.welch(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (c.lo, c.hi) == (pytest.approx(ref.low, abs=1e-9), pytest.approx(ref.high, abs=1e-9))


def test_paired_interval_by_hand():
    """Differences 2, 1, 3: mean 2, s 1, se 1/√3, t(0.975, 2) = 4.302653 → 2 ± 2.48414."""
    c = stats.paired([3, 5, 7], [1, 4, 4])
    assert (c.diff, c.df, c.method) == (2.0, 2.0, "paired")
    assert (c.lo, c.hi) == (pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6),
                            pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-6))
    ref = scipy_stats.ttest_rel([3, 5, 7], [1, 4, 4]).confidence_interval(0.95)
    assert (c.lo, c.hi) == (pytest.approx(ref.low), pytest.approx(ref.high))
    with pytest.raises(ValueError, match="pairs"):
        stats.paired([1, 2], [1])


def test_one_seed_gives_a_difference_without_an_interval_and_nothing_gives_nan():
    c = stats.welch([80.0], [79.0, 79.5])
    assert c.diff == 0.75 and not c.has_interval and "no interval" in c.text()
    assert math.isnan(stats.tost(c, 1.0)) and stats.seeds_to_settle(c, 1.0) is None
    assert math.isnan(stats.welch([], [1.0, 2.0]).diff)
    assert stats.welch([1.0, float("nan"), 3.0], [2.0, 2.0]).n_test == 2  # a failed seed's NaN is dropped


# ---- equivalence and power --------------------------------------------------------------------------------------
def test_tost_by_hand():
    """Δ = 0, se = 1, ν = 2, margin 2: p = 1 − F₂(2) = ½ − 2/(2√6) (both one-sided tests alike)."""
    c = stats.Comparison(0.0, -4.3, 4.3, 1.0, 2.0, 3, 3, "paired", math.sqrt(3))
    assert stats.tost(c, 2.0) == pytest.approx(0.5 - 1 / math.sqrt(6), abs=1e-12)
    # shifted by +1: the upper test binds, p = F₂((1 − 2)/1) = ½ − 1/(2√3)
    c1 = stats.Comparison(1.0, -3.3, 5.3, 1.0, 2.0, 3, 3, "paired", math.sqrt(3))
    assert stats.tost(c1, 2.0) == pytest.approx(0.5 - 1 / (2 * math.sqrt(3)), abs=1e-12)
    with pytest.raises(ValueError, match="margin"):
        stats.tost(c, 0.0)


def test_tost_agrees_with_the_90_percent_interval():
    """TOST at 5 % ⇔ the 90 % interval inside ±margin."""
    for a, b, margin in (([80.0, 80.1, 79.9], [80.2, 80.3, 80.1], 1.0), ([80.0, 80.4, 79.8], [80.5, 81.0, 80.2], 1.0),
                         ([70.0, 71.0], [70.5, 70.4], 2.0)):
        c90 = stats.welch(a, b, alpha=0.10)
        inside = -margin < c90.lo and c90.hi < margin
        assert (stats.tost(stats.welch(a, b), margin) < 0.05) == inside


def _seeds_by_formula(diff, sd, boundary, level, power=0.8, paired=False, var=None):
    """The smallest n ≥ 2 with (t_level + t_power)·se(n) ≤ |Δ − b|, with scipy's quantiles; ``var``: the two arms'
    variances (Welch with unequal ones), else both sd²."""
    va, vb = var or (sd * sd, sd * sd)
    for n in range(2, 101):
        df = n - 1 if paired else (va + vb) ** 2 * (n - 1) / (va * va + vb * vb)
        se = sd / math.sqrt(n) if paired else math.sqrt((va + vb) / n)
        if (scipy_stats.t.ppf(level, df) + scipy_stats.t.ppf(power, df)) * se <= abs(diff - boundary):
            return n
    return None


def test_seeds_to_settle_against_the_formula_with_scipys_quantiles():
    c = stats.welch([89.5, 89.2, 89.7], [88.1, 88.6, 87.9])
    var = (c.var_test, c.var_ref)
    assert var == (pytest.approx(0.38 / 6), pytest.approx(0.26 / 2))  # squared deviations / (n − 1), by hand
    assert stats.seeds_to_settle(c, 1.0) == _seeds_by_formula(c.diff, c.sd, 1.0, 0.975, var=var)
    assert stats.seeds_to_settle(c, 1.0, one_sided=True) == _seeds_by_formula(c.diff, c.sd, 1.0, 0.95, var=var)
    p = stats.paired([3, 5, 7], [1, 4, 4])
    assert stats.seeds_to_settle(p, 0.0) == _seeds_by_formula(2.0, 1.0, 0.0, 0.975, paired=True)


def test_seeds_to_settle_an_equivalence_against_the_formula():
    """Inside ±margin the one-sided test toward the nearer margin (level 95 %); outside it, Δ shown beyond that
    margin (two-sided, 97.5 %), for either sign of Δ."""
    for a, b, boundary, level in (([88.1, 88.6, 88.3], [88.6, 88.9, 88.8], -1.0, 0.95),  # Δ ≈ −0.43: inside
                                  ([88.6, 88.9, 88.8], [88.1, 88.6, 88.3], 1.0, 0.95),  # Δ ≈ +0.43
                                  ([86.1, 86.9, 86.4], [88.1, 88.6, 88.3], -1.0, 0.975),  # Δ ≈ −1.87: outside
                                  ([90.1, 90.9, 90.4], [88.1, 88.6, 88.3], 1.0, 0.975)):  # Δ ≈ +2.13
        c = stats.welch(a, b)
        assert stats.seeds_to_settle_equivalence(c, 1.0) == _seeds_by_formula(
            c.diff, c.sd, boundary, level, var=(c.var_test, c.var_ref)), (a, b)


def test_seeds_to_settle_by_hand_and_its_limits():
    # Δ = 3, s = 1, boundary 0, Welch: n = 2 gives (t(.975, 2) + t(.8, 2))·√(2/2) = 4.303 + 1.061 > 3;
    # n = 3: (2.776 + 0.941)·√(2/3) = 3.035 > 3; n = 4: (2.447 + 0.906)·√(1/2) = 2.371 ≤ 3
    c = stats.Comparison(3.0, 0.0, 6.0, 0.8, 4.0, 3, 3, "Welch", 1.0)
    assert stats.seeds_to_settle(c, 0.0) == 4
    assert stats.seeds_to_settle(stats.Comparison(1.0, 0.0, 2.0, 0.5, 4.0, 3, 3, "Welch", 1.0), 1.0) is None
    assert stats.seeds_to_settle(stats.Comparison(1.0, 0.9, 1.1, 0.05, 4.0, 3, 3, "Welch", 1.0), 0.99) is None
    # unequal spreads: Welch's degrees of freedom at n seeds, not 2n − 2; two seeds of D = 128 (84.49, 84.69) against
    # two of D = 2048 (75.33, 77.59): Δ = +8.13 with an interval from −5.8 to +22.0, not settled with 2 seeds each
    c = stats.welch([84.49, 84.69], [75.33, 77.59])
    assert c.lo < 1.0 and stats.seeds_to_settle(c, 1.0) == _seeds_by_formula(c.diff, c.sd, 1.0, 0.975,
                                                                            var=(c.var_test, c.var_ref)) > 2
    # more spread needs more seeds
    wide = stats.Comparison(3.0, 0.0, 6.0, 0.8, 4.0, 3, 3, "Welch", 2.0)
    assert stats.seeds_to_settle(wide, 0.0) > 4


def test_an_interrupted_seed_is_pending_not_failed():
    """An arm's text counts failed seeds among the runs that ended: an interrupted or killed run (resumed by the
    next sweep) is not one, an error is."""
    import pandas as pd

    from sslbench.analysis.claims.common import arm

    rows = pd.DataFrame({"linear_top1": [88.0, 87.0, math.nan, math.nan, math.nan],
                         "status": ["ok", "ok", "interrupted", "killed", "error"],
                         "ok": [True, True, False, False, False]})
    a = arm(rows)
    assert (a.n, a.runs) == (2, 3)
    assert a.text().endswith("(2 seeds, 1 failed)")
    assert arm(rows.iloc[:3]).text().endswith("(2 seeds)")
