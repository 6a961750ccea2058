"""Every training variant against the baselines it ran beside: the ``versus`` table of ``sslbench analyze``.

Someone with a new regularizer asks one question of their runs: is it as good as Barlow Twins and VICReg, at the
same setting? For each setting (data, fraction, backbone, D, V, batch, epochs, device and its model: the runs that
can be compared) and each variant there (:func:`sslbench.analysis.accuracy.run_variants`; one record per run id, the latest), the table
compares its seeds with each baseline's (default: ``barlow_twins`` and ``vicreg`` at their defaults), linear probe and kNN
top-1 each:

* Δ = mean(variant) − mean(baseline) with its 95 % Welch interval (the arms need not share seeds);
* the equivalence test (two one-sided tests, TOST) within ±margin: 1 point linear, 2 points kNN, the margins of
  ``sslbench report`` (:data:`sslbench.analysis.claims.common.ACC_MARGIN`, ``KNN_MARGIN``);
* the verdict: **comparable** (TOST p < 0.05; "higher" or "lower" added when the interval also excludes 0),
  **better** / **worse** (the interval beyond +margin / −margin), else **inconclusive** with the seeds per arm that
  would settle it at the observed spread (80 % power), or why more seeds cannot; "both below the network at
  initialisation" added where both arms' means are (the setting trained nothing useful).

A baseline is compared with the baselines after it (one direction of each pair), every other variant with each.

Its cost is about a millisecond per comparison (the seeds to settle an inconclusive one, several), so it is printed
on request (``sslbench analyze --tables versus``), not by default: a synthetic 10^5-record store of 9 439 settings
makes 242 560 comparisons (about 200 s), where a user's store of a few settings makes tens.

pandas and the project's own statistics (:mod:`sslbench.analysis.claims.stats`, no scipy) only: never torch.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from sslbench.analysis.accuracy import ACCURACY_KEYS, DEVICE_MODEL, device_model, latest_per_run, run_variants
from sslbench.analysis.claims import stats

#: the regularizers (or variant labels) every variant is compared with where they ran (``analyze --baselines``):
#: each variant of them in a setting is a baseline there (Barlow Twins at two lambd values: two baselines)
DEFAULT_BASELINES = ("barlow_twins", "vicreg")
#: (metric, label, margin in points): the margins of ``sslbench report``'s accuracy rules (ACC_MARGIN, KNN_MARGIN of
#: :mod:`sslbench.analysis.claims.common`, which imports this package: tests/test_versus.py keeps them equal)
METRICS = (("linear_top1", "linear", 1.0), ("knn_top1", "kNN", 2.0))
#: the columns of a setting: the accuracy table's keys but the regularizer, and the device's model
SETTING_KEYS = tuple(k for k in ACCURACY_KEYS if k != "regularizer") + (DEVICE_MODEL,)
COLUMNS = (*SETTING_KEYS, "variant", "baseline", "metric", "seeds", "mean", "baseline_mean", "delta", "ci95",
           "margin", "tost_p", "verdict")


def verdict(c: stats.Comparison, margin: float) -> tuple[str, float]:
    """(the verdict of a comparison within ±``margin``, the TOST p-value): see the module docstring."""
    if not c.has_interval:
        return "inconclusive: 2 seeds per arm at least (no spread with one)", math.nan
    p = stats.tost(c, margin)
    if p < stats.ALPHA:
        side = ", higher" if c.lo > 0 else ", lower" if c.hi < 0 else ""
        return f"comparable (within ±{margin:g}{side})", p
    if c.lo > margin:
        return f"better (beyond +{margin:g})", p
    if c.hi < -margin:
        return f"worse (beyond -{margin:g})", p
    n = stats.seeds_to_settle_equivalence(c, margin)
    if n is None:
        return (f"inconclusive: more than {stats.MAX_SEEDS} seeds per arm at the observed spread (Δ sits on the "
                "margin)"), p
    return f"inconclusive: ~{max(n, min(c.n_test, c.n_ref) + 1)} seeds per arm would settle it", p


def _numbers(runs: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as floats (NaN for a non-number, all NaN when absent)."""
    if name not in runs.columns:
        return np.full(len(runs), np.nan)
    return pd.to_numeric(runs[name], errors="coerce").to_numpy(float)


def versus_table(df: pd.DataFrame, baselines: Sequence[str] = DEFAULT_BASELINES) -> pd.DataFrame:
    """The table of the module docstring: one row per (setting, variant, baseline, metric) where the baseline
    variant ran in the setting, over the runs that finished (status ok) with a finite value of the metric."""
    empty = pd.DataFrame(columns=list(COLUMNS))
    if df is None or df.empty or "kind" not in df.columns:
        return empty
    runs = latest_per_run(df.loc[(df["kind"] == "train").to_numpy(dtype=bool, na_value=False)])
    runs = runs.loc[(runs["status"] == "ok").to_numpy(dtype=bool, na_value=False)]
    if runs.empty:
        return empty
    runs = runs.copy()
    runs["variant"] = run_variants(runs)
    runs[DEVICE_MODEL] = device_model(runs)
    keys = []
    for k in SETTING_KEYS:
        col = next((c for c in (k, f"case.{k}", f"env.{k}") if c in runs.columns), None)
        if col is not None:
            runs[f"_k_{k}"] = runs[col]
            keys.append(k)
    values = {m: _numbers(runs, f"metrics.{m}") for m, _, _ in METRICS}
    inits = {m: _numbers(runs, f"metrics.init_{m}") for m, _, _ in METRICS}
    runs["_pos"] = np.arange(len(runs))
    reg = next((c for c in ("regularizer", "case.regularizer") if c in runs.columns), None)
    runs["_reg"] = runs[reg].astype(str) if reg else ""
    wanted = set(baselines)
    rows = []
    for setting, g in runs.groupby([f"_k_{k}" for k in keys], dropna=False, sort=True):
        setting = setting if isinstance(setting, tuple) else (setting,)
        arms, present = {}, []
        for v, a in g.groupby("variant", sort=True):
            arms[v] = a["_pos"].to_numpy()
            # a baseline names a variant (its label) or a regularizer (each of its variants in the setting)
            if v in wanted or str(a["_reg"].iloc[0]) in wanted:
                present.append(v)
        for variant, pos in arms.items():
            # a baseline against the baselines after it only (one direction of each pair)
            for base in present[present.index(variant) + 1:] if variant in present else present:
                for m, label, margin in METRICS:
                    test, ref = values[m][pos], values[m][arms[base]]
                    test, ref = test[np.isfinite(test)], ref[np.isfinite(ref)]
                    if not (test.size and ref.size):
                        continue
                    c = stats.welch(test.tolist(), ref.tolist())
                    text, p = verdict(c, margin)
                    floor = inits[m][np.concatenate([pos, arms[base]])]
                    floor = floor[np.isfinite(floor)]
                    if floor.size and max(test.mean(), ref.mean()) < floor.mean():
                        text += f"; both below the network at initialisation ({floor.mean():.2f})"
                    rows.append({**dict(zip(keys, setting)), "variant": variant, "baseline": base, "metric": label,
                                 "seeds": f"{test.size}/{ref.size}", "mean": float(test.mean()),
                                 "baseline_mean": float(ref.mean()), "delta": c.diff,
                                 "ci95": f"[{c.lo:+.2f}, {c.hi:+.2f}]" if c.has_interval else "",
                                 "margin": margin, "tost_p": p, "verdict": text})
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=[c for c in COLUMNS if c in keys or c not in SETTING_KEYS])
