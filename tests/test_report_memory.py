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


# ---- sslbench report's load: the metrics it reads, and the others only where they hold a non-number -------------
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import scale  # noqa: E402
from sslbench import analysis as A  # noqa: E402
from sslbench.analysis import report  # noqa: E402

UNREAD = "metrics.planted_unread"  # a metric no rule reads


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> Path:
    """A store varied from the committed records (its exact checks included), with an unread metric holding a string
    in some records (they must still be screened out), a bool in one file only (an object column), a read metric
    holding a string, NaN flags and a bad line."""
    root = tmp_path_factory.mktemp("varied")
    pool = scale.committed_records(ROOT / "results")
    assert any(r.get("kind") == report.CHECK_KIND for r in pool), "the exact checks' records are part of the data"
    scale.make_store(pool, 3000, root, seed=11)
    files = sorted((root / "sweeps").glob("*.jsonl"))
    for n, store in enumerate(files):
        out = []
        for i, line in enumerate(store.read_text().splitlines()):
            r = json.loads(line)
            m = r.setdefault("metrics", {})
            if not isinstance(m, dict):
                out.append(line)
                continue
            m["planted_unread"] = 0.5 * i  # a number everywhere but in the records below
            if n == 0 and i % 97 == 5:
                m["planted_unread"] = "fast"
            if n == 1 and i % 50 == 3:
                m["planted_flag"] = True
            if n == 1 and i % 61 == 7 and r.get("kind") == "train":
                m["linear_top1"] = "n/a"
            if n == 2 and i % 40 == 1:
                m["planted_nan"] = None
            out.append(json.dumps(r))
        if n == 0:
            out.insert(10, "{not json")
        store.write_text("\n".join(out) + "\n")
    return root


def _verdicts(root: Path, **load) -> tuple[str, list[str], pd.DataFrame]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        df = A.load_results(root, asv=[], **load)
        text = report.format_verdicts(report.verdicts(df), "text")
    return text, [str(w.message) for w in caught], df


@pytest.mark.parametrize("cache", ["snapshots", "off"])
def test_report_load_gives_the_verdicts_and_warnings_of_every_metric(varied, tmp_path, monkeypatch, cache):
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache") if cache == "snapshots" else "off")
    ref_text, ref_warned, whole = _verdicts(varied, columns=report.REPORT_COLUMNS)
    for _ in range(2):  # the first read writes the snapshots, the second reads them
        text, warned, narrow = _verdicts(varied, columns=report.REPORT_COLUMNS + report.REPORT_METRICS,
                                         unless_numbers=("metrics.",))
        assert text == ref_text
        assert warned == ref_warned
    assert any("metrics.planted_unread = 'fast'" in w for w in warned)  # the unread metric's string was screened for
    gone = set(whole.columns) - set(narrow.columns)
    assert gone and all(c.startswith("metrics.") and c not in report.REPORT_METRICS for c in gone)
    assert all(whole[c].dtype.kind in "fi" for c in gone)  # numbers only were left out
    assert {UNREAD, "metrics.planted_flag"} <= set(narrow.columns)  # a string, bools in one file: kept
    assert set(narrow.columns) - set(whole.columns) == set()
    assert narrow.index.equals(whole.index)
    pd.testing.assert_frame_equal(narrow, whole[list(narrow.columns)])


def test_report_load_on_the_committed_results(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    ref_text, ref_warned, _ = _verdicts(ROOT / "results", columns=report.REPORT_COLUMNS)
    text, warned, _ = _verdicts(ROOT / "results", columns=report.REPORT_COLUMNS + report.REPORT_METRICS,
                                unless_numbers=("metrics.",))
    assert (text, warned) == (ref_text, ref_warned)
    assert "supported" in text  # the committed results decide claims: the comparison is not of empty reports


def test_rows_are_the_rows_of_loc():
    """``_Rows`` (the run table's columns taken one at a time) gives what ``df.loc[mask, names]`` gave."""
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({"kind": rng.choice(["train", "regularizer_bench", None], n),
                       "case.dim": rng.choice([64.0, np.nan, 128.0], n),
                       "case.optimizer": pd.Series(rng.choice(["adamw", "sgd", None], n), dtype="str"),
                       "metrics.linear_top1": rng.random(n),
                       "created": pd.to_datetime(rng.integers(0, 10**9, n), unit="s", utc=True)},
                      index=pd.Index(rng.permutation(n) * 3 + 7))
    names = ["case.dim", "case.optimizer", "metrics.linear_top1", "created", "case.absent"]
    mask = (df["kind"] == "train").to_numpy(dtype=bool, na_value=False)
    ref = df.loc[mask, [c for c in names if c in df.columns]]
    rows = C._Rows(df, np.flatnonzero(mask), names)
    assert rows.index.equals(ref.index) and len(rows) == len(ref) and rows.empty is False
    for name in names[:-1]:
        pd.testing.assert_series_equal(rows.get(name), ref.get(name))
        pd.testing.assert_series_equal(rows[name], ref[name])
    assert rows.get("case.absent") is None and rows.get("case.absent", 5) == 5
    with pytest.raises(KeyError):
        rows["case.absent"]
    assert C._Rows(df, np.flatnonzero(np.zeros(n, bool)), names).empty


@pytest.mark.parametrize("cache", ["snapshots", "off"])
def test_unless_numbers_leaves_out_exactly_the_unnamed_columns_of_numbers(tmp_path, monkeypatch, cache):
    """``load_results(unless_numbers=...)`` leaves out a column of the section exactly when the whole frame holds it
    as a numpy float or integer column and ``columns`` does not name it; every other column is the whole frame's."""
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache") if cache == "snapshots" else "off")
    root = tmp_path / "results"
    (root / "a").mkdir(parents=True)
    base = {"schema": 1, "kind": "train", "status": "ok", "created": "2026-12-05T00:00:00+00:00",
            "case": {"regularizer": "vicreg", "dim": 64}, "env": {}}
    stores = {  # per file, the metrics of its records
        "a/one.jsonl": [{"floats": 0.5 * i, "ints": i, "named": 1.0, "flag": True, "text": 1.0, "nulls": None}
                        for i in range(30)],
        "a/two.jsonl": [{"floats": 1.5, "named": 2.0, "text": "x" if i == 3 else 2.0, "nulls": None,
                         "nanflag": math.nan if i % 2 else 1.0, "late_int": 7} for i in range(30)],
        "three.jsonl": [{"floats": -0.0, "ints": 5, "nanflag": 3.0} for i in range(10)],
    }
    for name, metrics in stores.items():
        with open(root / name, "w") as f:
            for i, m in enumerate(metrics):
                f.write(json.dumps({**base, "id": f"{name}-{i}", "metrics": m}) + "\n")
    for _ in range(2):  # cold (the snapshots written), then warm (read from them)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            whole = A.load_results(root, asv=[], columns=("case.", "metrics."))
            narrow = A.load_results(root, asv=[], columns=("case.", "metrics.", "metrics.named"),
                                    unless_numbers=("metrics.",))
        numbers = {c for c in whole.columns if c.startswith("metrics.") and isinstance(whole[c].dtype, np.dtype)
                   and whole[c].dtype.kind in "fi"}
        assert set(whole.columns) - set(narrow.columns) == numbers - {"metrics.named"}
        assert {"metrics.floats", "metrics.ints", "metrics.late_int"} <= numbers  # the case is exercised
        assert {"metrics.named", "metrics.flag", "metrics.text", "metrics.nulls"} <= set(narrow.columns)
        pd.testing.assert_frame_equal(narrow, whole[list(narrow.columns)])
