"""The columnar read path (sslbench.records.columnar) against today's line-by-line reader: the same frame (values,
dtypes, column order) and the same warnings, on the committed results and on a hostile store, block by block."""

import json
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import results_fixtures as F
from sslbench import analysis as A
from sslbench.records import columnar, read_records, to_dataframe

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("pyarrow")


def _good(i: int, **over) -> dict:
    rec = {"schema": 1, "kind": "regularizer_bench", "id": f"id{i}", "created": "2026-11-28T09:22:21+00:00",
           "case": {"regularizer": "vicreg", "dim": 64 * (i + 1), "hparams": {"a": i, "b": [1.0, 2]}},
           "status": "ok", "metrics": {"time_median_s": 0.001 * (i + 1), "flag": bool(i % 2)},
           "env": {"device_name": "cpu", "device_names": []}, "message": None,
           "extra": {"regularizer_source": {"distribution": "sslbench", "version": "0.1"}}}
    rec.update(over)
    return rec


HOSTILE = [json.dumps(_good(0)), "", "not json at all", json.dumps(_good(1)), "[1, 2]",
           json.dumps(_good(2, kind=None)), json.dumps({k: v for k, v in _good(3).items() if k != "status"}),
           json.dumps(_good(4, status="weird")), json.dumps(_good(5, status=None)),
           '{"schema": 1, "kind": "regularizer_bench", "id": "big", "case": {"dim": 1}, "status": "ok", '
           '"metrics": {"time_median_s": 1e400, "n": ' + "9" * 400 + '}, "env": {}}',
           json.dumps(_good(6, case={"regularizer": "barlow_twins", "max_steps": None, "when": "2020-01-01"})),
           json.dumps(_good(7, metrics={"time_median_s": "fast"})),
           json.dumps({k: v for k, v in _good(8).items() if k not in ("id", "schema")}),
           json.dumps(_good(9, kind="train", case={"regularizer": "sfrik", "hparams": {"c": 1}})),
           json.dumps(_good(10, extra={"regularizer_source": "not a dict"})),
           '{"schema": 1, "kind": "regularizer_bench", "id": "half", "case": {"dim"']


CLEAN = [json.dumps(_good(i)) for i in range(6)] + [
    json.dumps(_good(6, metrics={"time_median_s": 0.5})),  # no flag: NaN there, None where it is null
    json.dumps(_good(7, metrics={"time_median_s": None, "flag": None})),
    json.dumps(_good(8, kind="train", case={"regularizer": "sfrik", "max_steps": None, "hparams": {"x": 1.0}})),
    json.dumps(_good(9, status="oom", message="out of memory", extra={})),
    json.dumps(_good(10, kind=None)), ""]



def _src(i: int, **over) -> dict:
    """A record whose leaf names repeat across sections (git_commit in env and in extra.regularizer_source), with
    nested hparams: cells the reader takes from the lines."""
    rec = _good(i, env={"device_name": "cpu", "git_commit": f"c{i}"},
                extra={"regularizer_source": {"distribution": "x", "git_commit": None if i % 2 else f"s{i}",
                                              **({"git_dirty": True} if i % 3 else {})}})
    rec.update(over)
    return rec


#: sections the reader may read from their own bytes, and traps for it: a section name that is also a value, a
#: key inside another section, spacing other than json.dumps', backslashes, non-ASCII keys, a missing section
SECTION_TRAPS = [json.dumps(_src(i)) for i in range(4)] + [
    json.dumps(_src(4, message="case")),  # "case" twice in the line: the whole line is parsed
    json.dumps(_src(5), separators=(",", ":")),
    json.dumps(_src(6)).replace('"case": {', '"case" :\t {', 1),
    json.dumps(_src(7, case={"regularizer": "vicreg", "hparams": {"p": "C:\\x"}, "max_steps": None})),
    json.dumps(_src(8, env={"regularizer_source": {"git_commit": "env's"}, "git_commit": "c8"})),
    json.dumps(_src(9, extra={"case": {"dim": 3}, "regularizer_source": {"git_dirty": None}})),
    json.dumps(_src(10, case={"regularizer": "vicreg", "größe": 1, "hparams": {"ä": [1, 2.5]}}), ensure_ascii=False),
    json.dumps({k: v for k, v in _src(11).items() if k != "case"}),
    json.dumps(_src(12, case={"regularizer": "sfrik", "hparams": {"c": 1, "a": None}, "max_steps": 5}))]


