"""The dashboard's one live copy of the records (issue 21, item 4): sslbench.analysis.live.LiveResults reads only
the lines appended to a store since the last read and gives the frame a cold load_results gives (rows in the same
place, same values and dtypes, same warnings); a store that shrank, was replaced or rewritten, or a file removed, is
read again from the start. The app keeps one per folder and redraws from it; the Claims page shows the current
settings only by default; strings from disk shown in the sidebar are escaped; OOM markers are filtered before the
plot."""

import gc
import json
import os
import re
import warnings
import weakref
from pathlib import Path

import pandas as pd
import pytest

import results_fixtures as F
from sslbench.analysis import live as L
from sslbench.analysis import load_results
from sslbench.records import append_record, columnar, make_record

pytestmark = pytest.mark.skipif(not columnar.available(), reason="the appended read needs pyarrow")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "snapshots"))


def _record(i: int, **case) -> dict:
    return make_record("regularizer_bench", {"regularizer": ["vicreg", "barlow_twins"][i % 2], "dim": 64 * (i + 1),
                                             "batch": 32, **case},
                       {"time_median_s": 0.01 * (i + 1), "peak_rss_delta_bytes": 1000.0 * (i + 1)}, status="ok",
                       env={"device_name": "cpu-test"})


def _train(i: int) -> dict:
    return make_record("train", {"regularizer": "vicreg", "dim": 128, "seed": i, "dataset": "fashion_mnist"},
                       {"linear_top1": 80.0 + i, "knn_top1": float("nan") if i % 3 == 0 else 70.0 + i, "steps": 10},
                       status="ok" if i % 4 else "diverged", env={"device_name": "cpu-test"})


def _lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    (root / "sweeps").mkdir(parents=True)
    (root / "sweeps" / "a.jsonl").write_text(_lines([_record(i) for i in range(6)]) + "{not json\n")
    (root / "sweeps" / "b.jsonl").write_text(_lines([_train(i) for i in range(5)]))
    (root / "z.jsonl").write_text(_lines([_record(i, dtype="float64") for i in range(3)]))
    F.write_pytest_benchmark(root / "pytest-benchmark" / "bench.json")
    return root


def _cold(root: Path, columns=L.DASHBOARD_COLUMNS) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_results(root, columns=columns)
    return df, [str(w.message) for w in caught]


def _named(problems: list[str]) -> set[tuple[str, str, int]]:
    """(file, reason, line) of every line the warnings name (a cold read names a file's lines in one warning per
    reason, an appended read the appended ones in another)."""
    out = set()
    for p in problems:
        head, _, lines = p.rpartition("(line")
        file, _, reason = head.partition(": ")
        reason = re.sub(r"\d+ line\(s\)", "N line(s)", reason)
        out |= {(file, reason.strip(), int(n)) for n in re.findall(r"\d+", lines)}
    return out


def _same(held: L.LiveResults, root: Path) -> None:
    df, problems = held.get()
    cold, cold_problems = _cold(root, held.columns)
    # rows in the same places, the same values and dtypes; a column that first appears in appended lines comes
    # last (a cold read puts it where its first row is)
    assert sorted(df.columns) == sorted(cold.columns)
    pd.testing.assert_frame_equal(df, cold[list(df.columns)])
    assert _named(problems) == _named(cold_problems) and len(_named(problems)) >= 1


@pytest.fixture
def counted(monkeypatch):
    """The lines the columnar reader parses (columnar.parse_hook)."""
    seen = []
    monkeypatch.setattr(columnar, "parse_hook", seen.append)
    return seen


