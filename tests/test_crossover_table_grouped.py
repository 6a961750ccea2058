"""crossover_table reduces each series of a setting once (issue 21 item 3): its rows equal those of the former
per-pair definition, kept below as the reference (for every pair, select both series from the setting's rows and
call crossovers(); without a crossing, which one is lower at every common size)."""

import itertools
import math
import random

import numpy as np
import pandas as pd
import pytest

from sslbench.analysis import scaling as S
from sslbench.analysis.common import fmt_number


def reference_crossover_table(df: pd.DataFrame, x: str = "dim", y: str = "time_s") -> pd.DataFrame:
    setting = ["kind", "device_name", "threads", "dtype", *S.OTHER_AXES[x]]
    cols = setting + ["regularizer", "a", "b", "crossover", "lower_below", "lower_above", "note"]
    sub = S.ok_points(df[df["kind"].isin(S.SCALING_KINDS)], x, y)
    rows = []
    for skey, g in sub.groupby(setting, dropna=False, sort=True):
        for reg, gr in g.groupby("regularizer", dropna=True, sort=True):
            for a, b in itertools.combinations(sorted(gr["label"].dropna().unique()), 2):
                found = S.crossovers(g, a, b, x=x, y=y)
                if found:
                    rows += [(*skey, reg, a, b, c.x, c.lower_before, c.lower_after,
                              f"{c.lower_after} lower above {x}≈{fmt_number(c.x)}") for c in found]
                    continue
                lxa, lya = S._curve(g[g["label"] == a], x, y)
                lxb, lyb = S._curve(g[g["label"] == b], x, y)
                common = np.intersect1d(lxa, lxb)
                if common.size == 0:
                    continue
                diff = np.array([dict(zip(lxa, lya))[c] - dict(zip(lxb, lyb))[c] for c in common])
                span = f"{fmt_number(math.exp(common[0]))}-{fmt_number(math.exp(common[-1]))}"
                lower = a if (diff < 0).all() else b if (diff > 0).all() else None
                note = f"{lower} lower throughout {x}={span}" if lower else f"no crossing in {x}={span}"
                rows.append((*skey, reg, a, b, math.nan, lower, lower, note))
    return pd.DataFrame(rows, columns=cols)


@pytest.mark.parametrize("seed", range(4))
def test_grouped_crossover_table_equals_the_per_pair_definition(seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(400):
        reg = rng.choice(["barlow_twins", "vicreg", "fft_bt"])
        algo = rng.choice(["gram", "direct", "fft"])
        dim = rng.choice([64, 128, 256, 512, 1024, 2048])
        slope = {"gram": 2.0, "direct": 1.0, "fft": 1.3}[algo]
        rows.append({"kind": "regularizer_bench", "status": rng.choice(["ok"] * 9 + ["oom"]),
                     "device_name": rng.choice(["cpu-a", "cpu-b"]), "threads": 2, "dtype": "float32",
                     "batch": rng.choice([128, 256]), "views": 2, "regularizer": reg, "label": f"{reg}[{algo}]",
                     "dim": dim, "time_s": 1e-6 * dim ** slope * rng.uniform(0.8, 1.25) * (300 if algo == "direct" else 1),
                     "memory_bytes": float(dim * 8)})
    df = pd.DataFrame(rows)
    got = S.crossover_table(df)
    want = reference_crossover_table(df)
    assert len(want) > 0 and want["crossover"].notna().any() and want["crossover"].isna().any()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize("seed", range(3))
def test_grouped_crossover_table_with_missing_settings_and_labels(seed):
    """NaN and None in the setting (a device or thread count not recorded) form settings of their own, a run
    without a label is no curve, and x held as objects (ints and floats mixed) gives the same medians."""
    rng = random.Random(100 + seed)
    rows = []
    for _ in range(600):
        reg = rng.choice(["barlow_twins", "vicreg"])
        algo = rng.choice(["gram", "direct"])
        dim = rng.choice([64, 128, 256, 512, 1024])
        rows.append({"kind": rng.choice(["regularizer_bench", "side_by_side"]), "status": "ok",
                     "device_name": rng.choice(["cpu-a", None, float("nan")]),
                     "threads": rng.choice([2, float("nan")]), "dtype": "float32",
                     "batch": rng.choice([128, 256]), "views": 2, "regularizer": reg,
                     "label": None if rng.random() < 0.05 else f"{reg}[{algo}]",
                     "dim": rng.choice([dim, float(dim)]),
                     "time_s": 1e-6 * dim ** (2.0 if algo == "gram" else 1.0) * rng.uniform(0.8, 1.25)
                     * (300 if algo == "direct" else 1), "memory_bytes": float(dim * 8)})
    df = pd.DataFrame(rows).astype({"dim": object})
    for y in ("time_s", "memory_bytes"):
        got, want = S.crossover_table(df, y=y), reference_crossover_table(df, y=y)
        assert len(want) > 0
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False)
