"""load_results converts the stores' snapshots to pandas once (columnar.frames_of_snapshots), not store by store:
the same frame as the definition (each store's frame on its own, then ``pd.concat``), on varied stores: NaN and
None, a column whose type changes between files, text missing from a file, a bad line, an appended tail, a
projection; and the same warnings."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from sslbench.analysis import load
from sslbench.records import columnar

pytest.importorskip("pyarrow")


def _rec(i: int, **over) -> dict:
    rec = {"schema": 1, "kind": "regularizer_bench", "id": f"id{i}", "created": f"2026-11-28T09:22:{i % 60:02d}+00:00",
           "case": {"regularizer": ["vicreg", "barlow_twins"][i % 2], "algorithm": "gram", "dim": 64 * (i % 4 + 1),
                    "hparams": {"a": i % 3}, "device": "cpu"},
           "status": "ok", "metrics": {"time_median_s": 0.001 * (i + 1), "flag": bool(i % 2), "steps": i},
           "env": {"device_name": "cpu", "threads": 2, "git_commit": f"c{i % 5}"}, "message": None,
           "extra": {"regularizer_source": {"distribution": "sslbench", "version": "0.1"}}}
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            if value is _DROP:
                rec[section].pop(name, None)
            else:
                rec[section][name] = value
        elif value is _DROP:
            rec.pop(section, None)
        else:
            rec[section] = value
    return rec


_DROP = object()


def _lines(recs) -> str:
    return "".join(json.dumps(r) + "\n" for r in recs)


def _stores(root):
    """Files whose frames differ in the ways pd.concat resolves: each a store of its own under ``root``."""
    sweeps = root / "sweeps"
    sweeps.mkdir(parents=True)
    files = {
        "a_clean": [_rec(i) for i in range(6)],
        # a number column that is text here; a bool column with a null (object); an int column with a null
        "b_types": [_rec(i, metrics__steps="many" if i == 7 else i, metrics__flag=None if i == 8 else True)
                    for i in range(6, 12)],
        # a text cell with no key (NaN) beside one that is null (None): a NaN flag in the snapshot
        "c_nan": [_rec(i, case__algorithm=_DROP if i % 3 == 0 else (None if i % 3 == 1 else "cross_correlation"),
                       metrics__flag=_DROP if i % 3 == 0 else (None if i % 3 == 1 else True)) for i in range(12, 18)],
        "c_nan2": [_rec(i, metrics__flag=_DROP if i % 3 == 0 else (None if i % 3 == 1 else False))
                   for i in range(50, 54)],  # NaN flags in two snapshots of one type
        "d_missing": [_rec(i, case__device=_DROP, metrics__steps=_DROP, metrics__extra_only=1.5 * i)
                      for i in range(18, 24)],
        "e_bad_line": [_rec(i) for i in range(24, 27)],
        "f_all_null": [_rec(i, message=None, case__algorithm=None, metrics__time_median_s=None) for i in range(27, 30)],
        "g_ints": [_rec(i, metrics__time_median_s=i) for i in range(30, 33)],  # int64 here, double elsewhere
        "h_bools": [_rec(i, metrics__steps=bool(i % 2), message="failed" if i % 2 else None) for i in range(33, 36)],
    }
    for name, recs in files.items():
        text = _lines(recs)
        if name == "e_bad_line":
            text = text.replace("\n", "\nnot json at all\n", 1)
        (sweeps / f"{name}.jsonl").write_text(text)
    return sweeps


def _definition(monkeypatch):
    """load_results as it was defined: each store's frame on its own, then ``pd.concat``."""
    cached = columnar.read_frame_cached
    monkeypatch.setattr(columnar, "read_frame_cached", lambda path, **kw: cached(path, **{**kw, "arrow": False}))


