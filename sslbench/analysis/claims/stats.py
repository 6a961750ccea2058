"""The statistics of a comparison of two arms (seeds of two training settings), torch- and scipy-free.

* :func:`welch` / :func:`paired`: the difference of means Δ = mean(test) − mean(ref) with its two-sided
  confidence interval. Welch's interval: se = √(s_a²/n_a + s_b²/n_b) with the Welch–Satterthwaite degrees of
  freedom ν = se⁴ / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1)). The paired interval (both arms share the seeds and
  the data order): the differences d_i of each seed, se = s_d/√n, ν = n − 1. The interval is Δ ± t_{1−α/2, ν}·se.
* :func:`tost`: the equivalence test within ±margin (two one-sided tests, Schuirmann 1987): p = max(p_low, p_high)
  with p_low = P(T_ν > (Δ + margin)/se) and p_high = P(T_ν < (Δ − margin)/se); equivalence at level α when
  p < α, which is the (1 − 2α) interval lying inside (−margin, margin).
* :func:`seeds_to_settle`: the seeds per arm that would settle a comparison against a boundary b (a margin, ±margin
  or 0) at the observed difference and spread, with 80 % power: the smallest n with
  (t_{1−α', ν(n)} + t_{power, ν(n)}) · se(n) ≤ |Δ − b|, where for Welch se(n) = √((s_a² + s_b²)/n) and
  ν(n) = (s_a² + s_b²)²·(n − 1)/(s_a⁴ + s_b⁴) (the observed seed variances, n seeds in each arm; 2n − 2 when they are
  equal), paired se(n) = s_d/√n and ν = n − 1; α' = α/2 for an interval's end, α for one of TOST's one-sided tests.

Student's t distribution is computed here (:func:`t_cdf`, :func:`t_ppf`) through the regularized incomplete beta
function, I_x(a, b) by its continued fraction (Numerical Recipes §6.4, modified Lentz): for ν degrees of freedom,
P(T ≤ t) = 1 − ½·I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0, symmetric below. scipy is only a test dependency; the tests compare
against it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

#: the two-sided level of the intervals (95 %) and the one-sided level of each TOST test (5 %)
ALPHA = 0.05
#: the power of :func:`seeds_to_settle`
POWER = 0.8
#: :func:`seeds_to_settle` looks no further than this many seeds per arm
MAX_SEEDS = 100


# ==============================================================================================================
# Student's t distribution
# ==============================================================================================================
def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and 0 ≤ x ≤ 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc: a={a!r} and b={b!r} must be > 0")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x={x!r} must be in [0, 1]")
    if x == 0.0 or x == 1.0:
        return x
    ln_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b  # the symmetry I_x(a, b) = 1 − I_{1−x}(b, a)


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` > 0 degrees of freedom (not necessarily whole: Welch's are not)."""
    if not df > 0:
        raise ValueError(f"t_cdf: df={df!r} must be > 0")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=1 << 16)  # a pure function of two floats, evaluated again for every comparison alike
def t_ppf(p: float, df: float) -> float:
    """The quantile t with P(T ≤ t) = ``p`` (0 < p < 1): bisection on :func:`t_cdf`, to a relative 1e-12."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_ppf: p={p!r} must be in (0, 1)")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket: the tails of ν ≥ 0.1 are reached well before 1e300
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ==============================================================================================================
# Comparisons
# ==============================================================================================================
@dataclass(frozen=True)
class Comparison:
    """Δ = mean(test) − mean(ref) with its (1 − ``alpha``) interval [lo, hi]; ``se`` and ``df`` of the t statistic;
    ``method``: "Welch" or "paired"; ``sd``: the pooled seed std (paired: the std of the differences), which
    :func:`seeds_to_settle` scales. With fewer than 2 values in an arm, se, df, lo, hi and sd are NaN."""
    diff: float
    lo: float
    hi: float
    se: float
    df: float
    n_test: int
    n_ref: int
    method: str
    sd: float
    alpha: float = ALPHA
    var_test: float = math.nan  # Welch: each arm's seed variance (the power calculation scales them)
    var_ref: float = math.nan

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def text(self, digits: int = 2) -> str:
        """"Δ = -3.40 [-4.50, -2.30] (Welch 95 %)", or "Δ = -3.40 (no interval: one seed)"."""
        if not math.isfinite(self.diff):
            return "Δ = n/a"
        if not self.has_interval:
            return f"Δ = {self.diff:+.{digits}f} (no interval: fewer than 2 seeds in an arm)"
        level = f"{100 * (1 - self.alpha):g} %"
        return (f"Δ = {self.diff:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}] "
                f"({self.method} {level}, n = {self.n_test}/{self.n_ref})")


def _clean(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _mean_var(x: list[float]) -> tuple[float, float]:
    n = len(x)
    m = sum(x) / n
    return m, (sum((v - m) ** 2 for v in x) / (n - 1) if n > 1 else math.nan)


def welch(test: Sequence[float], ref: Sequence[float], alpha: float = ALPHA) -> Comparison:
    """Welch's (1 − alpha) interval of mean(test) − mean(ref) (unequal variances; non-finite values dropped)."""
    a, b = _clean(test), _clean(ref)
    if not a or not b:
        return Comparison(math.nan, math.nan, math.nan, math.nan, math.nan, len(a), len(b), "Welch", math.nan, alpha)
    ma, va = _mean_var(a)
    mb, vb = _mean_var(b)
    d = ma - mb
    if len(a) < 2 or len(b) < 2:
        return Comparison(d, math.nan, math.nan, math.nan, math.nan, len(a), len(b), "Welch", math.nan, alpha)
    qa, qb = va / len(a), vb / len(b)
    se = math.sqrt(qa + qb)
    sd = math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
    if se == 0.0:  # identical values in each arm: no spread, the interval is the point
        return Comparison(d, d, d, 0.0, float(len(a) + len(b) - 2), len(a), len(b), "Welch", 0.0, alpha, va, vb)
    df = (qa + qb) ** 2 / (qa ** 2 / (len(a) - 1) + qb ** 2 / (len(b) - 1))
    h = t_ppf(1 - alpha / 2, df) * se
    return Comparison(d, d - h, d + h, se, df, len(a), len(b), "Welch", sd, alpha, va, vb)


