"""load._derive labels each distinct setting once: the same labels as the per-row definition, on values that are
equal as keys but not as labels (1, 1.0, True), NaN and None, and values that cannot be keys."""

import itertools

import numpy as np
import pandas as pd

from sslbench.analysis import load


def _per_row(k, c, r, a, bench, name, hp):  # the definition, as it was written per row
    if isinstance(c, str):
        label = c
    elif isinstance(r, str):
        label = f"{r}[{a}]" if isinstance(a, str) and a else r
    else:
        label = bench if k == "asv" else (name or k)
    if hp:
        label = f"{label} {hp}"
    return label


def test_labels_are_the_per_row_definition():
    values = {"kind": ["asv", "regularizer_bench", "train"], "case.contender": [None, np.nan, "official_vicreg"],
              "case.regularizer": [None, "vicreg", 1], "case.algorithm": [None, "gram", ""],
              "case.benchmark": [None, 1, 1.0, True, np.nan, "bench.time_x"],
              "case.name": [None, 1, 1.0, True, 0, np.nan, "", "named", ["a", "list"]]}
    rows = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    df = pd.DataFrame(rows * 2, dtype=object)  # each setting twice: the second comes from the memo
    out = load._derive(df.copy())
    reg, algo = out["regularizer"].tolist(), out["algorithm"].tolist()
    expected = [_per_row(r["kind"], r["case.contender"], reg[i], algo[i], r["case.benchmark"], r["case.name"], None)
                for i, r in enumerate(rows * 2)]
    got = out["label"].tolist()
    assert len(got) == len(expected) > 1000
    for g, e in zip(got, expected):
        assert type(g) is type(e) and (g == e or (g != g and e != e)), (g, e)
