"""The data behind each dashboard page, Streamlit-free: the choices a filter offers and its default, the series a
chart draws, the pairs of series that cross. ``dashboard/app.py`` lays out widgets and figures around these; the
tests check them without Streamlit.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sslbench.analysis.accuracy import run_variants
from sslbench.analysis.common import column
from sslbench.analysis.load import X_COLUMNS
from sslbench.analysis.scaling import crossover, fit_scaling, ok_points

#: the axes the Accuracy page plots against
ACCURACY_AXES = ("views", "fraction", "dim")
#: the figures of a training run the Accuracy page uses
ACCURACY_FIGURES = ("linear_top1", "knn_top1", "init_linear_top1", "init_knn_top1", "train_time_s", "images_per_s")


# --------------------------------------------------------------------------------------------------------------
# Filters shared by the pages
# --------------------------------------------------------------------------------------------------------------
def choices(series: pd.Series, *, by_count: bool = False) -> list:
    """The distinct non-null values of ``series``: sorted, or most common first (``by_count``)."""
    values = series.dropna()
    if by_count:
        return values.astype(str).value_counts().index.tolist()
    return sorted(values.unique().tolist())


def most_common(series: pd.Series):
    """The most frequent non-null value of ``series`` (None when there is none)."""
    counts = series.dropna().value_counts()
    return counts.index[0] if len(counts) else None


def keep(data: pd.DataFrame, col: str, values) -> pd.DataFrame:
    """The rows whose ``col`` (compared as text) is one of ``values``."""
    return data[data[col].astype(str).isin([str(v) for v in values])]


# --------------------------------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------------------------------
def scaling_axes(data: pd.DataFrame) -> list[str]:
    """The axes (of :data:`X_COLUMNS`) along which ``data`` has at least two sizes; ``["dim"]`` when none has."""
    return [a for a in X_COLUMNS if a in data.columns and data[a].nunique() >= 2] or ["dim"]


def default_fixed(data: pd.DataFrame, other: str, x: str):
    """The value at which to hold the axis ``other`` fixed while plotting against ``x``: the one with the most
    distinct ``x`` measured (a curve, not a lone dot), then the most rows. None when ``other`` has no value."""
    values = choices(data[other])
    if not values:
        return None
    return max(values, key=lambda v: (data.loc[data[other] == v, x].nunique(), (data[other] == v).sum()))


def crossing_pairs(data: pd.DataFrame, x: str, y: str) -> list[tuple[str, str]]:
    """The pairs of series (labels) of the same regularizer, those whose curves of ``y`` against ``x`` cross
    first (each group in label order)."""
    ok = ok_points(data, x, y) if not data.empty else data
    pairs, crossing = [], []
    for _, g in ok.groupby("regularizer", sort=True):
        labels = sorted(g["label"].astype(str).unique())
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                (crossing if crossover(g, a, b, x=x, y=y) is not None else pairs).append((a, b))
    return crossing + pairs


def scaling_series(data: pd.DataFrame, x: str, y: str, by: Sequence[str], *, min_points: int = 3,
                   fit_from: float | None = None) -> tuple[list[dict], pd.DataFrame]:
    """The lines of the Scaling chart and their fits (:func:`fit_scaling` over ``by``).

    One dict per series (the ok points of each group of ``by``): ``key`` (the group), ``x``, ``y`` (median of
    ``y`` at each x), ``n`` (points at each x), ``err_minus``/``err_plus`` (distance of the time quartiles from
    the median, when the records carry them; else None) and ``exponent`` (NaN when too few points to fit)."""
    by = list(by)
    ok = ok_points(data, x, y) if not data.empty else data
    if ok.empty:
        return [], pd.DataFrame()
    fits = fit_scaling(data, x=x, y=y, by=by, min_points=min_points, x_min=fit_from)
    fit_of = {tuple(r[k] for k in by): r["exponent"] for _, r in fits.iterrows()}
    out = []
    for key, g in ok.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        agg = g.groupby(x).agg(y=(y, "median"), n=(y, "size"))
        err_minus = err_plus = None
        if y == "time_s" and {"metrics.time_q25_s", "metrics.time_q75_s"} <= set(g.columns):
            q = g.groupby(x)[["metrics.time_q25_s", "metrics.time_q75_s"]].median()
            err_plus = (q["metrics.time_q75_s"] - agg["y"]).clip(lower=0).tolist()
            err_minus = (agg["y"] - q["metrics.time_q25_s"]).clip(lower=0).tolist()
        out.append({"key": key, "x": agg.index.tolist(), "y": agg["y"].tolist(), "n": agg["n"].tolist(),
                    "err_minus": err_minus, "err_plus": err_plus, "exponent": float(fit_of.get(key, math.nan))})
    return out, fits


def failed_otherwise(data: pd.DataFrame) -> pd.DataFrame:
    """The records that neither finished nor ran out of memory (errors, time-outs, ...): not plotted."""
    return data[~data["status"].isin(["ok", "oom"])]


def oom_points(data: pd.DataFrame, x: str) -> pd.DataFrame:
    """The out-of-memory records with a positive size on ``x``."""
    if "status" not in data.columns or data.empty:
        return data.iloc[0:0]
    oom = data[data["status"] == "oom"]
    return oom[pd.to_numeric(oom[x], errors="coerce") > 0]


def measured_sizes(data: pd.DataFrame, x: str) -> list[float]:
    """The distinct positive sizes on ``x``, sorted."""
    return sorted(set(pd.to_numeric(data[x], errors="coerce").dropna().tolist()) - {0})


# --------------------------------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------------------------------
def accuracy_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The training runs of ``df`` with plain columns for the Accuracy page: ``dataset``, ``fraction`` (numeric),
    ``backbone``, ``epochs``, ``seed`` and the figures of :data:`ACCURACY_FIGURES` (numeric)."""
    runs = df[column(df, "kind") == "train"].copy()
    for k in ("dataset", "fraction", "backbone", "epochs", "seed"):
        runs[k] = column(runs, f"case.{k}")
    for m in ACCURACY_FIGURES:
        runs[m] = pd.to_numeric(column(runs, f"metrics.{m}"), errors="coerce")
    runs["fraction"] = pd.to_numeric(runs["fraction"], errors="coerce")
    return runs


