"""The record schema and the JSON-lines store (sslbench.records)."""

import datetime as dt
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from sslbench import records as R

ENV = {"hostname": "test", "torch_version": "x"}


def test_make_record_has_every_key_and_plain_values():
    case = {"regularizer": "vicreg", "dim": 512, "batch": 256, "views": 2, "device": "cpu", "dtype": torch.float32,
            "shape": (3, 4)}
    metrics = {"time_median_s": 0.25, "loss": float("nan"), "repeats": torch.tensor(7), "peak": torch.tensor(2.5)}
    before = dt.datetime.now(dt.timezone.utc)
    rec = R.make_record("regularizer_bench", case, metrics, env=ENV, message=None, extra={"note": "x"})
    after = dt.datetime.now(dt.timezone.utc)
    assert tuple(rec) == R.RECORD_KEYS
    assert rec["schema"] == R.SCHEMA_VERSION
    assert rec["id"] == R.case_id("regularizer_bench", case)
    assert rec["case"]["dtype"] == "torch.float32" and rec["case"]["shape"] == [3, 4]
    # NaN becomes null (JSON has no NaN); tensors become Python numbers
    assert rec["metrics"] == {"time_median_s": 0.25, "loss": None, "repeats": 7, "peak": 2.5}
    created = dt.datetime.fromisoformat(rec["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert before <= created <= after  # the time of the call, in UTC
    json.dumps(rec, allow_nan=False)  # strictly valid JSON


def test_make_record_takes_the_environment_from_its_caller():
    """The environment is passed in (records never import the torch side); leaving it out is an error."""
    with pytest.raises(TypeError, match="env"):
        R.make_record("regularizer_bench", {"a": 1}, {})
    with pytest.raises(TypeError, match="env must be a dict"):
        R.make_record("regularizer_bench", {"a": 1}, {}, env=None)
    assert R.make_record("regularizer_bench", {"a": 1}, {}, env={"host": "h"})["env"] == {"host": "h"}


def test_killed_is_a_status_that_a_resumed_grid_retries():
    assert "killed" in R.STATUSES and "killed" not in R.FINAL_STATUSES
    rec = R.make_record("k", {}, {}, "killed", env={})
    assert R.completed_ids([rec]) == set()


@pytest.mark.parametrize("status", ["ok", "oom", "nonfinite", "diverged", "timeout", "error", "interrupted",
                                    "killed"])
def test_every_status_is_accepted(status):
    assert R.make_record("k", {}, {}, status, env={})["status"] == status


def test_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="status='crashed' is not allowed"):
        R.make_record("k", {}, {}, "crashed", env={})
    with pytest.raises(TypeError, match="cannot be stored in a JSON record"):
        R.make_record("k", {"f": object()}, {}, env={})
    with pytest.raises(TypeError, match="keys must be strings"):
        R.make_record("k", {1: 2}, {}, env={})
    with pytest.raises(ValueError, match="non-empty string"):
        R.case_id("", {})
    with pytest.raises(TypeError, match="metrics must be a dict"):
        R.make_record("k", {}, [1, 2], env={})


def test_case_id_is_stable_and_discriminating():
    a = {"regularizer": "barlow_twins", "dim": 128, "batch": 256, "views": 2}
    b = dict(reversed(list(a.items())))
    assert R.case_id("regularizer_bench", a) == R.case_id("regularizer_bench", b)
    assert R.case_id("regularizer_bench", a) != R.case_id("train", a)
    assert R.case_id("regularizer_bench", a) != R.case_id("regularizer_bench", {**a, "dim": 129})
    assert R.case_id("k", {"s": (1, 2)}) == R.case_id("k", {"s": [1, 2]})
    assert len(R.case_id("k", a)) == 16 and int(R.case_id("k", a), 16) >= 0
    # the same in another process with another hash seed (no use of hash())
    code = ("import json,sys; from sslbench.records import case_id; "
            "print(case_id('regularizer_bench', json.loads(sys.argv[1])))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(b)], capture_output=True, text=True, env=env,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(R.__file__))))
    assert out.stdout.strip() == R.case_id("regularizer_bench", a)


def test_append_and_read_round_trip(tmp_path, monkeypatch):
    path = tmp_path / "deep" / "folder" / "records.jsonl"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    recs = [R.make_record("k", {"i": i}, {"x": i / 3}, env=ENV) for i in range(3)]
    for r in recs:
        R.append_record(path, r)
    assert len(synced) == 3
    assert path.read_text().count("\n") == 3
    assert R.read_records(path) == recs
    assert R.read_records(path, kind="other") == []
    assert R.read_records(tmp_path / "missing.jsonl") == []


def test_corrupt_and_half_written_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "r.jsonl"
    good = [R.make_record("k", {"i": i}, {}, env=ENV) for i in range(3)]
    R.append_record(path, good[0])
    with open(path, "a") as f:
        f.write("this is not json\n[1, 2, 3]\n\n")
    R.append_record(path, good[1])
    with open(path, "a") as f:  # a crash in the middle of a line: no newline at the end
        f.write(json.dumps(good[2])[:25])
    with pytest.warns(RuntimeWarning, match=r"skipped 3 line\(s\).*line 2, 3, 6"):
        assert R.read_records(path) == good[:2]
    # appending after the cut line starts a new line: the new record is readable
    R.append_record(path, good[2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert R.read_records(path) == good
    assert len(caught) == 1


def test_append_refuses_nan_that_bypassed_make_record(tmp_path):
    with pytest.raises(ValueError, match="NaN or Inf"):
        R.append_record(tmp_path / "r.jsonl", {"metrics": {"x": float("inf")}})
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").read_text() == ""


def test_old_records_are_upgraded():
    old = {"kind": "regularizer_bench", "case": {"dim": 4}, "metrics": {"time_median_s": 1.0}}
    rec = R.upgrade_record(old)
    assert set(R.RECORD_KEYS) <= set(rec)
    # a record that does not say how its case ended is not counted as ok
    assert rec["schema"] == 0 and rec["status"] is None and rec["env"] == {} and rec["extra"] == {}
    assert rec["id"] == R.case_id("regularizer_bench", {"dim": 4})
    assert rec["metrics"] == old["metrics"]


def test_completed_ids_skip_only_final_statuses():
    recs = [R.make_record("k", {"i": i}, {}, s, env={}) for i, s in
            enumerate(["ok", "oom", "nonfinite", "error", "timeout", "interrupted", "diverged"])]
    done = R.completed_ids(recs)
    assert done == {recs[i]["id"] for i in (0, 1, 2, 6)}


def test_read_pytest_benchmark(tmp_path):
    data = {
        "machine_info": {"node": "box", "python_version": "3.11.7", "cpu": {"brand_raw": "CPU X"}},
        "commit_info": {"id": "abc123", "dirty": False},
        "datetime": "2025-01-01T00:00:00+00:00",
        "benchmarks": [{
            "name": "test_forward_backward[barlow_twins-128-256-2]",
            "group": "forward_backward",
            "extra_info": {"regularizer": "barlow_twins", "dim": 128, "batch": 256, "views": 2, "device": "cpu",
                           "dtype": "float32", "peak_rss_bytes": 1234, "torch_version": "2.x", "threads": 2},
            "stats": {"min": 0.001, "max": 0.003, "mean": 0.002, "stddev": 0.0005, "rounds": 11, "median": 0.0019,
                      "iqr": 0.0004},
        }],
    }
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "0001_run.json").write_text(json.dumps(data))
    recs = R.read_pytest_benchmark(tmp_path)
    assert len(recs) == 1
    rec = recs[0]
    assert rec["kind"] == "pytest_benchmark" and rec["created"] == data["datetime"]
    assert rec["case"]["regularizer"] == "barlow_twins" and rec["case"]["dim"] == 128
    assert rec["metrics"]["time_median_s"] == 0.0019 and rec["metrics"]["repeats"] == 11
    assert rec["metrics"]["peak_rss_bytes"] == 1234
    assert rec["env"]["git_commit"] == "abc123" and rec["env"]["cpu_model"] == "CPU X"
    assert rec["env"]["torch_version"] == "2.x" and rec["env"]["threads"] == 2 and "threads" not in rec["case"]


def test_read_asv_results(tmp_path):
    results = tmp_path / "results"
    (results / "box").mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps({
        "bench_regularizers.ForwardBackward.time_forward_backward": {
            "param_names": ["regularizer", "dim"], "unit": "seconds"},
        "version": 2}))
    (results / "box" / "machine.json").write_text(json.dumps({"machine": "box", "cpu": "CPU X", "num_cpu": "2"}))
    (results / "box" / "abcdef12-existing.json").write_text(json.dumps({
        "commit_hash": "abcdef1234", "env_name": "existing", "python": "3.11", "date": 1700000000000,
        "requirements": {}, "result_columns": ["result", "params", "version", "started_at", "duration",
                                               "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75"],
        "results": {"bench_regularizers.ForwardBackward.time_forward_backward": [
            [0.5, None, float("nan")], [["'barlow_twins'", "'vicreg'", "'sfrik'"], ["128"]], "v", 0, 1.0,
            [0.4, None, None], [0.6, None, None], [0.45, None, None], [0.55, None, None]]},
        "durations": {}, "version": 2}))
    recs = R.read_asv_results(results)
    assert [r["status"] for r in recs] == ["ok", "error"]  # the NaN (skipped) combination is left out
    ok = recs[0]
    assert ok["case"] == {"benchmark": "bench_regularizers.ForwardBackward.time_forward_backward",
                          "regularizer": "barlow_twins", "dim": 128, "commit": "abcdef1234"}
    assert ok["metrics"]["value"] == 0.5 and ok["metrics"]["unit"] == "seconds"
    assert ok["metrics"]["q_25"] == 0.45 and ok["metrics"]["ci_99_b"] == 0.6
    assert ok["env"]["machine"] == "box"


def test_to_dataframe_flattens_sections():
    pd = pytest.importorskip("pandas")
    recs = [R.make_record("k", {"reg": "a", "dim": d}, {"t": d / 10}, env={"host": "h"}) for d in (2, 4)]
    df = R.to_dataframe(recs)
    assert isinstance(df, pd.DataFrame) and len(df) == 2
    assert list(df["case.dim"]) == [2, 4] and list(df["metrics.t"]) == [0.2, 0.4]
    assert set(df["env.host"]) == {"h"} and set(df["status"]) == {"ok"}


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_records_without_a_known_status_or_kind_are_skipped_with_a_warning_naming_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    good = R.make_record("k", {"i": 0}, {"x": 1.0}, env={})
    _write_lines(path, [json.dumps(good),
                        json.dumps({"kind": "k", "case": {}, "metrics": {"x": 2.0}}),          # no status
                        json.dumps({**good, "status": "great"}),                                # unknown status
                        json.dumps({k: v for k, v in good.items() if k != "kind"})])             # no kind
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert R.read_records(path) == [good]
    text = "\n".join(str(w.message) for w in caught)
    assert f"{path}: skipped record(s) with no 'status' (line 2)" in text
    assert "unknown status 'great' (line 3)" in text
    assert "no 'kind' (what was measured) (line 4)" in text


@pytest.mark.parametrize("raw", ["1e400", "-1e400", "1" + "0" * 400])
def test_a_number_out_of_range_is_set_to_null_with_a_warning(tmp_path, raw):
    path = tmp_path / "r.jsonl"
    good = R.make_record("k", {"i": 0}, {"x": 1.0, "y": 2}, env={})
    text = json.dumps(good).replace('"x": 1.0', f'"x": {raw}')
    _write_lines(path, [json.dumps(good), text])
    with pytest.warns(RuntimeWarning, match=r"r\.jsonl: number\(s\) out of range set to null \(metrics\.x\) "
                                            r"\(line 2\)"):
        recs = R.read_records(path)
    assert [r["metrics"] for r in recs] == [{"x": 1.0, "y": 2}, {"x": None, "y": 2}]
    pd = pytest.importorskip("pandas")
    df = R.to_dataframe(recs)
    assert pd.to_numeric(df["metrics.x"]).isna().tolist() == [False, True]


def test_big_integers_within_a_float_become_floats():
    value, bad = R.clamp_numbers({"a": [2 ** 70, 5, float("nan")], "b": True})
    assert bad == [] and value["a"][0] == float(2 ** 70) and value["a"][1] == 5 and value["b"] is True


def test_pytest_benchmark_file_with_an_out_of_range_number_is_read_with_a_warning(tmp_path):
    data = {"benchmarks": [{"name": "t", "extra_info": {"dim": 4}, "stats": {"median": 0.5, "rounds": 1e400}}]}
    (tmp_path / "b.json").write_text(json.dumps(data).replace('"rounds": Infinity', '"rounds": 1e400'))
    with pytest.warns(RuntimeWarning, match=r"b\.json: number\(s\) out of range"):
        recs = R.read_pytest_benchmark(tmp_path / "b.json")
    assert recs[0]["metrics"]["repeats"] is None and recs[0]["metrics"]["time_median_s"] == 0.5