def _load(root, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = load.load_results(root, asv=[], pytest_benchmark=False, **kw)
    return df, sorted(str(x.message) for x in w)


@pytest.mark.parametrize("columns", [None, load.ANALYSIS_COLUMNS, ("case.", "metrics.steps")])
def test_one_conversion_of_the_snapshots_gives_the_frame_of_one_per_store(tmp_path, monkeypatch, columns):
    root = tmp_path / "results"
    sweeps = _stores(root)
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    cold, w_cold = _load(root, columns=columns)  # writes the snapshots
    runs = []
    real = columnar._run_frame
    monkeypatch.setattr(columnar, "_run_frame", lambda run: runs.append(len(run)) or real(run))
    warm, w_warm = _load(root, columns=columns)
    # every store came from its snapshot, converted in one piece, but b_types (a column of mixed types: Parquet
    # cannot hold it, so it has no snapshot and is read from its lines each time, as a frame)
    assert runs == [1, 7]
    with monkeypatch.context() as m:
        _definition(m)
        old, w_old = _load(root, columns=columns)
    pd.testing.assert_frame_equal(warm, old)
    pd.testing.assert_frame_equal(cold, old)
    assert w_warm == w_old == w_cold and any("line 2" in w for w in w_warm)
    # the differences the test is about are there: object columns with None and NaN, a column of mixed types
    if "metrics.flag" in warm:
        assert warm["metrics.flag"].dtype == object
        flag = warm["metrics.flag"].tolist()
        assert any(v is None for v in flag) and any(isinstance(v, float) and v != v for v in flag)
    if columns is None or "metrics.steps" in columns:
        assert {type(v) for v in warm["metrics.steps"].dropna()} >= {str, bool}

    # an appended tail: that store is read from its snapshot, extended, written again and read from it
    with open(sweeps / "c_nan.jsonl", "a") as f:
        f.write(_lines([_rec(40, case__algorithm=_DROP), _rec(41, metrics__steps=2.5)]))
    runs.clear()
    grown, w_grown = _load(root, columns=columns)
    assert runs == [1, 7]
    with monkeypatch.context() as m:
        _definition(m)
        old, w_old = _load(root, columns=columns)
    pd.testing.assert_frame_equal(grown, old)
    assert w_grown == w_old


def test_nan_and_none_where_every_snapshot_has_both(tmp_path, monkeypatch):
    """A column of one type and metadata in every snapshot, each with cells that are null (None) and cells with no
    key (NaN, the snapshot's NaN flags): NaN stays NaN."""
    sweeps = tmp_path / "results" / "sweeps"
    sweeps.mkdir(parents=True)
    for f in range(3):
        recs = [_rec(10 * f + i, metrics__flag=[_DROP, None, True][i % 3]) for i in range(4)]
        (sweeps / f"s{f}.jsonl").write_text(_lines(recs))
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    _load(tmp_path / "results")
    warm, _ = _load(tmp_path / "results")
    with monkeypatch.context() as m:
        _definition(m)
        old, _ = _load(tmp_path / "results")
    pd.testing.assert_frame_equal(warm, old)
    flag = warm["metrics.flag"].tolist()
    assert [type(v) for v in flag[:3]] == [float, type(None), bool]


def test_frames_of_snapshots_is_pd_concat_on_random_stores(tmp_path, monkeypatch):
    """Many random files: columns present or not, null or not, of one type or another, file by file."""
    rng = np.random.default_rng(0)
    values = {"metrics.x": [0.5, 1, None, "text", True, _DROP], "case.t": ["a", None, _DROP, 3],
              "metrics.b": [True, False, None, _DROP], "metrics.n": [1, 2, None, _DROP, 1e300]}
    sweeps = tmp_path / "results" / "sweeps"
    sweeps.mkdir(parents=True)
    for f in range(30):
        pick = {k: rng.choice(len(v), size=rng.integers(1, 3)) for k, v in values.items()}
        recs = []
        for i in range(int(rng.integers(1, 5))):
            over = {k.replace(".", "__"): v[int(rng.choice(pick[k]))] for k, v in values.items()}
            recs.append(_rec(100 * f + i, **over))
        (sweeps / f"s{f:02d}.jsonl").write_text(_lines(recs))
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    _load(tmp_path / "results")
    warm, w_warm = _load(tmp_path / "results")
    with monkeypatch.context() as m:
        _definition(m)
        old, w_old = _load(tmp_path / "results")
    pd.testing.assert_frame_equal(warm, old)
    assert w_warm == w_old


def test_a_snapshot_with_odd_pandas_metadata_is_converted_on_its_own(tmp_path, monkeypatch):
    """A snapshot whose pandas metadata gives a column another dtype (planted, or another pandas) is converted on
    its own, as before: the frame is still the definition's."""
    root = tmp_path / "results"
    _stores(root)
    folder = tmp_path / "cache"
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(folder))
    _load(root)
    import pyarrow.parquet as pq

    snap = sorted(folder.glob("*.parquet"))[0]
    table = pq.read_table(snap)
    meta = {k: v for k, v in table.schema.metadata.items()}
    pandas_meta = json.loads(meta[b"pandas"])
    for col in pandas_meta["columns"]:
        if col["name"] == "metrics.time_median_s":
            col["numpy_type"] = "float32"
    meta[b"pandas"] = json.dumps(pandas_meta).encode()
    pq.write_table(table.replace_schema_metadata(meta), snap)
    warm, _ = _load(root)
    with monkeypatch.context() as m:
        _definition(m)
        old, _ = _load(root)
    pd.testing.assert_frame_equal(warm, old)


def test_a_snapshot_whose_floats_cannot_be_read_is_rebuilt_from_its_store(tmp_path, monkeypatch):
    """The float columns are read from the snapshot file only when they are written into the frame: where that
    fails (a damaged file), that store is read from its lines and its snapshot written again, with a warning."""
    root = tmp_path / "results"
    _stores(root)
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    _load(root)
    real, calls = columnar.Snapshot.floats, []

    def damaged(self, names):
        calls.append(names)
        if len(calls) == 2:
            raise OSError("damaged")
        return real(self, names)

    monkeypatch.setattr(columnar.Snapshot, "floats", damaged)
    warm, w_warm = _load(root)
    assert len(calls) > 2 and sum("cannot be read (OSError: damaged); ignored and rebuilt" in w for w in w_warm) == 1
    monkeypatch.setattr(columnar.Snapshot, "floats", real)
    with monkeypatch.context() as m:
        _definition(m)
        old, _ = _load(root)
    pd.testing.assert_frame_equal(warm, old)
    runs, run_frame = [], columnar._run_frame
    monkeypatch.setattr(columnar, "_run_frame", lambda run: runs.append(len(run)) or run_frame(run))
    again, w_again = _load(root)  # the snapshot was written again: every store from its snapshot, as before
    assert runs == [1, 7] and not any("rebuilt" in w for w in w_again)
    pd.testing.assert_frame_equal(again, old)
