"""Study ``isoloss``: IsoLoss vs DirectPred vs BYOL (Halvagal, Laborieux, Zenke, NeurIPS 2023). IsoLoss learns
robustly without the EMA target where DirectPred / BYOL need it: per method, the drop in linear accuracy from EMA
to none, counted beyond the seed-noise margin."""

from __future__ import annotations

import math

import pandas as pd

from sslbench.analysis.claims import stats
from sslbench.analysis.claims.common import (
    ArmTable,
    Decision,
    Study,
    Verdict,
    as_published,
    below_floor,
    groups,
    no_data,
    num,
    remember_setting,
    setting_text,
    settle_note,
    train_runs,
)

METHODS = ("isoloss", "directpred", "byol")
#: a drop counts beyond this many points of linear top-1 (set 2026-12-05 before the AdamW-recipe runs;
#: common.ACC_MARGIN says why)
LINEAR_MARGIN = 1.0
RULE = ("for each method: Δ = linear top-1 without EMA (tau = 0) − with it (tau > 0), its 95 % Welch interval; "
        f"dropped when the interval lies below −{LINEAR_MARGIN:g} points, kept when it lies above −{LINEAR_MARGIN:g}, "
        "else unknown (also with fewer than 2 seeds in an arm); a method whose runs without EMA all failed dropped. "
        "Supported: IsoLoss kept and DirectPred or BYOL dropped; not supported: IsoLoss dropped; else (or every arm "
        "below the network at initialisation) inconclusive. Margin set 2026-12-05 (before the AdamW-recipe runs; it "
        "replaces max(2 points, 2 × seed std), set after the SGD-recipe data had been seen)")


def _drop(off, on) -> tuple[bool | None, stats.Comparison | None, int | None]:
    """(dropped: True / False / None when unknown, the comparison, seeds per arm that would decide it)."""
    if off.n == 0 and off.runs:  # every run without EMA failed (diverged): that is a drop
        return True, None, None
    if off.n == 0 or on.n == 0:
        return None, None, None
    c = stats.welch(off.values, on.values)
    if not c.has_interval:
        return None, c, None
    if c.hi < -LINEAR_MARGIN:
        return True, c, None
    if c.lo > -LINEAR_MARGIN:
        return False, c, None
    n = stats.seeds_to_settle(c, -LINEAR_MARGIN)
    return None, c, None if n is None else max(n, min(off.n, on.n) + 1)


def _drops(g: pd.DataFrame) -> tuple[dict, list[str], dict]:
    """({method: dropped without EMA (True / False), or None when unknown}, figures, {method: (comparison, seeds
    that would decide it, seeds the arms have, (arm without EMA, arm with it))}) in one setting."""
    # the arms as masks over the setting's arrays, not a frame each (issue 21)
    t, ema, regs = ArmTable(g), g["ema_tau"].astype(float).to_numpy(), g["regularizer"].to_numpy(dtype=object)
    res, figs, why = {}, [], {}
    for reg in METHODS:
        on, off = (regs == reg) & (ema > 0), (regs == reg) & (ema == 0)
        if not on.any() or not off.any():
            continue
        a, b = t.arm(off), t.arm(on)
        dropped, c, n = _drop(a, b)
        res[reg] = dropped
        why[reg] = (c, n, min(a.n, b.n), (a, b))
        ra, rb = t.arm(off, "effective_rank"), t.arm(on, "effective_rank")
        state = {True: "dropped", False: "kept", None: "unknown"}[dropped]
        figs.append(f"{reg}: no EMA {a.text()} vs EMA {b.text()} ({c.text() if c else 'no interval'}: {state}; "
                    f"eff. rank {num(ra.mean)} vs {num(rb.mean)})")
    return res, figs, why


def _decide(res: dict) -> str:
    if res["isoloss"] is None:
        return "inconclusive"
    if res["isoloss"]:
        return "not supported"
    return "supported" if any(res.get(r) for r in ("directpred", "byol")) else "inconclusive"


def _decision(v: str, res: dict, why: dict) -> Decision:
    """The decision behind an inconclusive row, for its "to settle" hint: IsoLoss's comparison when IsoLoss is
    unknown, else the unknown other method's needing the fewest seeds."""
    if v != "inconclusive":
        return Decision(v, "")
    open_ = ["isoloss"] if res["isoloss"] is None else [r for r in METHODS[1:] if r in res and res[r] is None]
    if not open_:  # no method dropped, all decided: more seeds do not change that
        return Decision(v, "")
    known = [why[r] for r in open_ if why[r][1] is not None]
    c, n, have, arms = min(known, key=lambda t: t[1]) if known else why[open_[0]]
    return Decision(v, "", c, n, have, arms=arms)  # the arms: the hint runs that method's seeds only


CLAIM = "IsoLoss learns robustly without the EMA target, where DirectPred / BYOL need it"


def verdict(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    table = train_runs(df)
    runs = as_published(table)
    if not runs.empty:
        runs = runs[runs["regularizer"].isin(METHODS)]
    for key, g in groups(runs):
        # kept while the setting's runs are unchanged (the dashboard after an append: issue 21)
        out += remember_setting("isoloss", key, g, table, st, lambda key=key, g=g: _rows(key, g, st))
    return out or [no_data(st, CLAIM, RULE)]


def _rows(key: tuple, g: pd.DataFrame, st: Study) -> list[Verdict]:
    """The row of one setting (``g``: its runs of :data:`METHODS`), or none."""
    claim, out = CLAIM, []
    res, figs, why = _drops(g)
    if "isoloss" not in res or len(res) < 2:
        return out
    t, regs = ArmTable(g), g["regularizer"].to_numpy(dtype=object)
    floor = t.arm()
    if math.isfinite(floor.init):
        figs.append(f"network at initialisation {num(floor.init, 4)}")
    arms = [t.arm(regs == r) for r in res]
    under = below_floor(*arms)
    v = "inconclusive" if under else _decide(res)
    d = _decision(v, res, why) if not under else Decision(v, "")
    figs = "; ".join(figs) + under + (settle_note(d) if d.comparison is not None else "")
    out.append(Verdict(st.name, claim, v, figs, RULE, st.settle(d, key, *res) if d.comparison is not None
                       else ("" if v != "inconclusive" else st.settle_command(*res)), setting_text(key)))
    return out
