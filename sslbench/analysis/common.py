"""Small helpers every analysis module uses: a column that may be missing, and a number for a table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """``df[name]``, or a column of ``None`` (same index) when the frame has no such column."""
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def fmt_number(v: Any) -> str:
    """A number for a table: integers without decimals, others with 4 significant digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if abs(v) < 1e15 and abs(v - round(v)) <= 1e-9 * max(1.0, abs(v)):
            return str(int(round(v)))
        return f"{v:.4g}"
    return str(v)
