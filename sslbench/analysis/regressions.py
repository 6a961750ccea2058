"""asv regressions: each benchmark against the previous commit measured, with asv's confidence-interval rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sslbench.analysis.common import column, fmt_number


def _higher_is_better(unit: Any, benchmark: Any) -> bool:
    return unit == "%" or (isinstance(benchmark, str) and any(w in benchmark for w in ("accuracy", "top1")))


def regressions(df: pd.DataFrame, threshold: float = 1.2) -> pd.DataFrame:
    """Each asv benchmark (one parameter combination on one machine and environment) across commits, in commit
    order (asv's commit date, then the order of the files): ``ratio`` = value / value at the previous commit
    measured; ``change`` is ``"regression"`` when it got worse by more than ``threshold`` (×; for a figure where
    lower is better, ratio > threshold; for an accuracy (unit ``%``), ratio < 1/threshold), ``"improvement"``
    in the other direction, else ``""``. When both measurements carry asv's 99 % confidence intervals
    (``ci_99_a``, ``ci_99_b``), a change also needs the intervals not to overlap (``significant``), the rule asv
    itself applies without raw samples: on a noisy machine a ratio beyond the threshold inside overlapping
    intervals is not called a change. Takes the frame of :func:`load_results` (its ``kind == "asv"`` rows);
    returns one row per measurement with ``series`` (benchmark and parameters), ``benchmark``, ``params``,
    ``machine``, ``commit``, ``created``, ``value``, ``unit``, ``prev_commit``, ``prev_value``, ``ratio``,
    ``change``."""
    if threshold <= 1:
        raise ValueError(f"threshold={threshold} must be > 1 (a factor, e.g. 1.2 for 20 %)")
    cols = ["series", "benchmark", "params", "machine", "asv_env", "commit", "created", "value", "unit",
            "prev_commit", "prev_value", "ratio", "significant", "change"]
    if df.empty or "kind" not in df.columns:
        return pd.DataFrame(columns=cols)
    asv = df[(df["kind"] == "asv") & (df["status"] == "ok")].copy()
    if asv.empty:
        return pd.DataFrame(columns=cols)
    param_cols = sorted(c for c in asv.columns if c.startswith("case.") and c not in ("case.benchmark", "case.commit")
                        and asv[c].notna().any())
    asv["benchmark"] = asv["case.benchmark"]
    asv["params"] = [", ".join(f"{c[5:]}={fmt_number(row[c])}" for c in param_cols if pd.notna(row[c]))
                     for _, row in asv[param_cols].iterrows()] if param_cols else ""
    asv["series"] = [f"{b} ({p})" if p else str(b) for b, p in zip(asv["benchmark"], asv["params"])]
    asv["machine"] = column(asv, "env.machine")
    asv["asv_env"] = column(asv, "env.asv_env")
    asv["commit"] = column(asv, "case.commit")
    asv["value"] = pd.to_numeric(asv["metrics.value"], errors="coerce")
    asv["unit"] = column(asv, "metrics.unit")
    asv["_lo"] = pd.to_numeric(column(asv, "metrics.ci_99_a"), errors="coerce")
    asv["_hi"] = pd.to_numeric(column(asv, "metrics.ci_99_b"), errors="coerce")
    asv["_order"] = np.arange(len(asv))
    asv = asv.sort_values(["created", "_order"], na_position="last", kind="stable")
    out = []
    for _, g in asv.groupby(["series", "machine", "asv_env"], dropna=False, sort=True):
        g = g.copy()
        g["prev_commit"] = g["commit"].shift(1)
        g["prev_value"] = g["value"].shift(1)
        g["ratio"] = g["value"] / g["prev_value"]
        lo_prev, hi_prev = g["_lo"].shift(1), g["_hi"].shift(1)
        have_ci = g[["_lo", "_hi"]].notna().all(axis=1) & lo_prev.notna() & hi_prev.notna()
        apart = (g["_lo"] > hi_prev) | (g["_hi"] < lo_prev)
        g["significant"] = np.where(have_ci, apart, True)
        g.loc[g["prev_value"].isna(), "significant"] = False
        up = (g["ratio"] > threshold) & g["significant"]
        down = (g["ratio"] < 1 / threshold) & g["significant"]
        higher = [_higher_is_better(u, b) for u, b in zip(g["unit"], g["benchmark"])]
        worse = np.where(higher, down, up)
        better = np.where(higher, up, down)
        g["change"] = np.where(worse, "regression", np.where(better, "improvement", ""))
        out.append(g[cols])
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)
