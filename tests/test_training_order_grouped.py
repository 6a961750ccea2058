"""views.training_by groups the finished runs once (issue 21 item 3: the scale benchmark measured
accuracy.training_order at alpha 1.48, a mask over every run for each value of a per-file column): its order and
medians equal those of the former per-value definition, kept below as the reference."""

import math
import random

import numpy as np
import pandas as pd
import pytest

from sslbench.analysis import views as V


def reference_training_by(runs: pd.DataFrame, by: str) -> pd.Series:
    if runs.empty or by not in runs.columns:
        return pd.Series(dtype=float)
    seen = runs["samples_seen"] if "samples_seen" in runs.columns else V.samples_seen(runs)
    finished = (runs["status"] == "ok") & seen.notna() if "status" in runs.columns else seen.notna()
    stats = []
    for value in V.choices(runs[by]):
        ok = seen[(runs[by] == value) & finished]
        stats.append((float(ok.median()) if len(ok) else -math.inf, len(ok), value))
    stats.sort(key=lambda t: (t[0], t[1], V._sortable(t[2])), reverse=True)
    return pd.Series([m if m > -math.inf else math.nan for m, _, _ in stats], index=[v for _, _, v in stats],
                     dtype=float)


@pytest.mark.parametrize("seed", range(5))
def test_training_by_equals_the_per_value_definition(seed):
    rng = random.Random(seed)
    n = rng.choice([0, 1, 30, 400])
    values = rng.choice([["a", "b", "c", None], [1, 1.0, 2, float("nan")], ["x"], [f"night-{i}" for i in range(40)]])
    runs = pd.DataFrame({
        "study": [rng.choice(values) for _ in range(n)],
        "status": [rng.choice(["ok", "ok", "diverged"]) for _ in range(n)],
        "metrics.steps": [rng.choice([100, 200, np.nan, -1]) for _ in range(n)],
        "case.batch": [rng.choice([64, 128]) for _ in range(n)],
    })
    if seed == 4:
        runs = runs.drop(columns="status")
    got, want = V.training_by(runs, "study"), reference_training_by(runs, "study")
    pd.testing.assert_series_equal(got, want)
    assert V.training_order(runs, "study") == list(want.index)
