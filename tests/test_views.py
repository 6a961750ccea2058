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


# --------------------------------------------------------------------------------------------------------------
# Accuracy: the study with the most training, devices never pooled
# --------------------------------------------------------------------------------------------------------------
def study_runs():
    """Train rows of four studies whose order by training is known: ``long`` (8 epochs on all the data: 1872
    steps of 256), ``short`` (1 epoch on a tenth: 23 steps), ``mixed`` (one 10 000-step run among five short ones:
    its median run is short) and ``failed`` (its only run diverged after many steps: no finished run)."""
    rows = []

    def add(study, steps, n=1, status="ok", epochs=1, device="cpu"):
        for seed in range(n):
            rows.append({"kind": "train", "status": status, "source": study, "regularizer": "bt",
                         "case.regularizer": "bt", "case.hparams": "{}", "case.batch": 256, "case.epochs": epochs,
                         "case.seed": seed, "case.dataset": "f", "case.fraction": 1.0, "views": 2, "dim": 128,
                         "device_name": device, "metrics.steps": steps, "metrics.linear_top1": 50.0 + steps / 100})

    add("short", 23, n=6)
    add("long", 1872, n=2, epochs=8)
    add("mixed", 10_000, epochs=40)
    add("mixed", 30, n=5)
    add("failed", 50_000, status="diverged", epochs=200)
    return pd.DataFrame(rows)


def test_samples_seen_is_steps_times_batch():
    runs = V.accuracy_runs(study_runs())
    assert runs["samples_seen"].tolist()[:7] == [23 * 256] * 6 + [1872 * 256]
    odd = pd.DataFrame({"metrics.steps": [10, None, "many", 5, 4], "case.batch": [8, 8, 8, float("inf"), None],
                        "batch": [None, None, None, None, 16]})
    seen = V.samples_seen(odd)
    assert seen.iloc[0] == 80 and seen.iloc[1:4].isna().all()  # no steps, text, an infinite batch: unknown
    assert seen.iloc[4] == 64  # the derived batch column where the case has none


def test_the_accuracy_page_opens_on_the_study_with_the_most_training():
    runs = V.accuracy_runs(study_runs())
    # long: median 1872 steps; mixed: median 30 (its one long run does not carry it); short: 23;
    # failed: none finished
    assert V.training_order(runs, "study") == ["long", "mixed", "short", "failed"]
    assert V.default_study(runs) == "long"
    assert V.training_by(runs, "study").tolist()[:3] == [1872 * 256, 30 * 256, 23 * 256]
    assert math.isnan(V.training_by(runs, "study")["failed"])
    # the rule is the median of the finished runs, not their count: many short runs do not outweigh two long ones
    many_short = pd.concat([runs, V.accuracy_runs(study_runs()).assign(study="short")], ignore_index=True)
    assert V.default_study(many_short) == "long"
    # a tie of medians: the study with more finished runs first
    tie = runs[runs["study"].isin(["short", "long"])].assign(samples_seen=1.0)
    assert V.training_order(tie, "study") == ["short", "long"]
    # within a study, the number of epochs with the most training comes first too
    assert V.training_order(runs[runs["study"] == "mixed"], "epochs") == [40, 1]
    assert V.default_study(runs.drop(columns=["study"])) is None
    assert V.default_study(runs.assign(study=None)) is None


def test_accuracy_series_keeps_devices_apart():
    rows = []
    for device, acc, floor in (("GPU model", 80.0, 60.0), ("CPU model", 70.0, 50.0)):
        for views in (2, 4):
            for seed in (0, 1):
                rows.append({"kind": "train", "status": "ok", "regularizer": "bt", "case.regularizer": "bt",
                             "case.hparams": "{}", "views": views, "dim": 128, "case.fraction": 1.0,
                             "case.seed": seed, "device_name": device, "metrics.linear_top1": acc + views + seed,
                             "metrics.init_linear_top1": floor})
    ok = V.finished_runs(V.accuracy_runs(pd.DataFrame(rows)), "linear_top1")
    lines = V.accuracy_series(ok, "views", "linear_top1")
    assert [(ln["variant"], ln["device"]) for ln in lines] == [("bt", "CPU model"), ("bt", "GPU model")]
    assert lines[0]["mean"] == [72.5, 74.5] and lines[1]["mean"] == [82.5, 84.5]  # not the pooled 77.5, 79.5
    floors = V.init_floors(ok, "views", "linear_top1")
    assert {d: f.tolist() for d, f in floors.items()} == {"CPU model": [50.0, 50.0], "GPU model": [60.0, 60.0]}
    # two GPU models of one device type: two rows of the table, not one mean
    two_gpus = pd.DataFrame(rows).assign(**{"case.device": "cuda", "kind": "train"})
    table = V.accuracy_by_device(V.accuracy_runs(two_gpus))
    assert sorted(table["device_name"]) == ["CPU model", "CPU model", "GPU model", "GPU model"]
    assert sorted(table["linear_top1"]) == [72.5, 74.5, 82.5, 84.5]


