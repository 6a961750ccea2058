"""The claims' run tables are split by setting in one pass (issue 21 item 3): claims.common.groups and the views
study's groups equal the former per-key selection (runs[keys == k] for each key, the reference below), NaN
settings included (they are one group, not one per run)."""

import random

import numpy as np
import pandas as pd

from sslbench.analysis.claims import common as C
from sslbench.analysis.claims import views as CV


def _runs(seed: int, n: int = 300) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {k: rng.choice([1.0, 2.0, np.nan]) if k in ("dim", "lr") else 1.0 for k in C.SETTING}
        row.update({"dataset": rng.choice(["cifar10", None]), "device_name": rng.choice(["cpu-a", "gpu-b"]),
                    "views": rng.choice([2, 4, 8]), "fraction": rng.choice([1.0, 0.5]),
                    "regularizer": rng.choice(["vicreg", "barlow_twins"]), "linear_top1": rng.uniform(10, 90),
                    "init_linear_top1": rng.uniform(5, 10), "knn_top1": rng.uniform(10, 90),
                    "init_knn_top1": rng.uniform(5, 10),
                    "ok": True, "seed": rng.randrange(3), "hp": rng.choice([{}, {"lambd": 0.005}, {"lambd": 0.01}])})
        rows.append(row)
    df = pd.DataFrame(rows)
    df.index = rng.sample(range(10 * n), n)
    return df


def test_groups_equal_the_per_key_selection():
    for seed in range(3):
        runs = _runs(seed)
        keys = runs.apply(C.setting_key, axis=1)
        want = [(k, runs[keys == k]) for k in sorted(set(keys), key=str)]
        got = C.groups(runs)
        assert [k for k, _ in got] == [k for k, _ in want] and len(got) > 3
        for (_, g), (_, w) in zip(got, want):
            pd.testing.assert_frame_equal(g, w)


def test_view_groups_are_unchanged_by_the_one_pass_split():
    runs = _runs(7, 400)
    got = CV._view_groups(runs)
    assert got  # settings with V = 2 and another V
    nov = [k for k in C.SETTING if k not in ("views", "fraction")]
    r = runs.assign(_lambd=runs["hp"].map(lambda h: h.get("lambd")))
    keys = r.apply(lambda x: tuple(None if C.isnan(v) else v for v in [x.get(k) for k in nov]
                                   + [x["regularizer"], x["_lambd"]]), axis=1)
    sizes = {}
    for key in sorted(set(keys), key=str):
        g = r[keys == key]
        vs = sorted(set(g["views"].dropna()))
        if 2 in vs and len(vs) >= 2:
            sizes[(key[-2], len(g))] = sizes.get((key[-2], len(g)), 0) + 1
    seen = {}
    for group in got:
        reg, acc = group[0], group[-1]
        acc = acc.get("linear_top1", acc) if all(isinstance(v, dict) for v in acc.values()) else acc
        n = sum(a.n for a in acc.values())
        seen[(reg, n)] = seen.get((reg, n), 0) + 1
    assert seen == sizes
