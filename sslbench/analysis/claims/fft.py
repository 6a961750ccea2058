"""Study ``fft``: the FFT-relaxed Barlow Twins / VICReg (Shigeto et al., CVPR 2023). Cost: the exponents of time
and memory in D of the relaxed against the exact losses, and the crossover D above which the relaxed one is the
cheaper; accuracy: relaxed against exact at equal coefficients, with against without the permutation; the mechanism:
the exact check "permutation" (relaxed against exact off-diagonal penalty on structured batches)."""

from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np
import pandas as pd

from sslbench.analysis import crossovers
from sslbench.analysis.claims.common import (
    FIT_D_MIN,
    MEMORY_R2_MIN,
    QUADRATIC_ALPHA_MIN,
    SETTLE_BATCH,
    SETTLE_DIMS,
    Arm,
    ArmTable,
    Study,
    Verdict,
    as_published,
    bench_records,
    better,
    check_verdict,
    combine,
    comparable,
    default_variance,
    device_short,
    fit_rows,
    groups,
    int_text,
    no_data,
    num,
    remember_setting,
    rule_better,
    rule_comparable,
    scaling,
    setting_text,
    settle_note,
    settle_scaling,
    train_runs,
)
from sslbench.analysis.scaling import _crossings, _curves, ok_points

#: O(N·D·log D) in D: the relaxed loss's exponent below this, the exact one's above QUADRATIC_ALPHA_MIN
LOGLINEAR_ALPHA_MAX = 1.4
#: permutation trick on structured batches: Pearson r of relaxed vs exact off-diagonal penalty
PERM_R_MIN = 0.9
NOPERM_R_MAX = 0.5
#: accuracy margins, in points of top-1 (set 2026-12-05 before the AdamW-recipe runs; common.ACC_MARGIN says why):
#: relaxed against exact (equivalence), permutation against none (better). The paper quotes linear and kNN accuracy
#: (its CIFAR tables), so each has a row of its own.
LINEAR_MARGIN = 1.0
KNN_MARGIN = 2.0
#: (metric, margin, claim suffix) of the accuracy rows
METRICS = (("linear_top1", LINEAR_MARGIN, ""), ("knn_top1", KNN_MARGIN, " [kNN]"))
RULE_COMPARABLE = rule_comparable(LINEAR_MARGIN)
RULE_BETTER = rule_better(LINEAR_MARGIN)

RULE_LOGLINEAR = (f"exponent of time in D (D ≥ {FIT_D_MIN}): relaxed < {LOGLINEAR_ALPHA_MAX} and exact > "
                  f"{QUADRATIC_ALPHA_MIN} supported; relaxed ≥ {QUADRATIC_ALPHA_MIN} not supported; else (e.g. the "
                  "exact loss not growing as D² either: fixed costs dominate) inconclusive")
RULE_MEMORY = f"as time, on the step's memory; inconclusive when a fit has R² < {MEMORY_R2_MIN}"


def _pair_exponents(df: pd.DataFrame, pairs: Sequence[tuple[str, str]], y: str) -> list[tuple[tuple, dict]]:
    """For each setting (device, threads, dtype, N, V, None) with both series of every pair fitted: the exponents."""
    table = scaling(df, "dim", FIT_D_MIN, sorted({x for pair in pairs for x in pair}))  # the series read here
    found: dict[tuple, dict] = {}
    for a, b in pairs:
        fa = {s: (al, r2) for s, al, r2 in fit_rows(table, a, y)}
        fb = {s: (al, r2) for s, al, r2 in fit_rows(table, b, y)}
        for s in fa.keys() & fb.keys():
            found.setdefault(s, {})[(a, b)] = (fa[s], fb[s])
    out = []
    for s, d in sorted(found.items(), key=lambda kv: str(kv[0])):
        if len(d) == len(pairs) or not out:
            out.append((s, d))
    return out


FFT_PAIRS = (("barlow_twins_fft", "barlow_twins[cross_correlation]"), ("vicreg_fft", "vicreg[cross_correlation]"))