def _both(path, **kw):
    """(old frame, old warnings, new frame, new warnings)."""
    with warnings.catch_warnings(record=True) as w_old:
        warnings.simplefilter("always")
        old = to_dataframe(read_records(path, **{k: v for k, v in kw.items() if k != "columns"}))
    with warnings.catch_warnings(record=True) as w_new:
        warnings.simplefilter("always")
        new = columnar.read_frame(path, **kw)
    return old, [str(w.message) for w in w_old], new, [str(w.message) for w in w_new]


def _same(new, old, exact=True):
    """The frames are equal; not ``exact``: a null may be None in one and NaN in the other, in a column whose
    values change type between lines that lie in different blocks (the one difference, docs/results-at-scale.md)."""
    if not exact:
        new, old = (df.astype(object).where(df.notna(), None) for df in (new, old))
    pd.testing.assert_frame_equal(new, old, check_dtype=exact)


@pytest.mark.parametrize("lines", [HOSTILE, CLEAN, SECTION_TRAPS], ids=["hostile", "clean", "sections"])
@pytest.mark.parametrize("block", [16 << 20, 700])
def test_the_columnar_reader_gives_todays_frame_and_warnings(tmp_path, monkeypatch, lines, block):
    monkeypatch.setattr(columnar, "_BLOCK", block)  # 700 bytes: a few lines a block, fallbacks in some blocks
    path = tmp_path / "store.jsonl"
    path.write_text("\n".join(lines))
    old, w_old, new, w_new = _both(path)
    assert len(old) > 3
    _same(new, old, exact=lines is not HOSTILE or block > 1000)
    assert w_new == w_old
    for kind in ("train", "regularizer_bench", "nothing"):
        old, w_old, new, w_new = _both(path, kind=kind)
        if len(old):
            _same(new, old, exact=lines is not HOSTILE or block > 1000)
        else:
            assert len(new) == 0
        assert w_new == w_old


def test_a_clean_block_is_read_by_arrow_without_the_line_by_line_fallback(tmp_path, monkeypatch):
    path = tmp_path / "store.jsonl"
    path.write_text("\n".join(CLEAN))
    calls = []
    monkeypatch.setattr(columnar, "parse_lines", lambda *a, **k: calls.append(1) or [])
    with pytest.warns(RuntimeWarning, match="line 11"):
        df = columnar.read_frame(path)
    assert calls == [] and len(df) == 10


def test_cells_taken_from_the_lines_parse_only_their_section_where_it_is_certain(tmp_path, monkeypatch):
    """hparams and the None-or-NaN of regularizer_source.git_commit (a name env has too) come from the sections'
    own bytes: no whole line is parsed for a clean store, and the frame is today's."""
    path = tmp_path / "store.jsonl"
    path.write_text("\n".join(SECTION_TRAPS[:4] + SECTION_TRAPS[-1:]) + "\n")
    whole = []
    real = columnar._Parsed.__call__
    monkeypatch.setattr(columnar._Parsed, "__call__", lambda self, j: whole.append(j) or real(self, j))
    old, _, new, _ = _both(path)
    _same(new, old)
    assert "case.hparams" in new.columns and "regularizer_source.git_commit" in new.columns
    assert whole == []
    path.write_text("\n".join(SECTION_TRAPS) + "\n")
    old, _, new, _ = _both(path)
    _same(new, old)
    assert {int(j) for j in whole} == {7}  # a backslash: the line is read whole


@pytest.mark.parametrize("line, expected", [
    ('{"id": "case", "case": {"a": 1}}', {"a": 1}),  # the name as a value first
    ('{"extra": {"case": {"b": 2}, "x": [{"case": 0}]}, "case" :  {"a": 1}}', {"a": 1}),  # nested ones
    ('{"m": "{[", "case":{"a": [1, {"c": null}]}}', {"a": [1, {"c": None}]}),  # brackets inside a string
    ('{"case": {"a": 1}, "case": {"a": 2}}', "unknown"),  # a repeated key: json keeps the last
    ('{"extra": {"case": {"b": 2}}}', "unknown"),  # none at the top
    ('{"case": {"a": 1e400}}', {"a": float("inf")}),  # json's own reading of the value
])
def test_a_top_level_section_is_found_in_the_bytes_or_left_to_json(line, expected):
    got = columnar._top_level_value(line.encode(), b'"case"')
    assert (got is columnar._UNKNOWN) if expected == "unknown" else got == expected


