"""Study ``views``: many augmentations and low-dimensional projectors (Agrawal et al.). More views improve accuracy
at equal data, reach the accuracy of 2 views with up to 4× less data, and beat 2 views at fixed compute (V × data
constant); Barlow Twins with D = 128 and lambd ≈ 1/D matches D = 2048."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from sslbench.analysis.claims.common import (
    ONE_SEED,
    SETTING,
    ArmTable,
    Decision,
    Study,
    Verdict,
    arm,
    as_published,
    below_floor,
    better,
    combine_decisions,
    comparable,
    device_short,
    earlier_text,
    int_text,
    no_data,
    num,
    optimizer_text,
    remember,
    rule_better,
    rule_comparable,
    setting_key,
    setting_keys,
    setting_text,
    settle_note,
    train_runs,
    warmup_text,
)

#: accuracy margins, points of top-1 (set 2026-12-05 before the AdamW-recipe runs; common.ACC_MARGIN says why). The
#: paper quotes linear and kNN accuracy: each "more views" claim has a row per metric (:data:`METRICS`)
LINEAR_MARGIN = 1.0
KNN_MARGIN = 2.0
METRICS = (("linear_top1", LINEAR_MARGIN, "", "linear top-1"), ("knn_top1", KNN_MARGIN, " [kNN]", "kNN top-1"))
RULE_BETTER = rule_better(LINEAR_MARGIN)
RULE_COMPARABLE = rule_comparable(LINEAR_MARGIN)


def _better_pairs(acc: dict, pairs: list, labels: Callable, margin: float) -> tuple[list[Decision], list[str]]:
    """(decisions, figures) of "arm a beats arm b" for each (a, b) of ``pairs`` (keys of ``acc``, (V, fraction));
    ``labels(a, b)`` names the two arms in the figure."""
    ds, figs = [], []
    for a, b in pairs:
        d = better(acc[a], acc[b], margin)
        la, lb = labels(a, b)
        figs.append(f"{la} {num(acc[a].mean, 4)} vs {lb} {num(acc[b].mean, 4)} ({d.figures.split('; all below')[0]})")
        ds.append(d)
    return ds, figs


CLAIMS = ("more views improve accuracy at equal data",
          "more views reach the accuracy of 2 views with up to 4× less data",
          "more views at fixed compute (V × data constant) beat 2 views")
CLAIM_LOW_DIM = "D = 128 with lambd ≈ 1/D matches D = 2048"
LESS_DATA_NOTE = ("; needs V=2 to lose accuracy with less data (its 95 % interval below −margin), else inconclusive; "
                  "a miss with more than 4× less data settles nothing")


def _view_groups(runs: pd.DataFrame) -> list[tuple[str, str, list, list, dict]]:
    """[(regularizer, setting text, setting key (:data:`SETTING`, V and fraction None), the V, the fractions,
    {metric: {(V, fraction): arm with runs}})] for each setting (apart from V and the data fraction), regularizer
    and lambd with V = 2 and at least one other V."""
    nov = [k for k in SETTING if k not in ("views", "fraction")]
    runs = runs.assign(_lambd=runs["hp"].map(lambda h: h.get("lambd")))
    # NaN (a missing lambd, e.g. VICReg's) → None: NaN != NaN would put every such run in a group of its own
    keys = setting_keys(runs, [*nov, "regularizer", "_lambd"])  # column by column, not a Series per run
    out = []
    at: dict[tuple, list[int]] = {}  # one pass (runs[keys == key] for every key was O(runs x keys), issue 21)
    for pos, key in enumerate(keys):
        at.setdefault(key, []).append(pos)
    # one table of arrays for every setting: a setting's cells are positions in it, no frame per setting or cell
    t, views, fraction = ArmTable(runs), runs["views"].to_numpy(), runs["fraction"].to_numpy()
    for key in sorted(at, key=str):
        pos = np.asarray(at[key])
        vv, ff = views[pos], fraction[pos]
        vs, fr = sorted(set(vv[~pd.isna(vv)].tolist())), sorted(set(ff[~pd.isna(ff)].tolist()))
        if 2 not in vs or len(vs) < 2:
            continue
        d = dict(zip(nov, key))
        lam = f" lambd {num(key[-1])}" if key[-1] is not None else ""
        full = tuple(d.get(k) for k in SETTING)  # the fields of the setting without V and the fraction
        setting = (f"{key[-2]}{lam} {d['dataset']} D={int_text(d['dim'])} B={int_text(d['batch'])} "
                   f"{int_text(d['epochs'])} ep{warmup_text(d.get('warmup_epochs'))} "
                   f"lr {num(d['lr'])}{optimizer_text(d.get('optimizer'))} {device_short(d['device_name'])}"
                   f"{earlier_text(full)}")
        cells = {(v, f): pos[(vv == v) & (ff == f)] for v in vs for f in fr}
        accs = {}
        for metric, *_ in METRICS:
            acc = {k: t.arm(at_, metric) for k, at_ in cells.items()}
            accs[metric] = {k: a for k, a in acc.items() if a.n > 0}
        out.append((key[-2], setting, full, vs, fr, accs))
    return out


def _less_data(vs: list, fr: list, acc: dict, margin: float) -> tuple[Decision, str] | None:
    """(decision, figures) of "more views at the smallest fraction match V=2 at the largest", or None."""
    if len(fr) < 2 or (2, fr[-1]) not in acc:
        return None
    full, small = acc[(2, fr[-1])], fr[0]
    ratio = fr[-1] / small
    best = max(((v, acc[(v, small)]) for v in vs if v > 2 and (v, small) in acc), key=lambda t: t[1].mean,
               default=None)
    if best is None or (2, small) not in acc:
        return None
    two_small = acc[(2, small)]
    loss = comparable(two_small, full, margin)  # V=2 with less data: "not supported" = it loses beyond the margin
    d = comparable(best[1], full, margin)
    note = f" ({ratio:g}× less data)"
    if loss.verdict != "not supported":
        note += (f"; V=2 loses {full.mean - two_small.mean:+.2f} points with {ratio:g}× less data, not shown beyond "
                 "the margin")
        d = Decision("inconclusive", d.figures, d.comparison, loss.seeds if loss.verdict == "inconclusive" else None,
                     loss.have)
    elif d.verdict == "not supported" and ratio > 4 + 1e-9:  # more than 4× less data is more than the claim
        d = Decision("inconclusive", d.figures, d.comparison, None, d.have)
    return d, (f"V={int_text(best[0])} at frac {num(small)} {num(best[1].mean, 4)} vs V=2 at frac {num(fr[-1])} "
               f"{num(full.mean, 4)} ({d.figures}); V=2 at frac {num(small)} {num(two_small.mean, 4)}{note}")


def _more_views(st: Study, reg: str, setting: str, key: tuple, vs: list, fr: list, accs: dict) -> list[Verdict]:
    """The rows of the three "more views" claims in one setting (:func:`_view_groups`), per metric."""
    out = []
    for metric, margin, suffix, what in METRICS:
        acc = accs[metric]
        if not acc:
            continue
        def settle(d: Decision) -> str:  # both GPU grids train one seed per arm: the rules need two
            return st.settle(d, key, reg, gpu=ONE_SEED, gpu_1h=ONE_SEED)

        vmax = max(vs)
        # equal data
        ds, figs = _better_pairs(acc, [((vmax, f), (2, f)) for f in fr if (2, f) in acc and (vmax, f) in acc],
                                 lambda a, b: (f"frac {num(a[1])}: V={int_text(a[0])}", "V=2"), margin)
        if ds:
            d = combine_decisions(ds)
            out.append(Verdict(st.name, CLAIMS[0] + suffix, d.verdict, "; ".join(figs) + below_floor(*acc.values())
                               + settle_note(d), rule_better(margin, what), settle(d), setting))
        less = _less_data(vs, fr, acc, margin)
        if less:
            d, fig = less
            out.append(Verdict(st.name, CLAIMS[1] + suffix, d.verdict, fig + settle_note(d),
                               rule_comparable(margin, what) + LESS_DATA_NOTE, settle(d), setting))
        # fixed compute: V·fraction constant
        pairs = [((v, f), (2, f2)) for (v2, f2) in acc if v2 == 2 for (v, f) in acc
                 if v > 2 and abs(v * f - 2 * f2) < 1e-9]
        ds, figs = _better_pairs(acc, pairs, lambda a, b: (f"V={int_text(a[0])} frac {num(a[1])}",
                                                           f"V=2 frac {num(b[1])}"), margin)
        if ds:
            d = combine_decisions(ds)
            out.append(Verdict(st.name, CLAIMS[2] + suffix, d.verdict, "; ".join(figs) + below_floor(*acc.values())
                               + settle_note(d), rule_better(margin, what), settle(d), setting))
    return out


def _low_dim(runs: pd.DataFrame, st: Study) -> list[Verdict]:
    """Barlow Twins with a low-dimensional projector (D = 128, lambd ≈ 1/D) against D = 2048 in the same setting."""
    out = []
    bt = runs[runs["regularizer"] == "barlow_twins"]
    lam = bt["hp"].map(lambda h: h.get("lambd", math.nan)).astype(float)
    low = bt[(bt["dim"] == 128) & (np.abs(lam * 128 - 1) < 0.05)]
    high = bt[bt["dim"] == 2048]
    nod = [k for k in SETTING if k not in ("dim", "projector")]  # the projector's spec ends with D
    for _, lo_row in low.drop_duplicates(subset=nod).iterrows():
        def same(t: pd.DataFrame) -> pd.DataFrame:
            return t[np.logical_and.reduce([(t[k] == lo_row[k]) | (t[k].isna() & pd.isna(lo_row[k])) for k in nod])]
        a_rows, b_rows = same(low), same(high)
        if b_rows.empty:
            continue
        key = setting_key(lo_row)
        for metric, margin, suffix, what in METRICS:
            a, b = arm(a_rows, metric), arm(b_rows, metric)
            if metric != "linear_top1" and (a.n == 0 or b.n == 0):
                continue  # records without the metric
            d = comparable(a, b, margin)
            out.append(Verdict(st.name, CLAIM_LOW_DIM + suffix, d.verdict, f"D=128 lambd 1/128 {a.text()} vs D=2048 "
                               f"lambd {num(b_rows['hp'].iloc[0].get('lambd'))} {b.text()}: {d.figures}"
                               + settle_note(d), rule_comparable(margin, what),
                               st.settle(d, key, "barlow_twins", gpu=ONE_SEED),
                               setting_text(key).replace("D=128 ", "")))
    return out


def verdict(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    runs = as_published(train_runs(df))
    if not runs.empty:
        runs = runs[runs["ok"] | (runs["status"] != "ok")]
        for reg, setting, key, vs, fr, accs in _view_groups(runs):
            # kept while the setting's arms are unchanged (the dashboard after an append: issue 21)
            out += remember("views.more", (repr(st), reg, setting, key, vs, fr, accs),
                            lambda a=(st, reg, setting, key, vs, fr, accs): _more_views(*a))
    for c in CLAIMS:
        if not any(v.claim == c for v in out):
            out.append(no_data(st, c, RULE_BETTER))
    low = _low_dim(runs, st) if not runs.empty else []
    return out + (low or [no_data(st, CLAIM_LOW_DIM, RULE_COMPARABLE)])
