"""Scaling exponents (log-log least squares per series) and crossovers of two series."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from sslbench.analysis.common import fmt_number
from sslbench.analysis.load import SCALING_KINDS


@dataclass(frozen=True)
class PowerLaw:
    """``y = prefactor * x ** exponent``, fitted by least squares on log-log axes."""

    exponent: float
    prefactor: float
    r2: float
    n: int

    def __call__(self, x):
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent


def fit_power_law(x: Sequence[float], y: Sequence[float], min_points: int = 3) -> PowerLaw:
    """Least squares of ``log y = log c + alpha log x`` over the points with finite positive x and y.

    Needs ``min_points`` distinct x values (at least 2); with fewer, exponent, prefactor and R² are NaN (``n``
    says how many points there were). R² is that of the log-log fit.
    """
    if min_points < 2:
        raise ValueError(f"min_points={min_points} must be at least 2 (a line needs two distinct x)")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if np.unique(x).size < min_points:
        return PowerLaw(math.nan, math.nan, math.nan, n)
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    ss_res = float(resid @ resid)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else math.nan)
    return PowerLaw(float(slope), float(math.exp(intercept)), float(r2), n)


def ok_points(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    for name in (x, y):
        if name not in df.columns:
            raise KeyError(f"column {name!r} is not in the frame; columns: {', '.join(map(str, df.columns))}")
    out = df[df["status"] == "ok"] if "status" in df.columns else df
    xs = pd.to_numeric(out[x], errors="coerce")
    ys = pd.to_numeric(out[y], errors="coerce")
    return out[(xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)]


def fit_scaling(df: pd.DataFrame, x: str = "dim", y: str = "time_s",
                by: Sequence[str] = ("kind", "device_name", "label", "batch", "views"),
                min_points: int = 3, x_min: float | None = None, x_max: float | None = None) -> pd.DataFrame:
    """The power law ``y ∝ x^alpha`` of each group of ``by``, fitted on log-log axes.

    Uses the rows with ``status == "ok"`` and finite positive ``x`` and ``y`` (and ``x_min <= x <= x_max`` when
    given, to fit the asymptotic regime only). A group needs ``min_points`` distinct x values; with fewer its
    ``exponent``, ``prefactor`` and ``r2`` are NaN. Returns one row per group: the ``by`` columns, ``x``,
    ``y``, ``exponent``, ``prefactor``, ``r2``, ``n`` (points used), ``x_min``, ``x_max``. Groups whose
    rows have no ok point are left out.
    """
    by = list(by)
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise KeyError(f"group column(s) {missing} not in the frame; columns: {', '.join(map(str, df.columns))}")
    if x in df.columns and y in df.columns:  # the columns read here only: each group's rows are taken once
        df = df[list(dict.fromkeys([*by, x, y, *(["status"] if "status" in df.columns else [])]))]
    pts = ok_points(df, x, y)
    if x_min is not None:
        pts = pts[pd.to_numeric(pts[x]) >= x_min]
    if x_max is not None:
        pts = pts[pd.to_numeric(pts[x]) <= x_max]
    cols = by + ["x", "y", "exponent", "prefactor", "r2", "n", "x_min", "x_max"]
    rows = []
    if pts.empty:
        return pd.DataFrame(columns=cols)
    # x and y as arrays once, each group's rows by position (its rows in the frame's order, as iterating the
    # groupby gives them), not a frame per group (issue 21: a large store has thousands of series)
    all_x, all_y = pd.to_numeric(pts[x]).to_numpy(float), pd.to_numeric(pts[y]).to_numpy(float)
    if by:
        gb = pts.groupby(by, dropna=False, sort=True)
        keys = gb.size().index.tolist()  # the groups in the order iterating gb visits them (ngroup's numbers)
        ids = gb.ngroup().to_numpy()
        order = np.argsort(ids, kind="stable")
        parts = np.split(order, np.cumsum(np.bincount(ids, minlength=len(keys)))[:-1])
    else:
        keys, parts = [()], [np.arange(len(pts))]
    for key, at in zip(keys, parts):
        key = key if isinstance(key, tuple) else (key,)
        xs = all_x[at]
        fit = fit_power_law(xs, all_y[at], min_points=min_points)
        rows.append((*key, x, y, fit.exponent, fit.prefactor, fit.r2, fit.n, xs.min(), xs.max()))
    return pd.DataFrame(rows, columns=cols)


OTHER_AXES = {"dim": ("batch", "views"), "batch": ("dim", "views"), "views": ("dim", "batch")}


def scaling_table(df: pd.DataFrame, x: str = "dim", ys: Sequence[str] = ("time_s", "memory_bytes"),
                  kinds: Sequence[str] = SCALING_KINDS, min_points: int = 3,
                  x_min: float | None = None) -> pd.DataFrame:
    """The scaling exponents in ``x`` of each series (kind, device, threads, dtype, label and the two other axes
    fixed, so that timings of different setups are never mixed), one row per series with ``alpha_<y>`` and
    ``r2_<y>`` for each of ``ys``; series with fewer than ``min_points`` distinct x are left out. ``x_min`` fits
    the sizes from there up only (the asymptotic regime, without the fixed overheads of small sizes)."""
    if x not in OTHER_AXES:
        raise ValueError(f"x={x!r}: choose one of {', '.join(OTHER_AXES)}")
    by = ["kind", "device_name", "threads", "dtype", "label", *OTHER_AXES[x]]
    read = [c for c in dict.fromkeys([*by, x, *ys, "status"]) if c in df.columns]  # not the store's other columns
    sub = df.loc[df["kind"].isin(kinds).to_numpy(), read] if "kind" in df.columns else df.iloc[0:0]
    out = None
    for y in ys:
        fits = fit_scaling(sub, x=x, y=y, by=by, min_points=min_points, x_min=x_min)
        fits = fits.rename(columns={"exponent": f"alpha_{y}", "r2": f"r2_{y}", "n": f"n_{y}",
                                    "x_min": f"{x}_min_{y}", "x_max": f"{x}_max_{y}"})
        fits = fits.drop(columns=["x", "y", "prefactor"])
        out = fits if out is None else out.merge(fits, on=by, how="outer")
    if out is None or out.empty:
        return pd.DataFrame(columns=by)
    alpha_cols = [f"alpha_{y}" for y in ys]
    out = out[out[alpha_cols].notna().any(axis=1)]
    n = out[[f"n_{y}" for y in ys]].max(axis=1)
    lo = out[[f"{x}_min_{y}" for y in ys]].min(axis=1)
    hi = out[[f"{x}_max_{y}" for y in ys]].max(axis=1)
    out = out[by + [c for y in ys for c in (f"alpha_{y}", f"r2_{y}")]].assign(
        n=n.astype("Int64"), **{f"{x}_range": [f"{fmt_number(a)}-{fmt_number(b)}" for a, b in zip(lo, hi)]})
    return out.sort_values(by, na_position="last").reset_index(drop=True)


@dataclass(frozen=True)
class Crossover:
    """Where curves ``a`` and ``b`` cross: ``x`` (and the curves' common ``y`` there, log-log interpolated);
    ``lower_before`` is the curve with the lower y just below ``x``, ``lower_after`` the one just above
    (for time or memory: the faster / smaller one), i.e. ``lower_after`` overtakes ``lower_before`` at ``x``."""

    x: float
    y: float
    a: str
    b: str
    lower_before: str
    lower_after: str


def _select(df: pd.DataFrame, which: str | Mapping[str, Any], key: str) -> pd.DataFrame:
    if isinstance(which, Mapping):
        mask = pd.Series(True, index=df.index)
        for col, val in which.items():
            if col not in df.columns:
                raise KeyError(f"column {col!r} is not in the frame")
            mask &= df[col] == val
        return df[mask]
    if key not in df.columns:
        raise KeyError(f"column {key!r} is not in the frame; pass a dict of column filters instead")
    return df[df[key] == which]


def _curve(df: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """log x, log y of the median y at each x."""
    pts = ok_points(df, x, y)
    if pts.empty:
        return np.array([]), np.array([])
    med = pts.assign(_x=pd.to_numeric(pts[x]), _y=pd.to_numeric(pts[y])).groupby("_x")["_y"].median()
    return np.log(med.index.to_numpy(float)), np.log(med.to_numpy(float))


def _curves(pts: pd.DataFrame, setting: list[str], key: str, x: str, y: str) -> dict:
    """{(setting number, label): :func:`_curve` of that label's rows in that setting} of rows already reduced to
    :func:`ok_points`, the setting numbered as ``groupby(setting, dropna=False, sort=True)`` meets them: the median
    y at each x of every curve from one grouping, not one per curve (the same medians: the same values grouped)."""
    if pts.empty:
        return {}
    sid = pts.groupby(setting, dropna=False, sort=True).ngroup()
    med = (pts.assign(_s=sid, _x=pd.to_numeric(pts[x]), _y=pd.to_numeric(pts[y]))
           .groupby(["_s", key, "_x"], sort=True)["_y"].median().reset_index())
    if med.empty:
        return {}
    s_arr, lab = med["_s"].to_numpy(), med[key].to_numpy(dtype=object)
    lx, ly = np.log(med["_x"].to_numpy(float)), np.log(med["_y"].to_numpy(float))
    starts = np.flatnonzero(np.r_[True, (s_arr[1:] != s_arr[:-1]) | (lab[1:] != lab[:-1])])
    ends = np.r_[starts[1:], len(med)]
    return {(int(s_arr[a]), lab[a]): (lx[a:b], ly[a:b]) for a, b in zip(starts, ends)}


def _name(which: str | Mapping[str, Any]) -> str:
    if isinstance(which, Mapping):
        return ",".join(f"{k}={v}" for k, v in which.items())
    return str(which)


def crossovers(df: pd.DataFrame, a: str | Mapping[str, Any], b: str | Mapping[str, Any], x: str = "dim",
               y: str = "time_s", key: str = "label") -> list[Crossover]:
    """Every crossing of curves ``a`` and ``b`` of ``y`` against ``x``, in increasing x.

    ``a`` and ``b`` are values of the column ``key`` (the series' labels by default) or dicts of column filters
    (``{"regularizer": "barlow_twins", "algorithm": "gram"}``); filter ``df`` to one device, batch, ... first.
    Each curve is the median ``y`` at each ``x`` over its ok rows; both are interpolated linearly on log-log
    axes onto the union of their x values within the range they share, and a crossing is a change of sign of
    ``log y_a - log y_b`` (a point where they are equal counts once, when the sign differs on its two sides).
    """
    return _crossings(_curve(_select(df, a, key), x, y), _curve(_select(df, b, key), x, y), _name(a), _name(b))


def _crossings(curve_a: tuple[np.ndarray, np.ndarray], curve_b: tuple[np.ndarray, np.ndarray], na: str,
               nb: str) -> list[Crossover]:
    """:func:`crossovers` of two curves already reduced by :func:`_curve` (log x, log median y)."""
    (lxa, lya), (lxb, lyb) = curve_a, curve_b
    if lxa.size < 2 or lxb.size < 2:
        return []
    lo, hi = max(lxa[0], lxb[0]), min(lxa[-1], lxb[-1])
    if lo >= hi:
        return []
    grid = np.union1d(lxa, lxb)
    grid = grid[(grid >= lo - 1e-12) & (grid <= hi + 1e-12)]
    ya, yb = np.interp(grid, lxa, lya), np.interp(grid, lxb, lyb)
    d = ya - yb
    out = []
    prev = None  # index of the last point with a non-zero difference
    for i in range(len(grid)):
        if d[i] == 0:
            continue
        if prev is not None and np.sign(d[i]) != np.sign(d[prev]):
            if i == prev + 1:
                t = d[prev] / (d[prev] - d[i])
                lx = grid[prev] + t * (grid[i] - grid[prev])
                ly = ya[prev] + t * (ya[i] - ya[prev])
            else:  # equal at the point(s) between: the first of them
                lx, ly = grid[prev + 1], ya[prev + 1]
            before, after = (na, nb) if d[prev] < 0 else (nb, na)
            out.append(Crossover(float(math.exp(lx)), float(math.exp(ly)), na, nb, before, after))
        prev = i
    return out


def crossover(df: pd.DataFrame, a: str | Mapping[str, Any], b: str | Mapping[str, Any], x: str = "dim",
              y: str = "time_s", key: str = "label") -> Crossover | None:
    """The first x where curves ``a`` and ``b`` cross (in either direction; see :func:`crossovers`), or
    ``None`` when one of them is lower (or equal) over the whole range they share, or they share none."""
    found = crossovers(df, a, b, x=x, y=y, key=key)
    return found[0] if found else None


def _lower_throughout(curve_a: tuple[np.ndarray, np.ndarray], curve_b: tuple[np.ndarray, np.ndarray], a: str,
                      b: str) -> tuple[str | None, str]:
    """Which of a and b is lower wherever both were measured (None if neither / no common x) and the x range,
    from their curves (:func:`_curve`)."""
    (lxa, lya), (lxb, lyb) = curve_a, curve_b
    common = np.intersect1d(lxa, lxb)
    if common.size == 0:
        return None, ""
    da = dict(zip(lxa, lya))
    db = dict(zip(lxb, lyb))
    diff = np.array([da[c] - db[c] for c in common])
    span = f"{fmt_number(math.exp(common[0]))}-{fmt_number(math.exp(common[-1]))}"
    if (diff < 0).all():
        return a, span
    if (diff > 0).all():
        return b, span
    return None, span


def crossover_table(df: pd.DataFrame, x: str = "dim", y: str = "time_s", kinds: Sequence[str] = SCALING_KINDS,
                    pairs: Iterable[tuple[str, str]] | None = None, key: str = "label") -> pd.DataFrame:
    """Crossovers between every pair of series of the same regularizer (algorithms, official vs sslbench) in each
    setting (kind, device, threads, dtype and the other two axes fixed), or between the given ``pairs`` of labels.

    Columns: the setting, ``a``, ``b``, ``crossover`` (the x, NaN when none), ``lower_below`` and
    ``lower_above`` (the series lower on each side of the crossing), ``note`` (for no crossing: which one is
    lower throughout and over which x range).

    Each setting's rows are split by label once and each label's curve reduced once (:func:`_curve`), then the
    pairs compare curves: O(rows + pairs x sizes), where selecting both series from the setting's rows for every
    pair was O(rows x pairs)."""
    if x not in OTHER_AXES:
        raise ValueError(f"x={x!r}: choose one of {', '.join(OTHER_AXES)}")
    setting = ["kind", "device_name", "threads", "dtype", *OTHER_AXES[x]]
    cols = setting + ["regularizer", "a", "b", "crossover", "lower_below", "lower_above", "note"]
    read = [c for c in dict.fromkeys([*setting, "regularizer", key, x, y, "status"]) if c in df.columns]
    sub = df.loc[df["kind"].isin(kinds).to_numpy(), read] if "kind" in df.columns else df.iloc[0:0]
    sub = ok_points(sub, x, y) if not sub.empty else sub
    rows = []
    if sub.empty:
        return pd.DataFrame(columns=cols)
    wanted = [tuple(p) for p in pairs] if pairs is not None else None
    curves = _curves(sub, setting, key, x, y)
    empty = (np.array([]), np.array([]))
    for s_id, (skey, g) in enumerate(sub.groupby(setting, dropna=False, sort=True)):
        skey = skey if isinstance(skey, tuple) else (skey,)
        if wanted is not None:
            cand = [(None, a, b) for a, b in wanted if (g[key] == a).any() and (g[key] == b).any()]
        else:
            cand = []
            for reg, gr in g.groupby("regularizer", dropna=True, sort=True):
                labels = sorted(gr[key].dropna().unique())
                cand += [(reg, a, b) for a, b in itertools.combinations(labels, 2)]
        for reg, a, b in cand:
            ca, cb = curves.get((s_id, a), empty), curves.get((s_id, b), empty)
            found = _crossings(ca, cb, str(a), str(b))
            if found:
                for c in found:
                    rows.append((*skey, reg, a, b, c.x, c.lower_before, c.lower_after,
                                 f"{c.lower_after} lower above {x}≈{fmt_number(c.x)}"))
            else:
                lower, span = _lower_throughout(ca, cb, a, b)
                if not span:
                    continue
                note = f"{lower} lower throughout {x}={span}" if lower else f"no crossing in {x}={span}"
                rows.append((*skey, reg, a, b, math.nan, lower, lower, note))
    return pd.DataFrame(rows, columns=cols)