def test_a_half_written_last_line_costs_only_its_own_line(tmp_path, monkeypatch):
    """The common damage (an interrupted writer) does not send the whole block to the slow path."""
    path = tmp_path / "store.jsonl"
    path.write_text("\n".join(CLEAN[:-2] + [HOSTILE[-1]]))
    calls = []
    monkeypatch.setattr(columnar, "parse_lines", lambda *a, **k: calls.append(1) or [])
    with pytest.warns(RuntimeWarning, match=r"not JSON records.*line 11"):
        df = columnar.read_frame(path)
    assert calls == [] and len(df) == 10


def test_a_projection_reads_only_the_columns_asked_for(tmp_path):
    path = tmp_path / "store.jsonl"
    path.write_text("\n".join(CLEAN[:-2]))
    full = columnar.read_frame(path)
    some = columnar.read_frame(path, columns=["case.dim", "metrics."])
    expected = ["schema", "kind", "id", "created", "status", "message", "case.dim", "metrics.time_median_s",
                "metrics.flag"]
    assert list(some.columns) == expected
    pd.testing.assert_frame_equal(some, full[expected])


def _load_both(root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        new = A.load_results(root, **kw)
        fast = columnar.available
        try:
            columnar.available = lambda: False
            old = A.load_results(root, **kw)
        finally:
            columnar.available = fast
    return old, new


def test_load_results_is_the_same_frame_on_the_committed_results_and_a_hostile_store(tmp_path):
    root = tmp_path / "results"
    shutil.copytree(ROOT / "results", root)
    (root / "hostile.jsonl").write_text("\n".join(HOSTILE))
    F.write_results(tmp_path / "fixture")
    shutil.copytree(tmp_path / "fixture", root / "fixture")
    old, new = _load_both(root, asv=[])
    assert len(old) > 400
    pd.testing.assert_frame_equal(new, old)
    cols = ["metrics.knn_top1", "case.epochs"]
    old_p, new_p = _load_both(root, asv=[], columns=cols)
    pd.testing.assert_frame_equal(new_p, old_p)
    assert set(cols) <= set(new_p.columns) and len(new_p.columns) < len(new.columns)
    pd.testing.assert_frame_equal(new_p, new[new_p.columns])


def test_resume_and_status_read_a_projection_of_the_store(tmp_path):
    """sweep's resume, --status, ETA and devices line keep of each record its ids, status, case and the few env /
    extra keys they read, not its metrics, env and extra (the bulk of a record)."""
    from sslbench.execution import plan as P
    from sslbench.records import append_record, make_record

    store = tmp_path / "store.jsonl"
    env = {"device_name": "cpu", "torch_version": "2", "threads": 1, "hostname": "h", "big": "x" * 1000}
    ok = make_record("regularizer_bench", {"dim": 8}, {"time_median_s": 1.0, "samples": list(range(50))}, env=env,
                     extra={"wall_s": 2.0, "output": "o" * 500, "sweep": {"id": "s1", "case": {"dim": 8}}})
    bad = make_record("regularizer_bench", {"dim": 16}, {}, "error", env=env, message="boom",
                      extra={"output": "traceback ..."})
    other = make_record("train", {"dim": 8}, {}, env=env)
    for rec in (ok, bad, other):
        append_record(store, rec)
    with open(store, "a") as f:
        f.write('{"kind": "regularizer_bench", "status": "ok", "metrics": {"x": 1e400}, "case": {"dim": 32}}\n')
    slim = P._read_store(str(store), "regularizer_bench", "sweep")
    full = read_records(store, kind="regularizer_bench")
    assert [(r["id"], r["status"], r["message"], r["case"]) for r in slim] == \
        [(r["id"], r["status"], r["message"], r["case"]) for r in full]
    assert all(r["metrics"] == {} for r in slim)
    assert slim[0]["env"] == {"device_name": "cpu", "torch_version": "2", "threads": 1}
    assert slim[0]["extra"] == {"wall_s": 2.0, "sweep": {"id": "s1", "case": {"dim": 8}}}  # no output: it is ok
    assert slim[1]["extra"] == {"output": "traceback ..."}  # a failure's output: --status prints its tail
    assert P.sweep_id_of(slim[0]) == "s1" and slim[2]["id"] == full[2]["id"]  # a missing id computed alike


def test_keys_spelled_with_escapes_or_non_ascii_are_found(tmp_path):
    """Whether a line has a key (None or NaN in today's frame) is never guessed wrong from its bytes."""
    lines = [json.dumps(_good(0, case={"dim": 1, "déjà": True, "a/b": False})),
             '{"schema": 1, "kind": "k", "id": "a", "status": "ok", "case": {"d\\u00e9j\\u00e0": null, "dim": 2}}',
             json.dumps(_good(2, case={"déjà": None, "dim": 3}), ensure_ascii=False),
             '{"schema": 1, "kind": "k", "id": "b", "status": "ok", "case": {"a\\/b": null, "dim": 4}}',
             json.dumps(_good(4, case={"dim": 5}))]
    path = tmp_path / "store.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    old, w_old, new, w_new = _both(path)
    pd.testing.assert_frame_equal(new, old)
    cells = new["case.déjà"].tolist()
    assert cells[:3] == [True, None, None] and all(isinstance(c, float) for c in cells[3:])  # NaN: no key there
    cells = new["case.a/b"].tolist()
    assert cells[0] is False and cells[3] is None and all(isinstance(c, float) for c in cells[1:3] + cells[4:])


# ---------------------------------------------------------------------------------------------------------------
# The snapshot cache: only appended lines parsed, the same frame and warnings as a cold read
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def counted(monkeypatch):
    parsed = []
    monkeypatch.setattr(columnar, "parse_hook", parsed.append)
    return parsed


def _cold(path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        return columnar.read_frame(path), [str(x.message) for x in w]


def _cached(path, folder):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        return columnar.read_frame_cached(path, folder=folder), [str(x.message) for x in w]


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_a_snapshot_makes_later_reads_parse_only_the_appended_lines(tmp_path, counted):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, CLEAN[:6] + ["not json"] + HOSTILE[5:9])
    first, w_first = _cached(store, folder)
    cold, w_cold = _cold(store)
    pd.testing.assert_frame_equal(first, cold)
    assert w_first == w_cold and len(list(folder.iterdir())) == 1
    with open(store, "a") as f:
        f.write("".join(line + "\n" for line in CLEAN[6:10]))
    counted.clear()
    again, w_again = _cached(store, folder)
    assert sum(counted) == 4  # the appended lines only
    cold, w_cold = _cold(store)
    pd.testing.assert_frame_equal(again, cold)
    assert w_again == w_cold  # the skipped lines of the cached part are warned about again
    counted.clear()
    pd.testing.assert_frame_equal(_cached(store, folder)[0], cold)
    assert sum(counted) == 0
    some = columnar.read_frame_cached(store, folder=folder, columns=["case.dim"])
    pd.testing.assert_frame_equal(some, cold[[c for c in cold.columns if c in columnar.BASE or c == "case.dim"]])


def test_a_line_being_written_is_read_but_not_cached(tmp_path, counted):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, CLEAN[:4])
    with open(store, "a") as f:
        f.write(CLEAN[4][:30])  # half a line
    df, w = _cached(store, folder)
    assert len(df) == 4 and any("line 5" in m for m in w)
    with open(store, "a") as f:
        f.write(CLEAN[4][30:] + "\n")
    counted.clear()
    df, w = _cached(store, folder)
    assert sum(counted) == 1 and w == []
    pd.testing.assert_frame_equal(df, _cold(store)[0])


