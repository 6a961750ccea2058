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


def _arm_runs(arms, optimizer="adamw", lin=(88.0, 88.3, 88.6)):
    """Training runs (claims.common.train_runs' columns) of (regularizer, lr) arms, one per seed."""
    rows = []
    for reg, lr in arms:
        for seed, acc in enumerate(lin):
            row = {k: 1.0 for k in C.SETTING}
            row.update({"dataset": "fashion_mnist", "device_name": "Intel(R) Xeon(R) Processor", "views": 2,
                        "optimizer": optimizer, "lr": lr, "regularizer": reg, "seed": seed, "linear_top1": acc,
                        "knn_top1": acc - 7, "init_linear_top1": 80.0, "init_knn_top1": 70.0, "ok": True,
                        "status": "ok", "hp": {}, "variance_addon": 0.0, "predictor_hidden": 512.0})
            rows.append(row)
    return pd.DataFrame(rows)


def test_arms_at_their_own_default_lr_are_one_budget():
    """sslbench train gives VICReg 1e-3 and the others 2e-3 under AdamW: one group, keyed "each method's default"
    (the numeric sub-groups it contains are left out); a run at another lr stays apart."""
    runs = _arm_runs([("sfrik", 2e-3), ("uniformity", 2e-3), ("vicreg", 1e-3), ("barlow_twins", 5e-3)])
    got = C.groups(runs)
    i = C.SETTING.index("lr")
    assert sorted(str(k[i]) for k, _ in got) == sorted([C.OWN_DEFAULT_LR, "0.005"])
    by = {str(k[i]): set(g["regularizer"]) for k, g in got}
    assert by[C.OWN_DEFAULT_LR] == {"sfrik", "uniformity", "vicreg"} and by["0.005"] == {"barlow_twins"}
    assert "lr each method's default adamw" in C.setting_text(next(k for k, _ in got if k[i] == C.OWN_DEFAULT_LR))


def test_one_explicit_lr_for_every_arm_stays_one_group():
    """The SGD recipe's arms all ran at lr 0.03, which is VICReg's own default too: one group at 0.03, no extra."""
    runs = _arm_runs([("sfrik", 0.03), ("uniformity", 0.03), ("vicreg", 0.03)], optimizer="sgd")
    got = C.groups(runs)
    assert [k[C.SETTING.index("lr")] for k, _ in got] == [0.03] and len(got[0][1]) == 9


def test_sfrik_row_needs_both_comparators():
    """"comparable to VICReg and to uniformity": without a VICReg arm in the setting, the row is no data, not a
    verdict against uniformity alone."""
    from sslbench.analysis.claims import sfrik as S

    runs = _arm_runs([("sfrik", 2e-3), ("uniformity", 2e-3)])
    from sslbench.analysis.report import STUDIES

    st = STUDIES["sfrik"]
    orig = S.train_runs
    try:
        S.train_runs = lambda df: runs
        rows = S._accuracy(pd.DataFrame({"kind": ["train"]}), st)
        both = _arm_runs([("sfrik", 2e-3), ("uniformity", 2e-3), ("vicreg", 1e-3)])
        S.train_runs = lambda df: both
        rows_both = S._accuracy(pd.DataFrame({"kind": ["train"]}), st)
    finally:
        S.train_runs = orig
    lin = [r for r in rows if "[kNN]" not in r.claim]
    assert [r.verdict for r in lin] == ["no data"] and "vicreg: no run in this setting" in lin[0].figures
    assert [r.verdict for r in rows_both if "[kNN]" not in r.claim] == ["supported"]
