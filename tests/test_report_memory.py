"""The report's memory-saving paths (issue 21, 2 GiB at 10^6 records) give exactly what the former definitions gave:
``_texts`` is ``[str(v) for v in values]``, ``_as_objects`` is ``col.astype(object)`` (same values, same types, the
same missing value), on varied data: NaNs of both signs, -0.0 and 0.0, 1, 1.0 and True, None, unhashable cells."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from sslbench.analysis.claims import common as C


def _varied(n: int, seed: int) -> list:
    rng = random.Random(seed)
    pool = [0.0, -0.0, 1, 1.0, True, False, 0, None, math.nan, -math.nan, float("inf"), -float("inf"), np.float64(2.5),
            np.float64("nan"), "1", "1.0", "nan", "None", "", "é", 256, 256.0, 1e300, 1e-300, [1, 2], {"a": 1},
            (1, 2), pd.NA, pd.Timestamp("2026-01-01", tz="UTC")]
    return [rng.choice(pool) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_texts_are_the_str_of_every_cell(seed):
    values = _varied(2000, seed)
    assert C._texts(values) == [str(v) for v in values]


def test_texts_share_one_string_per_value():
    got = C._texts([float(i % 3) for i in range(100)])
    assert len({id(t) for t in got}) == 3


@pytest.mark.parametrize("dtype", ["str", "string", pd.StringDtype("pyarrow"), pd.StringDtype("python")])
def test_as_objects_is_astype_object(dtype):
    rng = random.Random(1)
    texts = [rng.choice(["a", "b", "", "é", None, "nan", "None"]) for _ in range(500)]
    col = pd.Series(texts, dtype=dtype, index=pd.RangeIndex(3, 503), name="x")
    got, ref = C._as_objects(col), col.astype(object)
    pd.testing.assert_series_equal(got, ref)
    assert [type(v) for v in got] == [type(v) for v in ref]
    for v, r in zip(got, ref):  # the same missing object (nan or pd.NA), else the same text
        assert v is r if pd.isna(r) else v == r
    assert pd.isna(got).tolist() == pd.isna(ref).tolist()


def test_as_objects_of_an_empty_or_all_missing_column():
    for texts in ([], [None, None]):
        col = pd.Series(texts, dtype="str")
        pd.testing.assert_series_equal(C._as_objects(col), col.astype(object))