def test_appended_lines_are_the_only_lines_parsed_and_the_frame_equals_a_cold_read(tmp_path, counted):
    root = _folder(tmp_path)
    held = L.LiveResults(str(root))
    df, problems = held.get()
    assert held.reads == 1 and held.appends == 0 and len(df) == 6 + 5 + 3 + 3
    assert len(problems) == 1 and "a.jsonl" in problems[0] and "line 7" in problems[0]
    again, _ = held.get()
    assert again is df and held.generation == 1  # nothing changed: the same object, nothing read
    old = weakref.ref(df)
    del df, again
    counted.clear()
    with open(root / "sweeps" / "a.jsonl", "a") as f:  # 4 records and a bad line, to the store with one already
        f.write(_lines([_record(i) for i in range(10, 14)]) + "[1, 2]\n")
    with open(root / "sweeps" / "b.jsonl", "a") as f:
        f.write(_lines([_train(i) for i in range(5, 8)]))
    new, problems = held.get()
    assert held.reads == 1 and held.appends == 1 and held.generation == 2
    assert sum(counted) == 5 + 3  # only the appended lines were parsed
    assert len(new) == 6 + 4 + 5 + 3 + 3 + 3
    # the bad appended line is named by its line in the whole file
    assert any("a.jsonl" in p and "line 12" in p for p in problems), problems
    _same(held, root)
    gc.collect()
    assert old() is None  # the frame before the append is not kept beside the new one


def test_the_old_reference_definition_on_varied_data(tmp_path):
    """Several appends in a row, NaNs, a kind other than the first, a new column, a new store: after each, the
    frame equals a cold read of the folder."""
    root = _folder(tmp_path)
    held = L.LiveResults(str(root))
    held.get()
    steps = [
        lambda: append_record(root / "sweeps" / "a.jsonl", _record(20)),
        lambda: append_record(root / "z.jsonl", _record(21, hparams={"lambd": 0.1}, new_key="x")),
        lambda: (root / "sweeps" / "c.jsonl").write_text(_lines([_train(30), _record(31)])),  # a new store
        lambda: append_record(root / "sweeps" / "b.jsonl", _train(32)),
    ]
    for i, step in enumerate(steps):
        step()
        _same(held, root)
        assert held.reads == 1 and held.appends == i + 1


@pytest.mark.parametrize("change", ["shrink", "replace", "rewrite", "remove", "json"])
def test_a_store_that_shrank_or_changed_is_read_again_from_the_start(tmp_path, change):
    root = _folder(tmp_path)
    held = L.LiveResults(str(root))
    held.get()
    store = root / "sweeps" / "a.jsonl"
    text = store.read_text()
    if change == "shrink":
        store.write_text(text.split("\n", 2)[2])
    elif change == "replace":  # another file (inode) of the same length and more
        tmp = store.with_suffix(".tmp")
        tmp.write_text(text + _lines([_record(40)]))
        os.replace(tmp, store)
    elif change == "rewrite":  # edited in place before the end, then grown
        store.write_text(text.replace('"vicreg"', '"simclr"', 1) + _lines([_record(41)]))
    elif change == "remove":
        (root / "z.jsonl").unlink()
    else:
        F.write_pytest_benchmark(root / "pytest-benchmark" / "other.json")
    _same(held, root)
    assert held.reads == 2 and held.appends == 0


def test_a_line_being_written_waits_for_its_end(tmp_path):
    root = _folder(tmp_path)
    held = L.LiveResults(str(root))
    n = len(held.get()[0])
    line = json.dumps(_record(50))
    with open(root / "z.jsonl", "a") as f:
        f.write(line[:40])  # half a line: not read yet, no warning about it
    df, problems = held.get()
    assert len(df) == n and not any("z.jsonl" in p for p in problems)
    with open(root / "z.jsonl", "a") as f:
        f.write(line[40:] + "\n")
    _same(held, root)
    assert len(held.get()[0]) == n + 1 and held.reads == 1


def test_a_training_log_changing_reads_nothing(tmp_path, counted):
    root = _folder(tmp_path)
    rec = _train(1)
    F.write_run_log(root / "runs" / f"{rec['id']}.jsonl", rec)
    held = L.LiveResults(str(root))
    df, _ = held.get()
    counted.clear()
    F.write_run_log(root / "runs" / f"{rec['id']}.jsonl", rec, steps=9)
    assert held.get()[0] is df and held.generation == 1 and held.reads == 1 and not counted


def test_derived_values_are_computed_once_per_version_of_the_records(tmp_path):
    root = _folder(tmp_path)
    held = L.LiveResults(str(root))
    held.get()
    calls = []

    def count(frame):
        calls.append(len(frame))
        return len(frame)
    assert held.derived("rows", count) == held.derived("rows", count) == 17 and calls == [17]
    append_record(root / "z.jsonl", _record(60))
    held.get()
    assert held.derived("rows", count) == 18 and calls == [17, 18]