def _exponents(df: pd.DataFrame, st: Study) -> list[Verdict]:
    """The exponents in D of the relaxed and the exact losses' time and memory, per setting."""
    out = []
    for y, claim, rule in (("time_s", "loss time grows as O(N·D·log D) (relaxed) against O(N·D²) (exact)",
                            RULE_LOGLINEAR),
                           ("memory_bytes", "loss memory grows as O(N·D·log D)-ish (relaxed) against O(D²) (exact)",
                            RULE_MEMORY)):
        found = _pair_exponents(df, FFT_PAIRS, y)
        if not found:
            out.append(Verdict(st.name, claim, "no data", "no scaling-in-D bench records of the relaxed and exact "
                               "losses", rule, "sslbench sweep --config results/sweeps/configs/scaling-dim.toml"))
            continue
        for s, d in found:
            figs, vs, why, fixed = [], [], "", False  # fixed: fixed costs (a larger batch), else a poor fit (larger D)
            for (a, b), ((aa, ra), (ab, rb)) in d.items():
                figs.append(f"{a} α={num(aa)} (R² {num(ra, 2)}) vs {b} α={num(ab)} (R² {num(rb, 2)})")
                if y == "memory_bytes" and min(ra, rb) < MEMORY_R2_MIN:
                    vs.append("inconclusive")
                    if not why:
                        why = (f"a memory fit has R² < {MEMORY_R2_MIN} (on the CPU the figure is the peak-RSS delta, "
                               "blurred by the allocator at small sizes): larger D, where the D×D matrices dominate")
                elif aa < LOGLINEAR_ALPHA_MAX and ab > QUADRATIC_ALPHA_MIN:
                    vs.append("supported")
                elif aa >= QUADRATIC_ALPHA_MIN:  # the relaxed loss grows as fast as the exact one
                    vs.append("not supported")
                else:  # e.g. the exact loss does not grow as D² either: fixed costs dominate (a GPU at small N)
                    vs.append("inconclusive")
                    if not why:
                        why, fixed = (f"the exact loss does not grow as D² either at N={int_text(s[3])}: fixed costs "
                                      f"dominate; a larger batch, where the arithmetic does"), True
            verdict = combine(vs)
            hint = ""
            if verdict == "inconclusive":
                regs = [r.split("[")[0] for pair in d for r in pair]
                hint = settle_scaling(regs, s[0], why, batch=SETTLE_BATCH if fixed else None,
                                      dims=SETTLE_DIMS if fixed else SETTLE_DIMS[2:])
            out.append(Verdict(st.name, claim, verdict, "; ".join(figs), rule, hint, _cost_setting(*s[:5])))
    return out


def _cost_setting(device: object, threads: object, dtype: object, batch: object, views: object) -> str:
    return f"{device_short(device)}, {int_text(threads)} thread(s), {dtype}, N={int_text(batch)}, V={int_text(views)}"


def _crossing(g: pd.DataFrame, relaxed: str, exact: str, y: str, unit: str,
              curves: dict | None = None) -> tuple[str, str]:
    """(verdict, figures) of "``relaxed`` is the lower series of ``y`` at the largest D" in one setting, with the last
    crossover. ``curves``: the setting's curves of ``y`` per label (:func:`_setting_curves`), when made already."""
    if curves is None:
        found = crossovers(g, relaxed, exact, x="dim", y=y)
    else:
        found = _crossings(curves.get(relaxed, _NO_CURVE), curves.get(exact, _NO_CURVE), relaxed, exact)
    gg = g[g["label"].isin((relaxed, exact)) & (g["status"] == "ok")]
    top = gg["dim"].max()
    # a series whose figures at the largest D are all missing (NaN: a hostile or damaged store) has no median there
    at_top = gg[gg["dim"] == top].groupby("label")[y].median().dropna()
    lower_top = at_top.idxmin() if len(at_top) == 2 else None
    name = relaxed.split("_fft")[0]
    if found:
        fig = f"{name} {unit}: crossover D≈{num(found[-1].x)} ({found[-1].lower_after} lower above)"
    else:
        fig = f"{name} {unit}: no crossing; {lower_top} lower at D={int_text(top)}"
    if lower_top is None:
        return "inconclusive", fig
    ratio = at_top.max() / at_top.min() if at_top.min() > 0 else math.nan
    return ("supported" if lower_top == relaxed else "not supported"), fig + f", ×{num(ratio, 3)} at D={int_text(top)}"


