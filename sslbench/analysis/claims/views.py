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
    RULE_BETTER,
    RULE_COMPARABLE,
    SETTING,
    Study,
    Verdict,
    arm,
    as_published,
    below_floor,
    better,
    combine,
    comparable,
    device_short,
    int_text,
    isnan,
    margin,
    no_data,
    num,
    setting_key,
    setting_text,
    train_runs,
    warmup_text,
)


def _better_pairs(acc: dict, pairs: list, labels: Callable) -> tuple[list[str], list[str]]:
    """(verdicts, figures) of "arm a beats arm b" for each (a, b) of ``pairs`` (keys of ``acc``, (V, fraction));
    ``labels(a, b)`` names the two arms in the figure."""
    vv, figs = [], []
    for a, b in pairs:
        v, fig = better(acc[a], acc[b])
        la, lb = labels(a, b)
        figs.append(f"{la} {num(acc[a].mean, 4)} vs {lb} {num(acc[b].mean, 4)} ({fig.split(' (')[0]})")
        vv.append(v)
    return vv, figs



CLAIMS = ("more views improve accuracy at equal data",
          "more views reach the accuracy of 2 views with up to 4× less data",
          "more views at fixed compute (V × data constant) beat 2 views")
CLAIM_LOW_DIM = "D = 128 with lambd ≈ 1/D matches D = 2048"
RULE_LESS_DATA = RULE_COMPARABLE + "; needs V=2 to lose accuracy with less data, else inconclusive"


def _view_groups(runs: pd.DataFrame) -> list[tuple[str, str, list, list, dict]]:
    """[(regularizer, setting text, the V, the fractions, {(V, fraction): arm with runs})] for each setting (apart
    from V and the data fraction), regularizer and lambd with V = 2 and at least one other V."""
    nov = [k for k in SETTING if k not in ("views", "fraction")]
    runs = runs.assign(_lambd=runs["hp"].map(lambda h: h.get("lambd")))
    # NaN (a missing lambd, e.g. VICReg's) → None: NaN != NaN would put every such run in a group of its own
    keys = runs.apply(lambda r: tuple(None if isnan(x) else x for x in
                                      [r.get(k) for k in nov] + [r["regularizer"], r["_lambd"]]), axis=1)
    out = []
    at: dict[tuple, list[int]] = {}  # one pass (runs[keys == key] for every key was O(runs x keys), issue 21)
    for pos, key in enumerate(keys):
        at.setdefault(key, []).append(pos)
    for key in sorted(at, key=str):
        g = runs.iloc[at[key]]
        vs, fr = sorted(set(g["views"].dropna())), sorted(set(g["fraction"].dropna()))
        if 2 not in vs or len(vs) < 2:
            continue
        d = dict(zip(nov, key))
        lam = f" lambd {num(key[-1])}" if key[-1] is not None else ""
        setting = (f"{key[-2]}{lam} {d['dataset']} D={int_text(d['dim'])} B={int_text(d['batch'])} "
                   f"{int_text(d['epochs'])} ep{warmup_text(d.get('warmup_epochs'))} "
                   f"lr {num(d['lr'])} {device_short(d['device_name'])}")
        acc = {(v, f): arm(g[(g["views"] == v) & (g["fraction"] == f)]) for v in vs for f in fr}
        out.append((key[-2], setting, vs, fr, {k: a for k, a in acc.items() if a.n > 0}))
    return out


def _less_data(vs: list, fr: list, acc: dict) -> tuple[str, str] | None:
    """(verdict, figures) of "more views at the smallest fraction match V=2 at the largest", or None."""
    if len(fr) < 2 or (2, fr[-1]) not in acc:
        return None
    full, small = acc[(2, fr[-1])], fr[0]
    ratio = fr[-1] / small
    best = max(((v, acc[(v, small)]) for v in vs if v > 2 and (v, small) in acc), key=lambda t: t[1].mean,
               default=None)
    if best is None or (2, small) not in acc:
        return None
    two_small = acc[(2, small)]
    data_matters = two_small.mean < full.mean - margin(two_small, full)
    _, fig = comparable(best[1], full)
    note = f" ({ratio:g}× less data)"
    if not data_matters:
        v = "inconclusive"
        note += f"; V=2 loses only {full.mean - two_small.mean:+.2f} points with {ratio:g}× less data"
    elif best[1].mean >= full.mean - margin(best[1], full):
        v = "supported"
    else:  # more than 4× less data is more than the claim: a miss there settles nothing
        v = "not supported" if ratio <= 4 + 1e-9 else "inconclusive"
    return v, (f"V={int_text(best[0])} at frac {num(small)} {num(best[1].mean, 4)} vs V=2 at frac {num(fr[-1])} "
               f"{num(full.mean, 4)} ({fig}); V=2 at frac {num(small)} {num(two_small.mean, 4)}{note}")


def _more_views(st: Study, reg: str, setting: str, vs: list, fr: list, acc: dict) -> list[Verdict]:
    """The rows of the three "more views" claims in one setting (:func:`_view_groups`)."""
    out = []
    settle = st.settle_command(reg)  # one seed per arm in both GPU grids: these rules allow it (a 2-point margin)
    vmax = max(vs)
    # equal data
    vv, figs = _better_pairs(acc, [((vmax, f), (2, f)) for f in fr if (2, f) in acc and (vmax, f) in acc],
                             lambda a, b: (f"frac {num(a[1])}: V={int_text(a[0])}", "V=2"))
    if vv:
        out.append(Verdict(st.name, CLAIMS[0], combine(vv), "; ".join(figs) + below_floor(*acc.values()),
                           RULE_BETTER, settle, setting))
    less = _less_data(vs, fr, acc)
    if less:
        out.append(Verdict(st.name, CLAIMS[1], less[0], less[1], RULE_LESS_DATA, settle, setting))
    # fixed compute: V·fraction constant
    pairs = [((v, f), (2, f2)) for (v2, f2) in acc if v2 == 2 for (v, f) in acc
             if v > 2 and abs(v * f - 2 * f2) < 1e-9]
    vv, figs = _better_pairs(acc, pairs, lambda a, b: (f"V={int_text(a[0])} frac {num(a[1])}", f"V=2 frac {num(b[1])}"))
    if vv:
        out.append(Verdict(st.name, CLAIMS[2], combine(vv), "; ".join(figs) + below_floor(*acc.values()),
                           RULE_BETTER, settle, setting))
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
        a, b = arm(a_rows), arm(b_rows)
        v, fig = comparable(a, b)
        out.append(Verdict(st.name, CLAIM_LOW_DIM, v, f"D=128 lambd 1/128 {a.text()} vs D=2048 lambd "
                           f"{num(b_rows['hp'].iloc[0].get('lambd'))} {b.text()}: {fig}", RULE_COMPARABLE,
                           "" if v == "supported" else st.settle_command("barlow_twins", gpu=ONE_SEED),
                           setting_text(setting_key(lo_row)).replace("D=128 ", "")))
    return out


def verdict(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    runs = as_published(train_runs(df))
    if not runs.empty:
        runs = runs[runs["ok"] | (runs["status"] != "ok")]
        for group in _view_groups(runs):
            out += _more_views(st, *group)
    for c in CLAIMS:
        if not any(v.claim == c for v in out):
            out.append(no_data(st, c, RULE_BETTER))
    low = _low_dim(runs, st) if not runs.empty else []
    return out + (low or [no_data(st, CLAIM_LOW_DIM, RULE_COMPARABLE)])