# --------------------------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------------------------
def tp_row(loop, device, run, created, ips, *, backbone="resnet18_cifar", batch=512, views=2, status="ok",
           phases=(1.0, 2.0, 3.0, 4.0), message=None, **metrics):
    """A throughput row as load_results gives it for one record of benchmarks/train_throughput.py."""
    data, aug, fb, opt = phases
    aug = aug if loop == "sslbench" else None  # the peer augments in its loader's workers, off the step
    m = {"images_per_s": ips, "step_ms": data + (aug or 0.0) + fb + opt, "data_ms": data, "augment_ms": aug,
         "fwd_bwd_ms": fb, "optimizer_ms": opt, "worker_augment_ms": 9.0 if loop == "peer" else None,
         "fraction_of_peak": ips / 1e5 if ips else None}
    m.update(metrics)
    row = {"kind": "train_throughput", "status": status, "message": message, "source": run,
           "created": pd.Timestamp(created, unit="s", tz="UTC"), "device_name": device,
           "case.loop": loop, "case.backbone": backbone, "case.batch": batch, "case.views": views,
           "case.image_shape": "[3, 32, 32]", "case.regularizer": "barlow_twins", "case.projector": "2048-2048-2048",
           "case.optimizer": "lars", "case.device": "cuda" if "GPU" in device else "cpu"}
    if status == "ok":
        row.update({f"metrics.{k}": v for k, v in m.items()})
    return row


def throughput_frame():
    rows = [
        # GPU, run g1: both loops of two cases
        tp_row("sslbench", "GPU A", "g1.jsonl", 100, 9000.0), tp_row("peer", "GPU A", "g1.jsonl", 101, 6000.0),
        tp_row("sslbench", "GPU A", "g1.jsonl", 102, 4000.0, views=4),
        tp_row("peer", "GPU A", "g1.jsonl", 103, 5000.0, views=4),
        # CPU, run c1: the same first case, far slower; the peer ran out of memory on the second
        tp_row("sslbench", "CPU B", "c1.jsonl", 50, 300.0), tp_row("peer", "CPU B", "c1.jsonl", 51, 200.0),
        tp_row("sslbench", "CPU B", "c1.jsonl", 52, 100.0, views=4),
        tp_row("peer", "CPU B", "c1.jsonl", 53, None, views=4, status="oom", message="CUDA out of memory"),
        # a second GPU model, an older run on its own: only sslbench (no ratio)
        tp_row("sslbench", "GPU C", "g2.jsonl", 10, 7000.0),
        # an ok record whose figures are poisoned (null, infinite, text): listed, not plotted, not a crash
        tp_row("peer", "GPU C", "g2.jsonl", 11, float("inf"), fraction_of_peak="n/a", step_ms=None),
    ]
    return pd.DataFrame(rows)


def test_throughput_records_plain_columns_and_poisoned_values():
    tp = V.throughput_records(throughput_frame())
    assert len(tp) == 10 and set(tp["device_name"]) == {"GPU A", "CPU B", "GPU C"}
    assert tp["case_label"].iloc[0] == "resnet18_cifar B=512 V=2"
    assert math.isnan(tp["images_per_s"].iloc[-1]) and math.isnan(tp["fraction_of_peak"].iloc[-1])
    ok = V.throughput_ok(tp)
    assert len(ok) == 8 and (ok["images_per_s"] > 0).all()
    bad = V.throughput_unplotted(tp)
    assert bad[["device_name", "status", "why"]].values.tolist() == [
        ["CPU B", "oom", "oom: CUDA out of memory"], ["GPU C", "ok", "ok, but no finite images/s"]]
    empty = V.throughput_records(pd.DataFrame({"kind": ["train"], "status": ["ok"]}))
    assert empty.empty and V.throughput_ratios(empty).empty and V.throughput_latest(V.throughput_ok(empty)).empty