_NO_CURVE = (np.array([]), np.array([]))
_CROSS_SETTING = ["device_name", "threads", "dtype", "batch", "views"]


def _nan_none(key: tuple) -> tuple:
    """A setting's key with NaN as None (NaN != NaN: a key holding one would find nothing)."""
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in key)


def _setting_curves(b: pd.DataFrame, y: str) -> dict[tuple, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """{setting key (NaN as None): {label: the curve of ``crossovers``}} of the bench rows ``b``: every curve
    (log D, log of the median ``y`` at each D over the label's ok rows in the setting) from one grouping
    (:func:`sslbench.analysis.scaling._curves`) rather than a selection of the setting's rows per label and
    metric (issue 21: the Claims page computes them again after every append)."""
    pts = ok_points(b, "dim", y)
    if pts.empty:
        return {}
    keys = list(pts.groupby(_CROSS_SETTING, dropna=False, sort=True).size().index)  # numbered as _curves numbers them
    out: dict[tuple, dict] = {}
    for (number, label), curve in _curves(pts, _CROSS_SETTING, "label", "dim", y).items():
        out.setdefault(_nan_none(keys[number]), {})[label] = curve
    return out


def _crossover(df: pd.DataFrame, st: Study) -> list[Verdict]:
    """Per device, threads, dtype, N and V with both losses of both pairs at ≥ 3 values of D: where the relaxed
    loss becomes the cheaper (time and memory)."""
    b = bench_records(df)
    claim = "the relaxed loss is faster / smaller than the exact one above a crossover D"
    rule = "a crossing where the relaxed series becomes the lower one (log-log interpolation), or lower throughout"
    rows = []
    if not b.empty and "dim" in b.columns:
        labels = [x for pair in FFT_PAIRS for x in pair]
        pairs_rows = b[b["label"].isin(labels).to_numpy(dtype=bool)]
        curves = {y: _setting_curves(pairs_rows, y) for y in ("time_s", "memory_bytes")}
        for key, g in b.groupby(_CROSS_SETTING, dropna=False):
            if not all(g["label"].eq(x).any() for x in labels) or g["dim"].nunique() < 3:
                continue
            # the pairs' rows only: each crossing reads its two labels' rows, and the setting's other series were
            # filtered again for every pair and metric
            g = g[g["label"].isin(labels).to_numpy(dtype=bool)]
            found = [_crossing(g, a, c, y, unit, curves[y].get(_nan_none(key), {})) for a, c in FFT_PAIRS
                     for y, unit in (("time_s", "time"), ("memory_bytes", "memory"))]
            rows.append(Verdict(st.name, claim, combine([v for v, _ in found]), "; ".join(f for _, f in found), rule,
                                "", _cost_setting(*key)))
    return rows or [Verdict(st.name, claim, "no data", "", rule,
                            "sslbench sweep --config results/sweeps/configs/scaling-dim.toml")]


#: the coefficients the relaxed and the exact losses share (compared only at equal values)
_FFT_COEFFS = ("lambd", "scale", "sim_coeff", "std_coeff", "cov_coeff")


def _coeff_text(h: dict) -> str:
    """" (both lambd …)": the shared coefficients of a compared pair, from one of its runs' hyper-parameters."""
    parts = [f"{k} {num(h[k])}" for k in ("lambd",) if h.get(k) is not None]
    return f" (both {', '.join(parts)})" if parts else ""


class _Runs:
    """The runs' columns that :func:`_fft_arms` selects arms by, as arrays taken out of the table once; a setting
    (a group of :func:`groups`) is positions in them (:meth:`setting`), each arm a mask over those: no frame per
    setting, coefficient set or arm (issue 21)."""

    def __init__(self, runs: pd.DataFrame):
        self.table, self.index = ArmTable(runs), runs.index
        self.reg = runs["regularizer"].to_numpy(dtype=object)
        self.perm = runs["_perm"].to_numpy(dtype=bool)
        self.dv = default_variance(runs).to_numpy(dtype=bool)
        self.coeffs = runs["_coeffs"].to_numpy(dtype=object)
        self.hp = runs["hp"].to_numpy(dtype=object)

    def setting(self, g: pd.DataFrame) -> "_Setting":
        """The setting of the rows ``g`` (a selection of the runs, in their order)."""
        return _Setting(self, self.index.get_indexer(g.index))


class _Setting:
    """One setting's runs: their positions in :class:`_Runs` and the arrays at those positions."""

    def __init__(self, runs: _Runs, pos: np.ndarray):
        self.runs, self.pos = runs, pos
        self.reg, self.perm, self.dv, self.coeffs = runs.reg[pos], runs.perm[pos], runs.dv[pos], runs.coeffs[pos]
        self.hp = runs.hp[pos].tolist()

    def arm(self, mask: np.ndarray, metric: str) -> Arm:
        """The arm of the setting's rows where ``mask`` is true."""
        return self.runs.table.arm(self.pos[mask], metric)

    def coefficient_sets(self) -> list[np.ndarray]:
        """A mask per set of coefficients, in their text's order (``g.groupby("_coeffs", sort=True)``)."""
        return [self.coeffs == c for c in sorted(set(self.coeffs))]


def _fft_arms(s: _Setting, within: np.ndarray, key: tuple, st: Study, claim: str, claim_p: str) -> list[Verdict]:
    """The accuracy rows of one setting and one set of coefficients (the rows ``within`` of ``s``): relaxed vs exact,
    permute vs not; linear and kNN top-1 each with its own verdict (:data:`METRICS`)."""
    out = []
    masks = {}
    for name in ("barlow_twins_fft", "vicreg_fft", "barlow_twins", "vicreg"):
        mine = within & (s.reg == name)
        if mine.any():
            masks[name] = {"relaxed": mine & s.perm & s.dv, "exact": mine & s.dv, "permute": mine & s.perm,
                           "no permute": mine & ~s.perm}

    def sel(name: str, which: str) -> np.ndarray | None:
        m = masks[name][which] if name in masks else None
        return m if m is not None and m.any() else None

    for metric, margin, suffix in METRICS:
        what = "kNN top-1" if metric == "knn_top1" else "linear top-1"
        for relaxed, exact in (("barlow_twins_fft", "barlow_twins"), ("vicreg_fft", "vicreg")):
            gr, ge = sel(relaxed, "relaxed"), sel(exact, "exact")
            if gr is None or ge is None:
                continue
            a, b = s.arm(gr, metric), s.arm(ge, metric)
            if metric != "linear_top1" and (a.n == 0 or b.n == 0):
                continue  # records without the metric
            d = comparable(a, b, margin)
            out.append(Verdict(st.name, claim + suffix, d.verdict, f"{relaxed} {a.text()} vs {exact} {b.text()}"
                               f"{_coeff_text(s.hp[int(np.argmax(gr))])}: {d.figures}" + settle_note(d),
                               rule_comparable(margin, what), st.settle(d, key, relaxed, exact), setting_text(key)))
        for relaxed in ("barlow_twins_fft", "vicreg_fft"):
            g1, g0 = sel(relaxed, "permute"), sel(relaxed, "no permute")
            if g1 is None or g0 is None:
                continue
            a, b = s.arm(g1, metric), s.arm(g0, metric)
            if metric != "linear_top1" and (a.n == 0 or b.n == 0):
                continue
            d = better(a, b, margin)
            out.append(Verdict(st.name, claim_p + " [training]" + suffix, d.verdict, f"{relaxed} permute {a.text()} "
                               f"vs no permute {b.text()}: {d.figures}" + settle_note(d), rule_better(margin, what),
                               st.settle(d, key, relaxed), setting_text(key)))
    return out


def _unpaired(s: _Setting, key: tuple, st: Study, claim: str) -> list[Verdict]:
    """A "no data" row for a relaxed loss and its exact loss that both ran in the setting but never at the same
    coefficients (e.g. Barlow Twins at its lambd = 1/D, the FFT relaxation at 0.0051): the rule compares them only at
    equal coefficients, and the row says so rather than leaving the pair out in silence."""
    out = []
    for relaxed, exact in (("barlow_twins_fft", "barlow_twins"), ("vicreg_fft", "vicreg")):
        mine_r = np.flatnonzero((s.reg == relaxed) & s.dv)
        mine_e = np.flatnonzero((s.reg == exact) & s.dv)
        cr, ce = set(s.coeffs[mine_r]), set(s.coeffs[mine_e])
        if cr and ce and not cr & ce:
            out.append(Verdict(st.name, claim, "no data", f"{relaxed} ran{_coeffs_of(s.hp, mine_r)} and {exact}"
                               f"{_coeffs_of(s.hp, mine_e)}, never at equal coefficients: run {exact} at {relaxed}'s",
                               RULE_COMPARABLE, st.command(), setting_text(key)))
    return out


def _coeffs_of(hp: list[dict], at: np.ndarray) -> str:
    vals = sorted({f"{k} {num(hp[i][k])}" for i in at for k in _FFT_COEFFS if hp[i].get(k) is not None})
    return f" at {', '.join(vals)}" if vals else ""


def _fft_accuracy(df: pd.DataFrame, st: Study) -> list[Verdict]:
    table = train_runs(df)
    runs = published = as_published(table)
    claim = "downstream accuracy comparable to the exact losses"
    claim_p = "the permutation trick helps (accuracy with vs without it)"
    out = []
    if not runs.empty:
        # the relaxed and the exact loss are compared at the same coefficients (lambd, ...), never pooled across them
        runs = runs.assign(_perm=runs["hp"].map(lambda h: bool(h.get("permute", True))),
                           _coeffs=runs["hp"].map(lambda h: json.dumps([h.get(k) for k in _FFT_COEFFS])))
        whole = _Runs(runs)

        def rows(key: tuple, g: pd.DataFrame) -> list[Verdict]:
            s, got = whole.setting(g), []
            for within in s.coefficient_sets():
                got += _fft_arms(s, within, key, st, claim, claim_p)
            return got + _unpaired(s, key, st, claim)
        # the groups of the published runs (the same keys and rows as those of ``runs``, which only adds columns
        # derived from ``hp``), built once for the studies of a report; a setting is its rows' positions in ``runs``
        for key, g in groups(published):
            # kept while the setting's runs are unchanged (the dashboard after an append: issue 21)
            out += remember_setting("fft.accuracy", key, g, table, st, lambda key=key, g=g: rows(key, g))
    if not any(v.claim == claim for v in out):
        out.append(no_data(st, claim, RULE_COMPARABLE))
    if not any(v.claim.startswith(claim_p + " [training]") for v in out):
        out.append(no_data(st, claim_p + " [training]", RULE_BETTER))
    return out + [_mechanism(df, st, claim_p + " [mechanism: spurious minima of the relaxation]")]


#: the metrics of the exact check "permutation" that its rule reads
PERMUTATION_NEEDS = ("r_permute_structured", "r_no_permute_structured", "r_permute_random", "r_no_permute_random",
                     "batches", "dim", "batch")
RULE_MECHANISM = (f"structured batches (alternating-sign correlations on one wrapped diagonal, the relaxation's blind "
                  f"spot): Pearson r of relaxed (with: mean over permutation draws) vs exact off-diagonal penalty ≥ "
                  f"{PERM_R_MIN} with, ≤ {NOPERM_R_MAX} without permutation")


def _judge_permutation(m: dict[str, float]) -> tuple[str, str]:
    rp, rn = m["r_permute_structured"], m["r_no_permute_structured"]
    v = ("supported" if rp >= PERM_R_MIN and rn <= NOPERM_R_MAX else
         "not supported" if rp < NOPERM_R_MAX or rn >= PERM_R_MIN else "inconclusive")
    return v, (f"structured: r = {num(rp)} with, {num(rn)} without permutation; random batches: "
               f"{num(m['r_permute_random'])} / {num(m['r_no_permute_random'])} ({int(m['batches'])} batches, "
               f"{int_text(m.get('draws', math.nan))} draws, D={int(m['dim'])}, N={int(m['batch'])})")


def _mechanism(df: pd.DataFrame, st: Study, claim: str) -> Verdict:
    """The mechanism, without training: the exact check "permutation"."""
    return check_verdict(df, st, "permutation", claim, RULE_MECHANISM, PERMUTATION_NEEDS, _judge_permutation)


def verdict(df: pd.DataFrame, st: Study) -> list[Verdict]:
    return _exponents(df, st) + _crossover(df, st) + _fft_accuracy(df, st)