def paired(test: Sequence[float], ref: Sequence[float], alpha: float = ALPHA) -> Comparison:
    """The paired (1 − alpha) interval of mean(test − ref) over pairs (test[i], ref[i]) (same seed and data
    order); a pair with a non-finite value is dropped."""
    if len(test) != len(ref):
        raise ValueError(f"paired: {len(test)} test values against {len(ref)} reference values; pairs needed")
    d = [float(x) - float(y) for x, y in zip(test, ref)
         if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]
    n = len(d)
    if n == 0:
        return Comparison(math.nan, math.nan, math.nan, math.nan, math.nan, 0, 0, "paired", math.nan, alpha)
    m, v = _mean_var(d)
    if n < 2:
        return Comparison(m, math.nan, math.nan, math.nan, math.nan, n, n, "paired", math.nan, alpha)
    sd = math.sqrt(v)
    se = sd / math.sqrt(n)
    if se == 0.0:
        return Comparison(m, m, m, 0.0, float(n - 1), n, n, "paired", 0.0, alpha)
    h = t_ppf(1 - alpha / 2, n - 1) * se
    return Comparison(m, m - h, m + h, se, float(n - 1), n, n, "paired", sd, alpha)


def tost(c: Comparison, margin: float) -> float:
    """The p-value of the equivalence test of ``c`` within (−margin, margin): the larger of the two one-sided
    p-values (H₀: Δ ≤ −margin, H₀: Δ ≥ margin). NaN without an interval (fewer than 2 seeds in an arm)."""
    if not margin > 0:
        raise ValueError(f"tost: margin={margin!r} must be > 0")
    if not c.has_interval:
        return math.nan
    if c.se == 0.0:
        return 0.0 if -margin < c.diff < margin else 1.0
    p_low = 1.0 - t_cdf((c.diff + margin) / c.se, c.df)
    p_high = t_cdf((c.diff - margin) / c.se, c.df)
    return max(p_low, p_high)


def seeds_to_settle_equivalence(c: Comparison, margin: float) -> int | None:
    """:func:`seeds_to_settle` for an equivalence test within ±``margin`` (:func:`tost`) that has not settled: with Δ
    inside ±margin the one-sided test on the nearer side decides TOST; outside it, showing Δ beyond that margin does
    (both the report's "comparable" rule and ``sslbench analyze``'s versus table)."""
    return seeds_to_settle(c, math.copysign(margin, c.diff), one_sided=-margin < c.diff < margin)


@functools.lru_cache(maxsize=1 << 14)  # the comparisons of many settings are alike (their seeds' values the same)
def seeds_to_settle(c: Comparison, boundary: float, one_sided: bool = False, power: float = POWER,
                    max_seeds: int = MAX_SEEDS) -> int | None:
    """The seeds per arm (equal arms) with which a comparison like ``c`` would settle against ``boundary``: the
    interval's end (``one_sided``: TOST's one-sided test at level alpha) clears the boundary with probability
    ``power`` when the true difference is the observed one and the seed std the observed pooled one. Two seeds at
    least; None when the observed difference sits on the boundary or more than ``max_seeds`` would be needed, or
    without a spread (fewer than 2 seeds in an arm)."""
    gap = abs(c.diff - boundary)
    if not (math.isfinite(gap) and math.isfinite(c.sd)):
        return None
    if c.sd == 0.0:
        return 2 if gap > 0 else None
    level = 1 - c.alpha if one_sided else 1 - c.alpha / 2
    paired_ = c.method == "paired"
    va, vb = (c.var_test, c.var_ref) if math.isfinite(c.var_test) and math.isfinite(c.var_ref) else (c.sd ** 2,) * 2

    def settles(n: int) -> bool:
        if paired_:
            df, se = n - 1, c.sd / math.sqrt(n)
        else:
            df = (va + vb) ** 2 * (n - 1) / (va ** 2 + vb ** 2)
            se = math.sqrt((va + vb) / n)
        return (t_ppf(level, df) + t_ppf(power, df)) * se <= gap

    # the first n that settles: the left side falls as n grows (se shrinks and both t quantiles fall with df), so a
    # bisection finds the n that trying every n from 2 found (tests/test_claims_vectorised.py keeps that reference)
    if max_seeds < 2 or not settles(max_seeds):
        return None
    lo, hi = 2, max_seeds
    while lo < hi:
        mid = (lo + hi) // 2
        if settles(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