def test_only_the_columns_the_pages_need_are_held(tmp_path):
    root = _folder(tmp_path)
    rec = _record(70)
    rec["extra"] = {"regularizer_source": {"module": "x.y", "version": "1"}}
    append_record(root / "z.jsonl", rec)
    full = load_results(root)
    df, _ = L.LiveResults(str(root)).get()
    assert any(c.startswith("regularizer_source.") for c in full.columns)
    assert not any(c.startswith("regularizer_source.") for c in df.columns)
    assert [c for c in full.columns if c.startswith(L.DASHBOARD_COLUMNS) or "." not in c] == list(df.columns)


def test_narrow_takes_the_rows_of_the_kinds_and_the_plain_columns(tmp_path):
    df = load_results(_folder(tmp_path))
    got = L.narrow(df, ["regularizer_bench"], ["metrics.time_median_s", "metrics.absent"])
    want = df[df["kind"] == "regularizer_bench"]
    assert list(got.index) == list(want.index)
    assert list(got.columns) == [c for c in df.columns if "." not in c] + ["metrics.time_median_s"]
    pd.testing.assert_frame_equal(got, want[list(got.columns)])


# ---------------------------------------------------------------------------------------------------------------
# The app (AppTest on small stores)
# ---------------------------------------------------------------------------------------------------------------
st_testing = pytest.importorskip("streamlit.testing.v1")
APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def _app(monkeypatch, root: Path, page: str):
    monkeypatch.setenv("SSLBENCH_RESULTS", str(root))
    monkeypatch.delenv("SSLBENCH_ASV", raising=False)
    at = st_testing.AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = page
    return _run(at)


def _run(at):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_app_redraws_after_an_append_from_the_one_copy(monkeypatch, tmp_path):
    root = _folder(tmp_path)
    full_reads = []
    real = L.load_results

    def counting(*args, **kwargs):
        full_reads.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(L, "load_results", counting)
    at = _app(monkeypatch, root, "Scaling")
    assert "17 records" in " ".join(c.value for c in at.sidebar.caption)
    with open(root / "sweeps" / "a.jsonl", "a") as f:
        f.write(_lines([_record(i) for i in range(80, 83)]))
    _run(at)
    assert "20 records" in " ".join(c.value for c in at.sidebar.caption)
    other = _app(monkeypatch, root, "Accuracy")  # a new session (a reload): the same copy, nothing read
    assert "20 records" in " ".join(c.value for c in other.sidebar.caption)
    assert len(full_reads) == 1


def _verdicts(monkeypatch):
    from sslbench.analysis import report as R
    from sslbench.analysis.claims.common import EARLIER, Verdict

    calls = []

    def fake(df, studies=None):
        calls.append(len(df))
        return [Verdict("fft", "now <b>bold</b>", "supported", "<img src=x onerror=alert(1)>", "rule", "", "AdamW"),
                Verdict("fft", "then", "inconclusive", "old figures", "rule", "", "SGD" + EARLIER)]
    monkeypatch.setattr(R, "verdicts", fake)
    return calls


def test_claims_show_the_current_setting_by_default_and_the_earlier_one_click_away(monkeypatch, tmp_path):
    calls = _verdicts(monkeypatch)
    at = _app(monkeypatch, _folder(tmp_path), "Claims")
    table = at.dataframe[0].value
    assert list(table["claim"]) == ["now <b>bold</b>"]  # a dataframe cell: shown as text, never as HTML
    assert "**supported** 1" in at.markdown[0].value if at.markdown else False
    assert any("1 row(s) of the earlier setting" in c.value and "hidden" in c.value for c in at.caption)
    at.checkbox(key="claims_earlier").check()
    _run(at)
    assert list(at.dataframe[0].value["claim"]) == ["now <b>bold</b>", "then"]
    assert any("counted apart: supported 0, not supported 0, inconclusive 1" in c.value for c in at.caption)
    assert len(calls) == 1  # the redraws reused the verdicts of this version of the records


