"""Study ``variance``: VICReg's variance term (Bardes, Ponce, LeCun 2022). It prevents collapse (VICReg with against
without it: effective rank of the representation and of the embeddings, std of the normalised embeddings), and,
added to another method, it prevents that method's collapse or keeps its accuracy when it does not collapse."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from sslbench.analysis.claims.common import (
    ONE_SEED,
    SETTING,
    Arm,
    ArmTable,
    Study,
    Verdict,
    arm,
    comparable,
    groups,
    no_arm,
    no_data,
    num,
    recipe_cpu,
    remember_setting,
    rule_comparable,
    setting_text,
    settle_note,
    train_runs,
)

#: collapse: the variance term "prevents collapse" when effective rank and std of the normalised embeddings are
#: both at least COLLAPSE_RATIO × those without it; "no effect" when both ratios are below NO_EFFECT_RATIO
COLLAPSE_RATIO = 1.5
NO_EFFECT_RATIO = 1.1
#: a run "collapsed" when the mean per-feature std of its L2-normalised embeddings is below this / √D (a
#: spread-out embedding has about 1/√D; SimSiam without its predictor measured 0.08/√D at D = 128)
COLLAPSED_STD = 0.25
#: the add-on keeps the accuracy: the margin of its equivalence test, points of linear top-1 (set 2026-12-05 before
#: the AdamW-recipe runs; common.ACC_MARGIN says why)
LINEAR_MARGIN = 1.0
RULE_COMPARABLE = rule_comparable(LINEAR_MARGIN)

COLLAPSE_RULE = (f"prevents collapse = the effective rank of the backbone's representation with the term ≥ "
                 f"{COLLAPSE_RATIO}× that without it, or the effective rank and the std of the normalised embeddings "
                 f"(projector output) both ≥ {COLLAPSE_RATIO}×; not supported when every ratio < {NO_EFFECT_RATIO}; "
                 "else inconclusive (all on the test set). The representation is measured because normalised "
                 "embeddings cannot show a collapse of scale: without its variance term VICReg shrinks its "
                 "embeddings, whose normalised directions then look spread out while the backbone's rank drops")


def _collapse(on: pd.DataFrame | Callable[[str], Arm], off: pd.DataFrame | Callable[[str], Arm]) -> tuple[str, list[str]]:
    """(verdict, figures) of "the runs ``on`` are less collapsed than the runs ``off``" (:data:`COLLAPSE_RULE`);
    each a frame of runs, or a function giving the arm of a metric (masks over an :class:`ArmTable`)."""
    arm_on = on if callable(on) else (lambda m: arm(on, m))
    arm_off = off if callable(off) else (lambda m: arm(off, m))
    figs, ratio = [], {}
    for m in ("backbone_effective_rank", "effective_rank", "std_normalized"):
        a, b = arm_on(m), arm_off(m)
        if a.n == 0 or b.n == 0:
            continue
        ratio[m] = a.mean / b.mean if b.mean > 0 else math.inf
        figs.append(f"{m} {num(a.mean)} vs {num(b.mean)} (×{num(ratio[m])})")
    if "effective_rank" not in ratio or "std_normalized" not in ratio:
        return "no data", figs
    if (ratio.get("backbone_effective_rank", 0) >= COLLAPSE_RATIO
            or min(ratio["effective_rank"], ratio["std_normalized"]) >= COLLAPSE_RATIO):
        return "supported", figs
    if max(ratio.values()) < NO_EFFECT_RATIO:
        return "not supported", figs
    return "inconclusive", figs


def _collapse_hint(key: tuple, gpu_cmd: str) -> str:
    """The "to settle" hint of an inconclusive collapse row: in the AdamW-recipe CPU setting, why more seeds of the
    same grid do not settle it (the rule reads ratios of the arms' means, not a spread), then the GPU grid."""
    if not recipe_cpu(key):
        return gpu_cmd
    return (f"# more seeds do not settle this: the rule reads ratios of the arms' means (here between ×"
            f"{NO_EFFECT_RATIO} and ×{COLLAPSE_RATIO}, or mixed), not a spread; only another setting (a longer "
            f"training, another coefficient) may   | GPU: {gpu_cmd}")


def verdict(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    claim = "the variance term prevents collapse (effective rank of the representation and of the embeddings, std)"
    rule = "with std_coeff > 0 against std_coeff = 0: " + COLLAPSE_RULE
    table = runs = train_runs(df)

    def rows(key: tuple, g: pd.DataFrame) -> list[Verdict]:
        """The rows of one setting (``g``: its VICReg runs)."""
        out: list[Verdict] = []
        # the arms as masks over the setting's arrays, not a frame each (issue 21)
        t, regs, std_of = ArmTable(g), g["regularizer"].to_numpy(dtype=object), g["_std"].to_numpy(float)
        for reg in ("vicreg", "vicreg_fft"):
            g_on = (regs == reg) & (std_of > 0)
            g_off = (regs == reg) & (std_of == 0)
            if not g_on.any() or not g_off.any():
                continue
            v, figs = _collapse(lambda m, mask=g_on: t.arm(mask, m), lambda m, mask=g_off: t.arm(mask, m))
            la, lb = t.arm(g_on), t.arm(g_off)
            figs.append(f"linear top-1 {la.text()} vs {lb.text()}: {comparable(la, lb, LINEAR_MARGIN).figures}")
            out.append(Verdict(st.name, claim, v, f"{reg} std_coeff {num(std_of[g_on][0])} vs 0: "
                               + "; ".join(figs), rule, "" if v == "supported" else
                               _collapse_hint(key, st.settle_command(reg)) if v == "inconclusive" else
                               st.settle_command(reg),
                               setting_text(key)))
        return out

    if not runs.empty:
        runs = runs[runs["regularizer"].isin(("vicreg", "vicreg_fft"))]
        std = runs["hp"].map(lambda h: h.get("std_coeff", math.nan)).astype(float)
        runs = runs.assign(_std=std)
        for key, g in groups(runs):
            # kept while the setting's runs are unchanged (the dashboard after an append: issue 21)
            out += remember_setting("variance.collapse", key, g, table, st, lambda key=key, g=g: rows(key, g))
    if not out:
        out.append(no_data(st, claim, rule))
    return out + _variance_add_on(train_runs(df), st)


CLAIM_COLLAPSE = "the variance term prevents the collapse of another method when added to it"
CLAIM_ACCURACY = "adding the variance term keeps the accuracy of a method that does not collapse without it"
RULE_COLLAPSE = (f"arms where the method without the add-on collapsed (std of the normalised embeddings < "
                 f"{COLLAPSED_STD:g}/√D), with against without the add-on: " + COLLAPSE_RULE)
RULE_ACCURACY = "arms where the method without the add-on did not collapse: " + RULE_COMPARABLE


def _add_on_settle(st: Study, reg: str, ema: float, pred: float, claim: str) -> str:
    """The "to settle" hint of an add-on row. The GPU grids' add-on arms are BYOL without EMA, with its predictor
    (2 seeds in the one-hour grid, 1 in the full one) and without it (1 seed in both: the collapse rule reads
    ratios); the accuracy rule needs 2 seeds per arm (tests/test_report.py checks the configs)."""
    if reg != "byol" or ema != 0:
        why = no_arm(f"{reg} with EMA {num(ema)}" if reg == "byol" else reg)
        return st.settle_command(gpu=why, gpu_1h=why)
    if claim == CLAIM_COLLAPSE:
        return st.settle_command(reg)
    return st.settle_command(reg, gpu=ONE_SEED, gpu_1h="" if pred > 0 else ONE_SEED)


def _add_on_row(st: Study, key: tuple, what: str, coeff: float, on: pd.DataFrame | Callable[[str], Arm],
                off: pd.DataFrame | Callable[[str], Arm], arm_of: tuple[str, float, float]) -> Verdict:
    """The row of one method's arms with (``on``) and without (``off``) the add-on (each a frame of runs, or a
    function giving the arm of a metric): the collapse claim when the method collapses without it, else the
    accuracy claim. ``arm_of``: (regularizer, EMA decay, predictor width)."""
    arm_on = on if callable(on) else (lambda m: arm(on, m))
    arm_off = off if callable(off) else (lambda m: arm(off, m))
    dim = float(key[SETTING.index("dim")] or math.nan)
    std_off = arm_off("std_normalized")
    collapsed = std_off.n > 0 and std_off.mean < COLLAPSED_STD / math.sqrt(dim)
    collapse_v, figs = _collapse(arm_on, arm_off)
    la, lb = arm_on("linear_top1"), arm_off("linear_top1")
    acc = comparable(la, lb, LINEAR_MARGIN)
    figs.append(f"linear top-1 {la.text()} vs {lb.text()}: {acc.figures}" + ("" if collapsed else settle_note(acc)))
    claim, v, rule = ((CLAIM_COLLAPSE, collapse_v, RULE_COLLAPSE) if collapsed else
                      (CLAIM_ACCURACY, acc.verdict, RULE_ACCURACY))
    hint = "" if v == "supported" else _add_on_settle(st, *arm_of, claim)
    return Verdict(st.name, claim, v, f"{what}: variance_coeff {num(coeff)} vs 0: " + "; ".join(figs), rule,
                   (_collapse_hint(key, hint) if v == "inconclusive" else hint) if collapsed
                   else st.with_cpu(acc, key, hint), setting_text(key))


def _variance_add_on(runs: pd.DataFrame, st: Study) -> list[Verdict]:
    """Claim 4b: VICReg's variance term added to another method (``variance_coeff`` > 0) against the same method
    without it, in the same setting (same EMA decay and predictor)."""
    out: list[Verdict] = []
    table = runs
    if not runs.empty:
        runs = runs[~runs["regularizer"].isin(("vicreg", "vicreg_fft"))]
    for key, g in groups(runs):
        # kept while the setting's runs are unchanged (the dashboard after an append: issue 21)
        out += remember_setting("variance.add_on", key, g, table, st, lambda key=key, g=g: _add_on_rows(key, g, st))
    if not any(v.claim == CLAIM_COLLAPSE for v in out):
        out.append(no_data(st, CLAIM_COLLAPSE, RULE_COLLAPSE, "no run of a collapsing method with and without the "
                           "add-on"))
    return out


def _add_on_rows(key: tuple, g: pd.DataFrame, st: Study) -> list[Verdict]:
    """The add-on rows of one setting (``g``: its runs of the methods other than VICReg)."""
    out: list[Verdict] = []
    arms = g.assign(_pred=g["predictor_hidden"].fillna(-1), _ema=g["ema_tau"].astype(float).fillna(0.0))
    # each method's arms (regularizer, EMA decay, predictor) as masks over the setting's arrays, in the order of
    # groupby(["regularizer", "_ema", "_pred"], sort=True) (a run without a regularizer in none), no frame per
    # arm (issue 21)
    t, addon = ArmTable(g), g["variance_addon"].to_numpy(float)
    regs, emas, preds = (arms[c].to_numpy() for c in ("regularizer", "_ema", "_pred"))
    at: dict[tuple, list[int]] = {}
    for i, k in enumerate(zip(regs, emas, preds)):
        if not pd.isna(k[0]):
            at.setdefault(k, []).append(i)
    try:
        order = sorted(at)
    except TypeError:  # regularizers of mixed types (a hostile store): the order pandas gives them
        order = [k for k, _ in arms.groupby(["regularizer", "_ema", "_pred"], sort=True)]
    for reg, ema, pred in order:
        a = np.zeros(len(g), dtype=bool)
        a[at[(reg, ema, pred)]] = True
        off = a & (addon == 0)
        what = f"{reg}" + (f" EMA {num(ema)}" if reg in ("byol", "directpred", "isoloss") else "") + (
            (" no predictor" if pred == 0 else f" predictor {int(pred)}") if reg == "byol" else "")
        for coeff in sorted(set(addon[a].tolist()) - {0.0}):
            on = a & (addon == coeff)
            if off.any() and on.any():
                out.append(_add_on_row(st, key, what, coeff, lambda m, on=on: t.arm(on, m),
                                       lambda m, off=off: t.arm(off, m), (reg, ema, pred)))
    return out
