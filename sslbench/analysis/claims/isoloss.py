"""Study ``isoloss``: IsoLoss vs DirectPred vs BYOL (Halvagal, Laborieux, Zenke, NeurIPS 2023). IsoLoss learns
robustly without the EMA target where DirectPred / BYOL need it: per method, the drop in linear accuracy from EMA
to none, counted beyond the seed-noise margin."""

from __future__ import annotations

import math

import pandas as pd

from sslbench.analysis.claims.common import (
    ACC_POINTS,
    ACC_STDS,
    Study,
    Verdict,
    arm,
    as_published,
    groups,
    margin,
    no_data,
    num,
    setting_text,
    train_runs,
)

METHODS = ("isoloss", "directpred", "byol")
RULE = ("for each method: drop in linear top-1 from EMA (tau > 0) to none (tau = 0), counted beyond "
        f"max({ACC_POINTS:g} points, {ACC_STDS:g} × seed std). Supported: IsoLoss does not drop and DirectPred "
        "or BYOL does; not supported: IsoLoss drops; inconclusive: none drops (the setting does not stress them)")


def _drops(g: pd.DataFrame) -> tuple[dict, list[str]]:
    """({method: dropped without EMA (True / False), or None without a usable run}, figures) in one setting."""
    ema = g["ema_tau"].astype(float)
    res, figs = {}, []
    for reg in METHODS:
        on, off = g[(g["regularizer"] == reg) & (ema > 0)], g[(g["regularizer"] == reg) & (ema == 0)]
        if on.empty or off.empty:
            continue
        a, b = arm(off), arm(on)
        d, m = a.mean - b.mean, margin(a, b)
        ra, rb = arm(off, "effective_rank"), arm(on, "effective_rank")
        res[reg] = (d < -m) if (a.n and b.n) else None
        if a.n == 0 and a.runs:  # every run without EMA failed (diverged): that is a drop
            res[reg] = True
        figs.append(f"{reg}: no EMA {a.text()} vs EMA {b.text()} (Δ {d:+.2f}, margin {m:.2f}; eff. rank "
                    f"{num(ra.mean)} vs {num(rb.mean)})")
    return res, figs


def _decide(res: dict) -> str:
    if res["isoloss"] is None:
        return "inconclusive"
    if res["isoloss"]:
        return "not supported"
    return "supported" if any(res.get(r) for r in ("directpred", "byol")) else "inconclusive"


def verdict(df: pd.DataFrame, st: Study) -> list[Verdict]:
    claim = "IsoLoss learns robustly without the EMA target, where DirectPred / BYOL need it"
    out = []
    runs = as_published(train_runs(df))
    if not runs.empty:
        runs = runs[runs["regularizer"].isin(METHODS)]
    for key, g in groups(runs):
        res, figs = _drops(g)
        if "isoloss" not in res or len(res) < 2:
            continue
        floor = arm(g)
        if math.isfinite(floor.init):
            figs.append(f"network at initialisation {num(floor.init, 4)}")
        v = _decide(res)
        out.append(Verdict(st.name, claim, v, "; ".join(figs), RULE, "" if v != "inconclusive" else
                           st.settle_command(*res), setting_text(key)))
    return out or [no_data(st, claim, RULE)]