def accuracy_axes(runs: pd.DataFrame) -> list[str]:
    """The axes of :data:`ACCURACY_AXES` to offer: those with two values or more, else those with any."""
    axes = [a for a in ACCURACY_AXES if a in runs.columns and runs[a].notna().any()]
    return [a for a in axes if runs[a].nunique() >= 2] or axes


def default_accuracy_fixed(runs: pd.DataFrame, other: str, x: str):
    """The value at which to hold ``other`` fixed when plotting against ``x``: among the values under which ``x``
    has the most distinct points, all the data for the fraction (the largest) and the most common one for the
    others."""
    values = choices(runs[other])
    if not values:
        return None
    spread = {v: runs.loc[runs[other] == v, x].nunique() for v in values}
    best = [v for v in values if spread[v] == max(spread.values())]
    return max(best) if other == "fraction" else most_common(runs.loc[runs[other].isin(best), other])


def finished_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ok runs that have ``metric``, each with its ``variant`` (:func:`run_variants`): runs of one regularizer
    with other hyper-parameters or settings are separate series, never pooled."""
    ok = runs[(runs["status"] == "ok") & runs[metric].notna()]
    return ok.assign(variant=run_variants(ok))


def init_floor(ok: pd.DataFrame, x: str, metric: str) -> pd.Series:
    """The accuracy of the untrained network (``init_<metric>``) at each ``x``, averaged over runs: the floor."""
    return ok.groupby(x)[f"init_{metric}"].mean().dropna()


def accuracy_series(ok: pd.DataFrame, x: str, metric: str) -> list[dict]:
    """One line per regularizer and variant (:func:`run_variants`: runs with other settings are never pooled):
    ``regularizer``, ``variant``, ``index`` (the variant's rank within its regularizer, for the line style),
    ``x``, ``mean``, ``std`` (0 for one run) and ``runs`` of ``metric`` at each x, seeds pooled."""
    ok = ok.assign(variant=run_variants(ok)) if "variant" not in ok.columns else ok
    out = []
    for (reg, variant), g in ok.groupby(["regularizer", "variant"], sort=True):
        agg = g.groupby(x)[metric].agg(["mean", "std", "size"]).reset_index()
        out.append({"regularizer": reg, "variant": variant,
                    "index": sorted(ok.loc[ok["regularizer"] == reg, "variant"].unique()).index(variant),
                    "x": agg[x].tolist(), "mean": agg["mean"].tolist(), "std": agg["std"].fillna(0).tolist(),
                    "runs": agg["size"].tolist()})
    return out


# --------------------------------------------------------------------------------------------------------------
# Regressions
# --------------------------------------------------------------------------------------------------------------
def commit_order(table: pd.DataFrame) -> list[str]:
    """The commits of a :func:`regressions` table in the order they were measured."""
    return table.sort_values("created", kind="stable").drop_duplicates("commit")["commit"].astype(str).tolist()


def flagged(table: pd.DataFrame, col: str) -> list[str]:
    """The distinct values of ``col`` among the rows of a :func:`regressions` table with a change, sorted."""
    return sorted(table.loc[table["change"] != "", col].astype(str).unique().tolist())


# --------------------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------------------
_NOT_TERMS = {"step", "epoch", "time", "elapsed_s", "images_per_s", "memory_bytes", "peak_memory_bytes", "lr",
              "run_id", "source", "event", "message", "status"}


def runs_latest_first(logs: pd.DataFrame) -> list[str]:
    """The run ids of the per-step logs, the latest started first."""
    run_ids = logs["run_id"].astype(str).unique().tolist()
    if "time" in logs.columns:
        first_seen = logs.groupby("run_id", sort=False)["time"].min()
        run_ids.sort(key=lambda r: -(first_seen.get(r) or 0))
    return run_ids


def loss_terms(steps: pd.DataFrame) -> list[str]:
    """The numeric logged figures of step events that are loss terms: ``loss`` first, then the others sorted."""
    terms = [c for c in steps.columns if c not in _NOT_TERMS and not c.startswith(("case.", "metrics."))
             and pd.api.types.is_numeric_dtype(steps[c]) and steps[c].notna().any()]
    return (["loss"] if "loss" in terms else []) + sorted(t for t in terms if t != "loss")


def run_description(logs: pd.DataFrame, run_id: str, status: str | None = None) -> str:
    """A run in a few words: regularizer, data set, D, V, N, fraction, lr, seed, the id's start and its status
    when not ok."""
    first = logs[logs["run_id"] == run_id].iloc[0]
    bits = [str(first.get("case.regularizer", "?"))]
    for k, short in (("case.dataset", ""), ("case.dim", "D="), ("case.views", "V="), ("case.batch", "N="),
                     ("case.fraction", "frac="), ("case.lr", "lr="), ("case.seed", "seed=")):
        v = first.get(k)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            bits.append(f"{short}{plain_number(v)}")
    return " ".join(bits) + f" [{run_id[:8]}]" + (f" {status}" if status and status != "ok" else "")


def run_statuses(df: pd.DataFrame) -> dict[str, str]:
    """``{run id: status}`` of the training records (a run's id is its record's id)."""
    records = df[column(df, "kind") == "train"]
    return dict(zip(records["id"].astype(str), records["status"].astype(str))) if not records.empty else {}


def plain_number(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)