def test_claims_are_computed_again_after_an_append(monkeypatch, tmp_path):
    calls = _verdicts(monkeypatch)
    root = _folder(tmp_path)
    at = _app(monkeypatch, root, "Claims")
    append_record(root / "z.jsonl", _record(90))
    _run(at)
    assert calls == [17, 18]


def test_warnings_naming_hostile_files_and_keys_are_escaped_in_the_sidebar(monkeypatch, tmp_path):
    from sslbench.records.text import markdown_text

    root = tmp_path / "results"
    root.mkdir()
    store = root / "[click](javascript:alert(1))<img src=x>.jsonl"
    rec = _record(1)
    line = json.dumps(rec).replace('"peak_rss_delta_bytes": ', '"<b>k</b>": 1e400, "peak_rss_delta_bytes": ')
    store.write_text(line + "\n{bad\n")
    at = _app(monkeypatch, root, "Scaling")
    captions = [c.value for c in at.sidebar.caption]
    warned = [c for c in captions if "jsonl" in c and ("out of range" in c or "not JSON" in c)]
    assert len(warned) == 2, captions
    for c in warned:
        assert "<img" not in c and "<b>" not in c and "](javascript" not in c
    assert any(markdown_text(f"{store}: skipped 1 line(s)") in c for c in warned)


def test_oom_markers_are_one_per_series_and_size(monkeypatch, tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    recs = [_record(i) for i in range(4)]
    for _ in range(50):  # the same case out of memory fifty times: one marker
        recs.append(make_record("regularizer_bench", {"regularizer": "vicreg", "dim": 8192, "batch": 32},
                                {}, status="oom", env={"device_name": "cpu-test"}))
    (root / "s.jsonl").write_text(_lines(recs))
    at = _app(monkeypatch, root, "Scaling")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    oom = [t for t in spec["data"] if t.get("name") == "out of memory (OOM)"]
    assert len(oom) == 1 and oom[0]["x"] == [8192]


def _setting_frame(seed: int) -> pd.DataFrame:
    """One setting's records (kind, device, threads, dtype, N, V fixed): several regularizers and labels, curves
    that cross or not, a label with no shared range, NaN and failed points."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for reg, labels in (("vicreg", ["vicreg[a]", "vicreg[b]", "vicreg[c]"]), ("bt", ["bt[x]", "bt[y]"]),
                        ("solo", ["solo"])):
        for label in labels:
            dims = [64, 128, 256, 512] if label != "vicreg[c]" else [2048, 4096]
            slope, pivot = rng.uniform(0.5, 2.0), rng.uniform(30, 700)  # curves equal near their pivots: some cross
            for d in dims:
                for _ in range(rng.integers(1, 4)):
                    t = (d / pivot) ** slope * rng.uniform(0.97, 1.03)
                    status = "ok" if rng.random() > 0.1 else "error"
                    rows.append({"kind": "regularizer_bench", "device_name": "cpu", "threads": 2.0,
                                 "dtype": "float32", "batch": 32.0, "views": 2.0, "regularizer": reg,
                                 "label": label, "dim": float(d), "status": status,
                                 "time_s": t if rng.random() > 0.05 else float("nan")})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(8))
def test_crossing_pairs_from_the_table_equal_the_views_definition(seed):
    from sslbench.analysis import crossover_table
    from sslbench.analysis import views as V

    data = _setting_frame(seed)
    table = crossover_table(data, x="dim", y="time_s", kinds=["regularizer_bench"])
    assert L.crossing_pairs(data, "dim", "time_s", table) == V.crossing_pairs(data, "dim", "time_s")


def test_crossing_pairs_of_several_settings_fall_back_to_the_views_definition(monkeypatch):
    from sslbench.analysis import crossover_table
    from sslbench.analysis import views as V

    data = pd.concat([_setting_frame(1), _setting_frame(2).assign(device_name="gpu")], ignore_index=True)
    table = crossover_table(data, x="dim", y="time_s", kinds=["regularizer_bench"])
    want = V.crossing_pairs(data, "dim", "time_s")
    calls = []
    monkeypatch.setattr(V, "crossing_pairs", lambda *a: calls.append(a) or want)
    assert L.crossing_pairs(data, "dim", "time_s", table) == want and len(calls) == 1
