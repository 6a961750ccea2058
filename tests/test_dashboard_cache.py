"""The dashboard's one copy of the records (issue 21 item 4): sslbench.analysis.views.LoadedResults, which
dashboard/app.py keeps once per results folder (st.cache_resource), reads again only when a file changed and then
replaces its frame rather than keeping one per change."""

import gc
import weakref

from sslbench.analysis import views as V
from sslbench.records import append_record, make_record


def _record(i: int) -> dict:
    return make_record("regularizer_bench", {"regularizer": "vicreg", "dim": 64 * (i + 1), "batch": 32},
                       {"time_s": 0.01 * (i + 1), "memory_bytes": 1000.0 * (i + 1)}, status="ok",
                       env={"device_name": "cpu-test"})


def test_one_frame_read_again_only_after_a_change_and_replaced(tmp_path):
    store = tmp_path / "results" / "bench.jsonl"
    store.parent.mkdir()
    for i in range(3):
        append_record(store, _record(i))
    held = V.LoadedResults(str(store.parent))
    df, problems = held.get()
    assert len(df) == 3 and problems == [] and held.reads == 1
    again, _ = held.get()
    assert again is df and held.reads == 1  # no change: the same object, not a copy, not a new read
    old = weakref.ref(df)
    del df, again
    append_record(store, _record(3))
    new, _ = held.get()
    assert len(new) == 4 and held.reads == 2
    gc.collect()
    assert old() is None  # the frame before the change is not kept beside the new one


def test_a_bad_line_is_a_warning_of_the_holder(tmp_path):
    store = tmp_path / "results" / "bench.jsonl"
    store.parent.mkdir()
    append_record(store, _record(0))
    with open(store, "a") as f:
        f.write("{not json\n")
    df, problems = V.LoadedResults(str(store.parent)).get()
    assert len(df) == 1 and len(problems) == 1 and "bench.jsonl" in problems[0]