@pytest.mark.parametrize("change", ["shrink", "replace", "rewrite"])
def test_a_store_that_shrank_or_was_replaced_is_read_from_the_start(tmp_path, counted, change):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, CLEAN[:8])
    _cached(store, folder)
    if change == "shrink":
        _write(store, CLEAN[:3])
    elif change == "replace":  # another inode with more lines: the old snapshot must not be extended
        other = tmp_path / "other.jsonl"
        _write(other, CLEAN[2:10])
        other.replace(store)
    else:  # the same inode, the same size, other bytes before the offset
        text = store.read_text()
        store.write_text(text.replace('"id0"', '"idX"'))
    counted.clear()
    df, _ = _cached(store, folder)
    assert sum(counted) == len(store.read_text().splitlines())
    pd.testing.assert_frame_equal(df, _cold(store)[0])


@pytest.mark.parametrize("damage", ["garbage", "link", "other_key", "bad_columns"])
def test_a_damaged_or_planted_snapshot_is_rebuilt_never_trusted(tmp_path, counted, damage):
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, CLEAN[:8])
    _cached(store, folder)
    snap = next(folder.iterdir())
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    if damage == "garbage":
        snap.write_bytes(b"PAR1 not parquet")
    elif damage == "link":
        snap.unlink()
        snap.symlink_to(target)
    else:
        table = pq.read_table(snap)
        meta = json.loads(table.schema.metadata[b"sslbench"])
        if damage == "other_key":
            meta["offset"] = "0"
        else:
            table = table.append_column("os.system", pa.array(["x"] * table.num_rows))
        pq.write_table(table.replace_schema_metadata({b"sslbench": json.dumps(meta).encode()}), snap)
    counted.clear()
    df, w = _cached(store, folder)
    assert sum(counted) == 8 and any("snapshot" in m and "rebuilt" in m for m in w)
    pd.testing.assert_frame_equal(df, _cold(store)[0])
    assert target.read_text() == "keep me" and not snap.is_symlink()
    counted.clear()
    assert _cached(store, folder)[1] == [] and sum(counted) == 0  # rebuilt: trusted again


