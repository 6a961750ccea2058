"""The dashboard pages' data (sslbench.analysis.views), checked without Streamlit on hand-built frames whose
answers are known."""

import math

import pandas as pd
import pytest

from sslbench.analysis import views as V

C = 1e-10


def bench_frame(rows):
    """A frame like load_results' scaling rows: label, regularizer, dim, batch, views, status, time_s."""
    return pd.DataFrame([{"kind": "regularizer_bench", "status": "ok", "device_name": "cpu", "views": 2,
                          "metrics.time_q25_s": None, **r} for r in rows])


def test_default_fixed_axis_is_the_value_with_the_most_sizes_measured():
    df = bench_frame([{"label": "a", "regularizer": "r", "dim": d, "batch": n, "time_s": 1.0}
                      for n, dims in ((64, (8,)), (128, (8, 16, 32)), (256, (8, 16))) for d in dims])
    assert V.default_fixed(df, "batch", "dim") == 128
    assert V.default_fixed(df.assign(batch=None), "batch", "dim") is None
    assert V.scaling_axes(df) == ["dim", "batch"]  # views has a single value
    assert V.scaling_axes(df.iloc[:1]) == ["dim"]


def test_crossing_pairs_lists_the_crossing_pair_first():
    # primal: t = C N D^2, dual: t = C N^2 D -> they cross at D = N = 64; "x" and "y" never cross
    rows = []
    for d in (16, 32, 128, 256):
        rows.append({"label": "bt[primal]", "regularizer": "bt", "dim": d, "batch": 64, "time_s": C * 64 * d * d})
        rows.append({"label": "bt[dual]", "regularizer": "bt", "dim": d, "batch": 64, "time_s": C * 64 * 64 * d})
        rows.append({"label": "v[a]", "regularizer": "v", "dim": d, "batch": 64, "time_s": 1.0 * d})
        rows.append({"label": "v[b]", "regularizer": "v", "dim": d, "batch": 64, "time_s": 2.0 * d})
    df = bench_frame(rows)
    assert V.crossing_pairs(df, "dim", "time_s") == [("bt[dual]", "bt[primal]"), ("v[a]", "v[b]")]
    reversed_order = V.crossing_pairs(df.iloc[::-1], "dim", "time_s")
    assert reversed_order[0] == ("bt[dual]", "bt[primal]")


def test_scaling_series_medians_quartile_bars_and_exponents():
    rows = [{"label": "s", "regularizer": "r", "dim": d, "batch": 4, "time_s": t * d ** 2,
             "metrics.time_q25_s": 0.9 * t * d ** 2, "metrics.time_q75_s": 1.2 * t * d ** 2}
            for d in (2, 4, 8) for t in (1.0, 1.0, 3.0)]  # median of (1, 1, 3) is 1
    rows.append({"label": "s", "regularizer": "r", "dim": 16, "batch": 4, "time_s": 5.0, "status": "error"})
    lines, fits = V.scaling_series(bench_frame(rows), "dim", "time_s", ["label"])
    assert len(lines) == 1
    line = lines[0]
    assert line["key"] == ("s",) and line["x"] == [2, 4, 8] and line["n"] == [3, 3, 3]
    assert line["y"] == pytest.approx([4.0, 16.0, 64.0])
    assert line["err_plus"] == pytest.approx([0.2 * 4, 0.2 * 16, 0.2 * 64])
    assert line["err_minus"] == pytest.approx([0.1 * 4, 0.1 * 16, 0.1 * 64])
    assert line["exponent"] == pytest.approx(2.0) and fits["exponent"].iloc[0] == pytest.approx(2.0)
    few, _ = V.scaling_series(bench_frame(rows[:6]), "dim", "time_s", ["label"])
    assert math.isnan(few[0]["exponent"])  # two sizes: too few for a fit of 3 points


def test_oom_points_and_measured_sizes():
    df = bench_frame([{"label": "s", "regularizer": "r", "dim": d, "batch": 4, "time_s": 1.0, "status": st}
                      for d, st in ((8, "ok"), (16, "oom"), (0, "oom"), (32, "error"))])
    assert V.oom_points(df, "dim")["dim"].tolist() == [16]
    assert V.measured_sizes(df, "dim") == [8, 16, 32]


