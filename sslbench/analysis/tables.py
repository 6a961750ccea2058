"""The summary tables of ``sslbench analyze`` (:func:`summary`) and their formatting as text, Markdown or CSV."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from sslbench.analysis.accuracy import ACCURACY_METRICS, accuracy_table
from sslbench.analysis.common import fmt_number
from sslbench.analysis.regressions import regressions
from sslbench.analysis.scaling import crossover_table, scaling_table
from sslbench.analysis.versus import DEFAULT_BASELINES, versus_table
from sslbench.records.text import markdown_cell, one_line, terminal


def inventory(df: pd.DataFrame) -> pd.DataFrame:
    """How many records of each source type, kind, device and status."""
    if df.empty:
        return pd.DataFrame(columns=["source_type", "kind", "device_name", "status", "records"])
    keys = ["source_type", "kind", "device_name", "status"]
    return (df.groupby(keys, dropna=False, sort=True).size().rename("records").reset_index())


def summary(df: pd.DataFrame, *, threshold: float = 1.2, min_points: int = 3, dim_min: float | None = None,
            tables: Iterable[str] | None = None, baselines: Iterable[str] = DEFAULT_BASELINES) -> dict[str, pd.DataFrame]:
    """The tables of ``sslbench analyze``: ``inventory``, ``scaling_dim`` (exponents in D), ``scaling_batch``
    (in N), ``crossovers`` (in D, time and memory), ``accuracy``, ``regressions`` (asv changes beyond
    ``threshold`` only) and, when ``tables`` names it, ``versus`` (each variant against ``baselines`` at the same
    setting: :mod:`sslbench.analysis.versus`). ``dim_min``: fit the exponents in D over D >= dim_min only.
    ``tables``: the tables to make (default :data:`DEFAULT_TABLES`)."""
    names = list(tables) if tables is not None else list(DEFAULT_TABLES)
    unknown = [t for t in names if t not in SUMMARY_TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {', '.join(SUMMARY_TABLES)}")
    out: dict[str, pd.DataFrame] = {}
    for name in names:
        if name == "inventory":
            out[name] = inventory(df)
        elif name == "scaling_dim":
            out[name] = scaling_table(df, x="dim", min_points=min_points, x_min=dim_min)
        elif name == "scaling_batch":
            out[name] = scaling_table(df, x="batch", min_points=min_points)
        elif name == "crossovers":
            t = crossover_table(df, x="dim", y="time_s").assign(metric="time_s")
            m = crossover_table(df, x="dim", y="memory_bytes").assign(metric="memory_bytes")
            both = [f for f in (t, m) if not f.empty]
            out[name] = pd.concat(both, ignore_index=True) if both else t
        elif name == "accuracy":
            out[name] = accuracy_table(df)
        elif name == "versus":
            out[name] = versus_table(df, tuple(baselines))
        elif name == "regressions":
            r = regressions(df, threshold=threshold)
            r = r[r["change"] != ""].reset_index(drop=True)
            r = r.assign(prev_commit=r["prev_commit"].astype(str).str[:10], commit=r["commit"].astype(str).str[:10])
            out[name] = r[["benchmark", "params", "machine", "prev_commit", "commit", "prev_value", "value", "unit",
                           "ratio", "change"]]
    return out


SUMMARY_TABLES = ("inventory", "scaling_dim", "scaling_batch", "crossovers", "accuracy", "versus", "regressions")
#: the tables made when none are named: all but ``versus``, whose cost grows with the comparisons (a millisecond
#: each: :mod:`sslbench.analysis.versus`), so that ``sslbench analyze`` of 10^6 records stays within seconds
DEFAULT_TABLES = tuple(t for t in SUMMARY_TABLES if t != "versus")

#: the flattened columns :func:`summary` reads besides the base and derived ones of ``load_results``: the case (the
#: accuracy keys and variants, asv's parameters), the models that name a device, asv's environment and the metrics of
#: the accuracy table and of asv. ``load_results(root, columns=SUMMARY_COLUMNS)`` gives the same tables without
#: holding the store's other columns (tests/test_analysis_columns.py)
SUMMARY_COLUMNS = ("case.", "env.device_name", "env.cpu_model", "env.machine", "env.asv_env", "metrics.value",
                   "metrics.unit", "metrics.ci_99_a", "metrics.ci_99_b",
                   *(f"metrics.{m}" for m in ACCURACY_METRICS))


def _column_cells(col: pd.Series) -> list[str]:
    """The cells of one column: dates to the minute; a float column as integers when all its values are whole,
    else with 3 decimals (4 significant digits below 0.01); NaN/None as empty."""
    values = list(col)
    floats = [v for v in values if isinstance(v, (float, np.floating)) and not math.isnan(v)]
    whole = all(abs(v) < 1e15 and float(v).is_integer() for v in floats)

    def cell(v: Any) -> str:
        if isinstance(v, pd.Timestamp):
            return v.strftime("%Y-%m-%d %H:%M")
        try:
            if pd.isna(v):
                return ""
        except (TypeError, ValueError):
            pass
        if isinstance(v, (float, np.floating)) and not isinstance(v, bool):
            if whole:
                return str(int(v))
            return f"{v:.3f}" if abs(v) >= 0.01 or v == 0 else f"{v:.3g}"
        return fmt_number(v)

    return [cell(v) for v in values]


def format_table(df: pd.DataFrame, fmt: str = "text") -> str:
    """``df`` as ``text`` (aligned columns), ``markdown`` (a GitHub table) or ``csv``; the cells are made safe for
    where they are shown (:mod:`sslbench.records.text`: no terminal escapes, one line; HTML escaped in Markdown)."""
    if fmt == "csv":
        return terminal(df.to_csv(index=False).rstrip("\n"))
    if fmt not in ("text", "markdown"):
        raise ValueError(f"fmt={fmt!r}: choose text, markdown or csv")
    # the cells hold strings from the store: one line each, no escape sequences; Markdown also escapes HTML and |
    safe = markdown_cell if fmt == "markdown" else one_line
    header = [safe(c) for c in df.columns]
    columns = [[safe(v) for v in _column_cells(df[c])] for c in df.columns]
    body = [list(row) for row in zip(*columns)] if columns else []
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    if fmt == "markdown":
        esc = body
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in esc]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body])