def test_a_read_only_store_is_read_and_cached_elsewhere(tmp_path, counted, monkeypatch):
    shop = tmp_path / "shop"
    shop.mkdir()
    store = shop / "store.jsonl"
    _write(store, CLEAN[:5])
    store.chmod(0o444)
    shop.chmod(0o555)
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    try:
        df = columnar.read_frame_cached(store)
        counted.clear()
        pd.testing.assert_frame_equal(columnar.read_frame_cached(store), df)
        assert sum(counted) == 0 and list(shop.iterdir()) == [store]
        monkeypatch.setenv("SSLBENCH_CACHE_DIR", "off")
        pd.testing.assert_frame_equal(columnar.read_frame_cached(store), df)
        assert sum(counted) == 5
    finally:
        shop.chmod(0o755)


def test_status_reads_the_store_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """--status asks for the grid's records three times (plan, counts, devices): one read of the store."""
    from sslbench.execution import plan as P
    from sslbench.records import append_record, make_record

    store = tmp_path / "store.jsonl"
    append_record(store, make_record("regularizer_bench", {"dim": 8}, {}, env={}))
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", "off")
    reads = []
    real = P.read_projected_cached
    monkeypatch.setattr(P, "read_projected_cached", lambda *a, **k: reads.append(1) or real(*a, **k))
    for _ in range(3):
        assert len(P._read_store(str(store), "regularizer_bench", "sweep")) == 1
    assert len(reads) == 1
    append_record(store, make_record("regularizer_bench", {"dim": 16}, {}, env={}))  # grown: read again
    assert len(P._read_store(str(store), "regularizer_bench", "sweep")) == 2 and len(reads) == 2


def test_a_warm_projected_read_takes_only_the_columns_asked_for_from_the_snapshot(tmp_path, counted, monkeypatch):
    import pyarrow.parquet as pq

    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, CLEAN[:10] + HOSTILE[5:9])
    _cached(store, folder)  # builds the snapshot
    read = []
    real_read = pq.ParquetFile.read

    def spy(self, columns=None, **kw):
        read.append(columns)
        return real_read(self, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read", spy)
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail("the whole snapshot was read"))
    cold, w_cold = _cold(store)
    for columns in (["metrics.flag", "case."], ["case.dim"], ["regularizer_source."], []):
        read.clear()
        counted.clear()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            some = columnar.read_frame_cached(store, folder=folder, columns=columns)
        keep = columnar.wanted(columns)
        expected = cold[[c for c in cold.columns if keep(c)]]
        pd.testing.assert_frame_equal(some, expected)  # NaN and None where the cold read has them
        assert [str(x.message) for x in w] == w_cold and sum(counted) == 0
        assert len(read) == 1 and set(read[0]) == set(expected.columns) | {
            columnar._NAN + c for c in expected.columns if columnar._NAN + c in read[0]}