def test_throughput_grouped_by_device_never_pooled():
    tp = V.throughput_records(throughput_frame())
    latest = V.throughput_latest(V.throughput_ok(tp))
    v2 = latest[latest["views"] == 2]
    # one bar per device and loop, each its own measurement (no mean of GPU A, CPU B and GPU C)
    assert list(zip(v2["device_name"], v2["loop"], v2["images_per_s"])) == [
        ("CPU B", "sslbench", 300.0), ("CPU B", "peer", 200.0), ("GPU A", "sslbench", 9000.0),
        ("GPU A", "peer", 6000.0), ("GPU C", "sslbench", 7000.0)]
    assert (latest["repeats"] == 1).all()
    # a case measured twice on one device (two runs chosen): the latest is shown, with the count
    again = pd.concat([throughput_frame(), pd.DataFrame([tp_row("sslbench", "GPU A", "g0.jsonl", 1, 1.0)])])
    latest = V.throughput_latest(V.throughput_ok(V.throughput_records(again)))
    row = latest[(latest["device_name"] == "GPU A") & (latest["loop"] == "sslbench") & (latest["views"] == 2)]
    assert row["images_per_s"].tolist() == [9000.0] and row["repeats"].tolist() == [2]
    # the default runs: the latest of each device
    assert V.throughput_runs(V.throughput_records(again)) == ["g1.jsonl", "c1.jsonl", "g2.jsonl", "g0.jsonl"]
    assert V.throughput_latest_runs(V.throughput_records(again)) == ["g1.jsonl", "c1.jsonl", "g2.jsonl"]


def test_throughput_ratio_pairs_the_loops_of_one_run_on_one_device():
    tp = V.throughput_records(throughput_frame())
    ratios = V.throughput_ratios(tp)
    got = {(r.device_name, r.views): r.ratio for r in ratios.itertuples()}
    # CPU B V=4: its peer ran out of memory -> no ratio; GPU C: no ok peer -> none
    assert got == pytest.approx({("CPU B", 2): 300 / 200, ("GPU A", 2): 9000 / 6000, ("GPU A", 4): 4000 / 5000})
    # a peer measured in another run, or on another device, is never the partner
    other = pd.DataFrame([tp_row("sslbench", "GPU A", "g3.jsonl", 200, 8000.0),
                          tp_row("peer", "GPU A", "g4.jsonl", 201, 4000.0),
                          tp_row("peer", "GPU C", "g3.jsonl", 202, 2000.0)])
    assert V.throughput_ratios(V.throughput_records(other)).empty
    # two runs appended to one file: each sslbench measurement takes the peer nearest in time
    appended = pd.DataFrame([tp_row("sslbench", "GPU A", "g.jsonl", 0, 900.0),
                             tp_row("peer", "GPU A", "g.jsonl", 1, 300.0),
                             tp_row("sslbench", "GPU A", "g.jsonl", 1000, 800.0),
                             tp_row("peer", "GPU A", "g.jsonl", 1001, 400.0)])
    assert V.throughput_ratios(V.throughput_records(appended))["ratio"].tolist() == [3.0, 2.0]


def test_throughput_phase_split_per_device():
    tp = V.throughput_records(throughput_frame())
    splits = V.throughput_phases(V.throughput_latest(V.throughput_ok(tp)))
    assert [s["device"] for s in splits] == ["CPU B", "GPU A", "GPU C"]
    gpu = splits[1]
    assert gpu["loop"] == ["sslbench", "peer", "sslbench", "peer"]
    assert gpu["case"] == ["resnet18_cifar B=512 V=2"] * 2 + ["resnet18_cifar B=512 V=4"] * 2
    assert gpu["phases"]["augment"] == [2.0, None, 2.0, None]  # the peer augments in its workers
    assert gpu["phases"]["fwd_bwd"] == [3.0] * 4 and gpu["worker_augment_ms"] == [None, 9.0, None, 9.0]
    for i, step in enumerate(gpu["step_ms"]):  # the phases tile the step
        assert sum(v[i] or 0.0 for v in gpu["phases"].values()) == pytest.approx(step)


def test_accuracy_series_variant_rank_within_its_regularizer():
    """The line style's ``index`` is the variant's rank among its regularizer's variants (on every device), as
    the former per-line scan gave: sorted(variants of that regularizer).index(variant)."""
    rows = []
    for i, (reg, variant, dev) in enumerate([("vic", "vic (lr=0.1)", "cpu"), ("vic", "vic (lr=0.03)", "gpu"),
                                             ("vic", "vic (lr=0.3)", "cpu"), ("bt", "bt", "gpu"),
                                             ("bt", "bt", "cpu"), ("vic", "vic (lr=0.03)", "cpu")]):
        rows.append({"regularizer": reg, "variant": variant, "device_name": dev, "views": 2 + i % 2,
                     "linear_top1": 50.0 + i})
    ok = pd.DataFrame(rows)
    lines = V.accuracy_series(ok, "views", "linear_top1")
    want = {(ln["regularizer"], ln["variant"]):
            sorted(ok.loc[ok["regularizer"] == ln["regularizer"], "variant"].unique()).index(ln["variant"])
            for ln in lines}
    assert {(ln["regularizer"], ln["variant"]): ln["index"] for ln in lines} == want
    assert want[("vic", "vic (lr=0.3)")] == 2 and len(lines) == 6  # vic (lr=0.03) on two devices