def train_frame():
    rows = []
    for reg in ("bt", "vic"):
        for views in (2, 4):
            for fraction in (0.5, 1.0):
                for seed in (0, 1):
                    rows.append({"kind": "train", "status": "ok", "regularizer": reg, "case.dataset": "f",
                                 "case.fraction": fraction, "views": views, "dim": 128, "case.seed": seed,
                                 "case.regularizer": reg, "metrics.linear_top1": 10.0 * views + seed,
                                 "case.hparams": "{}"})
    rows.append({"kind": "train", "status": "ok", "regularizer": "bt", "case.fraction": 0.25, "views": 8,
                 "dim": 128, "case.regularizer": "bt", "metrics.linear_top1": 1.0, "case.hparams": "{}"})
    rows.append({"kind": "regularizer_bench", "status": "ok"})
    return pd.DataFrame(rows)


def test_accuracy_runs_axes_and_fixed_defaults():
    runs = V.accuracy_runs(train_frame())
    assert len(runs) == 17 and runs["fraction"].dtype.kind == "f" and runs["linear_top1"].notna().all()
    assert V.accuracy_axes(runs) == ["views", "fraction"]  # dim has one value
    # against views: fraction 0.5 and 1.0 each give 2 views; 0.25 only one -> all the data (1.0)
    assert V.default_accuracy_fixed(runs, "fraction", "views") == 1.0
    assert V.default_accuracy_fixed(runs, "views", "fraction") in (2, 4)


def test_accuracy_series_pools_seeds_per_variant():
    runs = V.accuracy_runs(train_frame())
    ok = runs[runs["fraction"] == 1.0]
    lines = V.accuracy_series(ok, "views", "linear_top1")
    assert [(ln["regularizer"], ln["variant"], ln["index"]) for ln in lines] == [("bt", "bt", 0), ("vic", "vic", 0)]
    assert lines[0]["x"] == [2, 4] and lines[0]["mean"] == [20.5, 40.5] and lines[0]["runs"] == [2, 2]
    assert lines[0]["std"] == pytest.approx([math.sqrt(0.5)] * 2)


def test_regression_table_helpers():
    t = pd.DataFrame({"commit": ["b", "a", "b", "c"], "created": pd.to_datetime([2, 1, 2, 3]),
                      "change": ["", "", "regression", ""], "benchmark": ["x", "x", "y", "z"],
                      "series": ["x1", "x1", "y1", "z1"]})
    assert V.commit_order(t) == ["a", "b", "c"]
    assert V.flagged(t, "benchmark") == ["y"] and V.flagged(t, "series") == ["y1"]


def test_runs_helpers():
    logs = pd.DataFrame([
        {"run_id": "old", "time": 1.0, "event": "step", "step": 1, "loss": 3.0, "inv": 1.0, "lr": 0.1,
         "case.regularizer": "bt", "case.dim": 128.0, "case.seed": 0},
        {"run_id": "new", "time": 5.0, "event": "step", "step": 1, "loss": 2.0, "inv": None, "lr": 0.1,
         "case.regularizer": "vic", "case.dim": 64.0, "case.seed": 1}])
    assert V.runs_latest_first(logs) == ["new", "old"]
    assert V.loss_terms(logs) == ["loss", "inv"]
    assert V.run_description(logs, "old") == "bt D=128 seed=0 [old]"
    assert V.run_description(logs, "new", "diverged") == "vic D=64 seed=1 [new] diverged"
    df = pd.DataFrame({"kind": ["train", "asv"], "id": ["old", "z"], "status": ["diverged", "ok"]})
    assert V.run_statuses(df) == {"old": "diverged"}


def test_filters():
    s = pd.Series(["b", "a", "b", None])
    assert V.choices(s) == ["a", "b"] and V.choices(s, by_count=True) == ["b", "a"]
    assert V.most_common(s) == "b" and V.most_common(pd.Series([None])) is None
    df = pd.DataFrame({"c": [1, 2, 3]})
    assert V.keep(df, "c", [1, "3"])["c"].tolist() == [1, 3]
    assert V.plain_number(4.0) == "4" and V.plain_number(0.5) == "0.5" and V.plain_number("x") == "x"


def test_finished_runs_floor_and_failures():
    runs = V.accuracy_runs(train_frame())
    runs.loc[runs.index[0], "status"] = "diverged"
    runs.loc[runs.index[1], "linear_top1"] = float("nan")
    runs["init_linear_top1"] = [5.0 if v == 2 else 7.0 for v in runs["views"]]
    ok = V.finished_runs(runs, "linear_top1")
    assert len(ok) == 15 and set(ok["variant"]) == {"bt", "vic"}
    assert V.init_floor(ok, "views", "linear_top1").to_dict() == {2: 5.0, 4: 7.0, 8: 7.0}
    bench = bench_frame([{"status": s} for s in ("ok", "oom", "error", "timeout")])
    assert V.failed_otherwise(bench)["status"].tolist() == ["error", "timeout"]