# ---------------------------------------------------------------------------------------------------------------
# Pruning the snapshot folder: snapshots of stores that are gone, or not used for days
# ---------------------------------------------------------------------------------------------------------------
def test_snapshots_of_stores_gone_or_unused_for_days_are_pruned_and_nothing_else(tmp_path, monkeypatch):
    import os
    import time

    folder = tmp_path / "cache"
    stores = {name: tmp_path / f"{name}.jsonl" for name in ("kept", "gone", "old", "read")}
    for store in stores.values():
        _write(store, CLEAN[:3])
        columnar.read_frame_cached(store, folder=folder)
    snaps = {name: columnar._snapshot_path(folder, store) for name, store in stores.items()}
    assert all(s.is_file() for s in snaps.values())
    stores["gone"].unlink()
    month_ago = time.time() - 31 * 86400
    for name in ("old", "read"):
        os.utime(snaps[name], (month_ago, month_ago))
    columnar.read_frame_cached(stores["read"], folder=folder)  # a warm read: used today, so kept
    planted = {"link": folder / ("a" * 32 + ".parquet"), "other": folder / "notes.txt",
               "dir": folder / ("b" * 32 + ".parquet")}
    target = tmp_path / "precious.parquet"
    target.write_text("keep me")
    os.utime(target, (month_ago, month_ago))
    planted["link"].symlink_to(target)
    planted["other"].write_text("not mine")
    os.utime(planted["other"], (month_ago, month_ago))
    planted["dir"].mkdir()
    removed = columnar.prune_snapshots(folder)
    assert sorted(removed) == sorted([snaps["gone"], snaps["old"]])
    assert snaps["kept"].is_file() and snaps["read"].is_file()
    assert planted["link"].is_symlink() and target.read_text() == "keep me"
    assert planted["other"].is_file() and planted["dir"].is_dir()
    monkeypatch.setenv("SSLBENCH_CACHE_DAYS", "0")  # the age from the environment: everything is too old now
    assert sorted(columnar.prune_snapshots(folder)) == sorted([snaps["kept"], snaps["read"]])


def test_the_folder_is_pruned_once_per_process_when_a_snapshot_is_written(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    calls = []
    monkeypatch.setattr(columnar, "_PRUNED", set())
    monkeypatch.setattr(columnar, "prune_snapshots", calls.append)  # prune_once calls it
    for i in range(3):
        store = tmp_path / f"s{i}.jsonl"
        _write(store, CLEAN[:3])
        columnar.read_frame_cached(store, folder=folder)
    assert calls == [folder]


def test_the_analysis_gives_the_same_tables_through_its_projection(tmp_path, monkeypatch):
    """load_results(columns=ANALYSIS_COLUMNS) holds what the analysis reads: analyze's tables and the dashboard's
    views are the same as through the whole frame, on the committed results."""
    from sslbench.analysis import load, views

    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = A.load_results(ROOT / "results", asv=[])
        some = A.load_results(ROOT / "results", asv=[], columns=load.ANALYSIS_COLUMNS)
        assert len(some) == len(whole) > 100 and set(some.columns) < set(whole.columns)
        assert any(c.startswith("env.") for c in set(whole.columns) - set(some.columns))
        a, b = A.summary(whole), A.summary(some)
        assert a.keys() == b.keys() and len(a) >= 3
        for name in a:
            pd.testing.assert_frame_equal(a[name], b[name], obj=name)
        assert views.run_statuses(whole) == views.run_statuses(some)
        for view in (views.accuracy_runs, views.throughput_records):
            full, projected = view(whole), view(some)
            assert all(c.startswith("env.") for c in set(full.columns) - set(projected.columns))  # carried along
            pd.testing.assert_frame_equal(full[list(projected.columns)], projected, obj=view.__name__)
