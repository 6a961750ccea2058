"""sslbench.analysis and `sslbench analyze`: exponents and crossovers recovered from data with known laws, the
loaders on small fixture files written in each tool's format, the tables and the command line."""

import io
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import results_fixtures as F
from sslbench import analysis as A
from sslbench.cli import main as cli_main
from sslbench.records import append_record, make_record, read_records, to_dataframe

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return F.write_results(tmp_path_factory.mktemp("analysis") / "results")


@pytest.fixture(scope="module")
def df(results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the fixture's corrupt line
        return A.load_results(results)


# ---------------------------------------------------------------------------------------------------------------
# Power laws
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [2.0, 1.0, 1.5, 3.0, 0.5])
def test_fit_power_law_recovers_a_known_exponent_under_noise(alpha):
    rng = np.random.default_rng(0)
    x = np.array([64, 128, 256, 512, 1024, 2048, 4096], dtype=float)
    c = 3e-9
    y = c * x ** alpha * np.exp(rng.normal(0, 0.01, x.size))  # 1 % multiplicative noise
    fit = A.fit_power_law(x, y)
    assert fit.exponent == pytest.approx(alpha, abs=0.01)
    assert fit.prefactor == pytest.approx(c, rel=0.1)
    assert fit.r2 > 0.999 and fit.n == x.size
    assert fit(1000.0) == pytest.approx(c * 1000.0 ** alpha, rel=0.05)


def test_fit_power_law_is_exact_without_noise_and_needs_min_points():
    x = [10, 20, 40]
    fit = A.fit_power_law(x, [5 * v ** 2 for v in x])
    assert fit.exponent == pytest.approx(2.0, abs=1e-12) and fit.prefactor == pytest.approx(5.0, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0)
    # two distinct x (repeated points do not count twice), zeros and NaN dropped
    few = A.fit_power_law([10, 10, 20, 0, 40], [1, 1.1, 2, 5, math.nan])
    assert math.isnan(few.exponent) and math.isnan(few.r2) and few.n == 3
    assert A.fit_power_law([10, 20], [1, 2], min_points=2).exponent == pytest.approx(1.0)
    with pytest.raises(ValueError, match="min_points"):
        A.fit_power_law([1, 2], [1, 2], min_points=1)
    with pytest.raises(ValueError, match="differ in length"):
        A.fit_power_law([1, 2, 3], [1, 2])


def test_fit_scaling_uses_ok_points_per_group():
    rows = []
    for label, alpha in (("a", 2.0), ("b", 1.0)):
        for d in (100, 200, 400, 800):
            rows.append({"label": label, "dim": d, "time_s": 1e-6 * d ** alpha, "status": "ok"})
    rows.append({"label": "a", "dim": 1600, "time_s": 1e9, "status": "error"})  # ignored
    rows.append({"label": "a", "dim": 3200, "time_s": None, "status": "oom"})  # ignored
    rows.append({"label": "c", "dim": 100, "time_s": 1.0, "status": "ok"})  # one point: no fit
    fits = A.fit_scaling(pd.DataFrame(rows), x="dim", y="time_s", by=["label"]).set_index("label")
    assert fits.loc["a", "exponent"] == pytest.approx(2.0) and fits.loc["a", "n"] == 4
    assert fits.loc["a", "x_max"] == 800
    assert fits.loc["b", "exponent"] == pytest.approx(1.0)
    assert math.isnan(fits.loc["c", "exponent"]) and fits.loc["c", "n"] == 1
    with pytest.raises(KeyError, match="nope"):
        A.fit_scaling(pd.DataFrame(rows), by=["nope"])


def test_fit_scaling_on_the_fixture_recovers_the_laws_in_D_and_N(df):
    bench = df[df["kind"] == "regularizer_bench"]
    fits = A.fit_scaling(bench, x="dim", y="time_s", by=["label", "batch", "device_name"])
    got = {(r.label, r.batch, r.device_name): r.exponent for r in fits.itertuples()}
    for n in F.BATCHES:
        assert got[("barlow_twins[cross_correlation]", n, F.DEVICE)] == pytest.approx(2.0, abs=1e-9)
        assert got[("barlow_twins[gram]", n, F.DEVICE)] == pytest.approx(1.0, abs=1e-9)
        assert got[("vicreg", n, F.DEVICE)] == pytest.approx(1.5, abs=1e-9)
    mem = A.fit_scaling(bench, x="dim", y="memory_bytes", by=["label", "batch", "device_name"])
    assert mem.set_index("label").loc["barlow_twins[cross_correlation]", "exponent"].tolist() == \
        pytest.approx([2.0, 2.0])
    # in N (two sizes only): exponents with min_points=2
    in_n = A.fit_scaling(bench, x="batch", y="time_s", by=["label", "dim", "device_name"], min_points=2)
    gram = in_n[(in_n["label"] == "barlow_twins[gram]") & (in_n["device_name"] == F.DEVICE)]
    assert gram["exponent"].to_numpy() == pytest.approx(2.0)
    # an asymptotic fit: x_min keeps the large D only
    big = A.fit_scaling(bench, x="dim", y="time_s", by=["label"], x_min=256)
    assert (big["x_min"] >= 256).all()


# ---------------------------------------------------------------------------------------------------------------
# Crossovers
# ---------------------------------------------------------------------------------------------------------------
def _curves(**laws):
    xs = laws.pop("xs", (10, 30, 90, 270, 810))
    return pd.DataFrame([{"label": name, "dim": x, "time_s": f(x), "status": "ok"}
                         for name, f in laws.items() for x in xs])


def test_crossover_at_a_known_point_in_both_directions():
    df = _curves(quad=lambda x: x ** 2 / 100, lin=lambda x: x)  # equal at x = 100, between 90 and 270
    c = A.crossover(df, "quad", "lin")
    assert c.x == pytest.approx(100.0, rel=1e-9) and c.y == pytest.approx(100.0, rel=1e-9)
    assert (c.lower_before, c.lower_after) == ("quad", "lin")  # quad is cheaper below 100, lin above
    d = A.crossover(df, "lin", "quad")
    assert d.x == pytest.approx(100.0, rel=1e-9) and (d.lower_before, d.lower_after) == ("quad", "lin")
    # the dict form of a and b
    e = A.crossover(df, {"label": "quad"}, {"label": "lin"})
    assert e.x == pytest.approx(100.0, rel=1e-9)


def test_crossover_none_when_one_is_lower_throughout_or_ranges_do_not_overlap():
    df = _curves(a=lambda x: x, b=lambda x: 2 * x)
    assert A.crossover(df, "a", "b") is None
    apart = pd.concat([_curves(a=lambda x: x, xs=(1, 2, 3)), _curves(b=lambda x: 1 / x, xs=(10, 20))])
    assert A.crossover(apart, "a", "b") is None
    assert A.crossover(df, "a", "missing") is None


def test_crossovers_on_different_grids_and_twice():
    a = _curves(a=lambda x: x ** 2 / 100, xs=(10, 50, 250, 1250))
    b = _curves(b=lambda x: x, xs=(20, 80, 320, 1280))
    c = A.crossover(pd.concat([a, b]), "a", "b")
    assert c.x == pytest.approx(100.0, rel=0.02)  # both interpolated onto the union of the grids
    # a bump that crosses a flat line twice: up at 30, down at 300
    xs = (10, 20, 40, 100, 200, 400, 1000)
    bump = pd.DataFrame([{"label": "bump", "dim": x, "time_s": 2.0 if 30 < x < 300 else 0.5, "status": "ok"}
                         for x in xs])
    flat = _curves(flat=lambda x: 1.0, xs=xs)
    found = A.crossovers(pd.concat([bump, flat]), "bump", "flat")
    assert len(found) == 2
    assert 20 < found[0].x < 40 and found[0].lower_after == "flat"
    assert 200 < found[1].x < 400 and found[1].lower_after == "bump"


def test_crossover_table_finds_primal_dual_crossover_at_D_equals_N(df):
    table = A.crossover_table(df, x="dim", y="time_s")
    bt = table[(table["regularizer"] == "barlow_twins") & (table["device_name"] == F.DEVICE)]
    assert sorted(bt["batch"]) == list(F.BATCHES)
    for row in bt.itertuples():
        # t_cc = C N D², t_gram = C N² D: equal at D = N; the dual (gram) is faster beyond
        assert row.crossover == pytest.approx(row.batch, rel=1e-9)
        assert row.lower_below == "barlow_twins[cross_correlation]" and row.lower_above == "barlow_twins[gram]"
    # the given pairs only
    only = A.crossover_table(df, pairs=[("barlow_twins[gram]", "vicreg")])
    assert set(zip(only["a"], only["b"])) == {("barlow_twins[gram]", "vicreg")}


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------
def test_load_results_reads_every_source_into_one_frame(results):
    with pytest.warns(RuntimeWarning, match=r"skipped 1 line"):
        df = A.load_results(results)
    counts = df.groupby(["source_type", "kind"]).size().to_dict()
    n_bench = len(F.BATCHES) * (len(F.DIMS) * 3 + 1) + len(F.DIMS)
    assert counts[("jsonl", "regularizer_bench")] == n_bench  # the half-written line is skipped
    assert counts[("jsonl", "train")] == len(F.train_records())
    assert counts[("pytest_benchmark", "pytest_benchmark")] == 3
    assert counts[("asv", "asv")] == 3 * (4 + 1)
    assert "unknown" not in set(df["kind"])  # the runs' per-step logs are not records
    assert set(A.DERIVED_COLUMNS) <= set(df.columns)
    assert set(df.loc[df["kind"] == "regularizer_bench", "source"]) == {"sweeps/bench.jsonl"}
    assert pd.api.types.is_datetime64_any_dtype(df["created"])
    oom = df[df["status"] == "oom"]
    assert set(oom["dim"]) == {F.OOM_DIM} and oom["time_s"].isna().all()
    pb = df[df["kind"] == "pytest_benchmark"]
    assert set(pb["label"]) == {"simclr"} and pb["memory_bytes"].isna().all()
    assert A.fit_power_law(pb["dim"], pb["time_s"]).exponent == pytest.approx(1.0)
    assert A.fit_power_law(pb["dim"], pb["peak_bytes"]).exponent == pytest.approx(1.0)
    asv_time = df[(df["kind"] == "asv") & df["case.benchmark"].str.contains("time_")]
    assert asv_time["time_s"].notna().all()


def test_load_results_derived_columns_for_side_by_side_contenders(tmp_path):
    env = {"device_name": "X"}
    for contender in ("official_barlow_twins", "barlow_twins[cross_correlation]", "vicreg"):
        append_record(tmp_path / "sbs.jsonl", make_record("side_by_side", {"contender": contender, "dim": 8,
                      "batch": 4, "views": 2}, {"time_median_s": 1.0, "cuda_max_allocated_delta_bytes": 10,
                                               "cuda_max_allocated_bytes": 30}, env=env))
    df = A.load_results(tmp_path).set_index("label")
    assert df.loc["official_barlow_twins", ["regularizer", "impl"]].tolist() == ["barlow_twins", "official"]
    assert df.loc["barlow_twins[cross_correlation]", ["regularizer", "algorithm", "impl"]].tolist() == \
        ["barlow_twins", "cross_correlation", "sslbench"]
    assert df.loc["vicreg", "memory_bytes"] == 10 and df.loc["vicreg", "peak_bytes"] == 30
    assert set(df["memory_metric"]) == {"cuda_max_allocated_delta_bytes"}


def test_load_results_missing_or_empty_folder_gives_an_empty_frame(tmp_path):
    for root in (tmp_path / "nope", tmp_path):
        df = A.load_results(root)
        assert df.empty and {"kind", "status", "label", "dim", "time_s"} <= set(df.columns)
        assert A.scaling_table(df).empty and A.crossover_table(df).empty
        assert A.accuracy_table(df).empty and A.regressions(df).empty
        assert all(isinstance(t, pd.DataFrame) for t in A.summary(df).values())


def test_load_results_reads_the_asv_results_beside_the_folder(tmp_path):
    F.write_asv_results(tmp_path / ".asv" / "results")
    (tmp_path / "results").mkdir()
    df = A.load_results(tmp_path / "results")
    assert set(df["kind"]) == {"asv"} and len(df) == 15
    assert A.load_results(tmp_path / "results", asv=[]).empty  # explicit list replaces the default
    with pytest.warns(RuntimeWarning, match="no such asv results directory"):
        A.load_results(tmp_path / "results", asv=[tmp_path / "missing"])


def test_load_results_skips_a_broken_json_file_with_a_warning(tmp_path):
    F.write_pytest_benchmark(tmp_path / "pb" / "0001.json")
    (tmp_path / "pb" / "0002.json").write_text('{"benchmarks": [')
    (tmp_path / "other.json").write_text(json.dumps({"something": "else"}))  # not pytest-benchmark: ignored
    with pytest.warns(RuntimeWarning, match="0002.json"):
        df = A.load_results(tmp_path)
    assert len(df) == 3 and set(df["kind"]) == {"pytest_benchmark"}


def test_results_stamp_changes_when_a_file_changes(results, tmp_path):
    import shutil

    root = tmp_path / "r"
    shutil.copytree(results, root)
    before = A.results_stamp(root)
    assert before == A.results_stamp(root) and len(before) >= 5
    append_record(root / "sweeps" / "bench.jsonl", make_record("regularizer_bench", {"dim": 1}, {}, env={}))
    assert A.results_stamp(root) != before


def test_load_run_logs(results):
    logs = A.load_run_logs(results)
    assert logs["run_id"].nunique() == 2
    one = logs[logs["run_id"] == logs["run_id"].iloc[0]]
    assert list(one["event"]) == ["start"] + ["step"] * 2 + ["eval"] + ["step"] * 3 + ["end"]
    steps = one[one["event"] == "step"]
    assert steps["step"].tolist() == [1, 2, 3, 4, 5] and steps["elapsed_s"].tolist() == [1, 2, 3, 4, 5]
    assert {"loss", "invariance", "redundancy", "images_per_s", "knn_top1", "case.regularizer",
            "metrics.linear_top1"} <= set(logs.columns)
    assert set(A.find_run_logs(results)) == set(logs["run_id"])
    assert A.load_run_logs(results, run_ids=[]).empty


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------
def test_run_variants_name_what_differs_and_keep_variants_apart():
    rows = [
        {"kind": "train", "status": "ok", "case.regularizer": "vicreg", "case.hparams": {"std_coeff": 25.0},
         "case.lr": 0.03, "case.seed": s, "case.dataset": "d", "metrics.linear_top1": 80.0 + s} for s in (0, 1)
    ] + [
        {"kind": "train", "status": "ok", "case.regularizer": "vicreg", "case.hparams": {"std_coeff": 0.0},
         "case.lr": 0.03, "case.seed": 0, "case.dataset": "d", "metrics.linear_top1": 70.0},
        {"kind": "train", "status": "ok", "case.regularizer": "byol", "case.hparams": {}, "case.ema_tau": 0.0,
         "case.predictor_hidden": 0, "case.seed": 0, "case.dataset": "d", "metrics.linear_top1": 60.0},
        {"kind": "train", "status": "ok", "case.regularizer": "byol", "case.hparams": {"variance_coeff": 1.0},
         "case.ema_tau": 0.0, "case.predictor_hidden": 0, "case.seed": 0, "case.dataset": "d",
         "metrics.linear_top1": 61.0},
        {"kind": "train", "status": "ok", "case.regularizer": "sfrik", "case.hparams": {}, "case.lr": 0.1,
         "case.seed": 0, "case.dataset": "d", "metrics.linear_top1": 79.0},
    ]
    runs = pd.DataFrame(rows)
    assert A.run_variants(runs).tolist() == [
        "vicreg (std_coeff=25)", "vicreg (std_coeff=25)", "vicreg (std_coeff=0)",
        "byol (variance_coeff=0)", "byol (variance_coeff=1)", "sfrik"]
    table = A.accuracy_table(runs)
    vic = table[table["regularizer"] == "vicreg"].set_index("variant")["linear_top1"]
    assert vic.to_dict() == {"vicreg (std_coeff=0)": 70.0, "vicreg (std_coeff=25)": 80.5}  # not pooled
    assert A.run_variants(runs.iloc[:0]).empty
    # a byol record from before the predictor width was recorded is the default predictor, not another variant
    old = pd.DataFrame([{**rows[3], "case.predictor_hidden": None, "case.hparams": {}},
                        {**rows[3], "case.predictor_hidden": 512, "case.hparams": {}},
                        {**rows[3], "case.predictor_hidden": 0, "case.hparams": {}}])
    assert A.run_variants(old).tolist() == ["byol (predictor_hidden=512)"] * 2 + ["byol (predictor_hidden=0)"]


def test_accuracy_table_pools_seeds(df):
    table = A.accuracy_table(df)
    row = table[(table["regularizer"] == "vicreg") & (table["views"] == 2) & (table["fraction"] == 1.0)].iloc[0]
    assert row["runs"] == 3 and row["ok"] == 2  # the diverged run counts as a run, not in the means
    assert row["linear_top1"] == pytest.approx(82 + 2 + 2 + 0.25)  # mean of seeds 0 and 1
    assert row["linear_top1_std"] == pytest.approx(np.std([0, 0.5], ddof=1))
    assert row["init_linear_top1"] == 70.0
    assert len(table) == 2 * 2 * 2  # regularizer x views x fraction


def test_accuracy_table_keeps_device_models_apart(tmp_path):
    # one configuration run on two GPU models and two CPU models: four rows, each the mean of its own seeds
    accuracy = {("cuda", "NVIDIA H100"): (90.0, 92.0), ("cuda", "NVIDIA A100"): (80.0, 81.0),
                ("cpu", "AMD EPYC 7B13"): (70.0, 72.0), ("cpu", "Intel Xeon"): (60.0, 61.0)}
    store = tmp_path / "train.jsonl"
    for (device, model), tops in accuracy.items():
        for seed, top1 in enumerate(tops):
            append_record(store, make_record("train", {"regularizer": "vicreg", "dataset": "d", "epochs": 2,
                                                       "batch": 8, "seed": seed, "device": device},
                                             {"linear_top1": top1}, env={"device_name": model}))
    expected = {model: sum(tops) / len(tops) for (_, model), tops in accuracy.items()}
    # the frame of `sslbench analyze` (device_name derived) and the bare records (env.device_name only)
    for frame in (A.load_results(tmp_path), to_dataframe(read_records(store))):
        table = A.accuracy_table(frame)
        assert len(table) == 4 and table["runs"].tolist() == [2] * 4
        assert table.set_index("device_name")["linear_top1"].to_dict() == pytest.approx(expected)
        assert (table.groupby("device")["device_name"].nunique() == 2).all()


def test_regressions_flag_the_planted_slowdown_only(df):
    reg = A.regressions(df, threshold=1.5)
    flagged = reg[reg["change"] != ""]
    assert len(flagged) == 2
    slow = flagged[flagged["benchmark"] == F.ASV_BENCH].iloc[0]
    assert slow["change"] == "regression" and slow["commit"] == F.ASV_COMMITS[2]
    assert slow["prev_commit"] == F.ASV_COMMITS[1] and slow["ratio"] == pytest.approx(2.0 * 1.04 / 1.02)
    assert "algorithm=gram" in slow["params"] and "regularizer=barlow_twins" in slow["params"]
    acc = flagged[flagged["unit"] == "%"].iloc[0]
    assert acc["change"] == "regression" and acc["ratio"] == pytest.approx(0.5)  # lower accuracy is worse
    # series in commit order, the first commit has no ratio
    series = reg[reg["series"] == slow["series"]]
    assert list(series["commit"]) == list(F.ASV_COMMITS) and math.isnan(series["ratio"].iloc[0])
    assert (A.regressions(df, threshold=3.0)["change"] == "").all()
    with pytest.raises(ValueError, match="threshold"):
        A.regressions(df, threshold=1.0)


def test_regressions_in_date_order_even_when_files_are_not(tmp_path):
    F.write_asv_results(tmp_path / "asv", slow_commit=1)
    df = A.load_results(tmp_path)
    reg = A.regressions(df, threshold=1.5)
    flagged = reg[(reg["change"] != "") & (reg["unit"] == "seconds")]
    # the slowdown at commit 1 and the recovery at commit 2 (an improvement)
    assert flagged.set_index("commit")["change"].to_dict() == {F.ASV_COMMITS[1]: "regression",
                                                               F.ASV_COMMITS[2]: "improvement"}


def test_summary_and_format_table(df):
    tables = A.summary(df)
    from sslbench.analysis.tables import DEFAULT_TABLES

    assert list(tables) == list(DEFAULT_TABLES) == [t for t in A.SUMMARY_TABLES if t != "versus"]  # versus: asked
    assert list(A.summary(df, tables=["versus"])) == ["versus"]
    sc = tables["scaling_dim"]
    row = sc[(sc["label"] == "barlow_twins[gram]") & (sc["batch"] == 256)].iloc[0]
    assert row["alpha_time_s"] == pytest.approx(1.0) and row["dim_range"] == "64-1024"
    text = A.format_table(sc)
    assert "barlow_twins[cross_correlation]" in text and "2.000" in text
    md = A.format_table(sc, "markdown").splitlines()
    assert md[0].startswith("| kind |") and set(md[1]) <= set("|-:") and len(md) == len(sc) + 2
    back = pd.read_csv(io.StringIO(A.format_table(sc, "csv")))
    assert list(back.columns) == list(sc.columns) and len(back) == len(sc)
    with pytest.raises(ValueError, match="fmt"):
        A.format_table(sc, "html")
    with pytest.raises(ValueError, match="unknown table"):
        A.summary(df, tables=["nope"])


# ---------------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------------
def test_analyze_cli_text_markdown_csv(results, capsys):
    assert cli_main(["analyze", "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    assert "Scaling exponents in D" in out and "Crossovers in D" in out and "skipped 1 line" in err
    assert "barlow_twins[gram] lower above dim≈128" in out
    assert cli_main(["analyze", "--results", str(results), "--format", "markdown", "--tables", "regressions",
                     "--threshold", "1.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## asv changes") and "| regression |" in out and F.ASV_COMMITS[2][:10] in out
    assert cli_main(["analyze", "--results", str(results), "--format", "csv", "--tables", "scaling_dim",
                     "accuracy"]) == 0
    out = capsys.readouterr().out
    blocks = out.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["# scaling_dim", "# accuracy"]
    acc = pd.read_csv(io.StringIO(blocks[1].split("\n", 1)[1]))
    assert len(acc) == 8 and "linear_top1" in acc.columns


def test_analyze_cli_missing_and_empty_folders_explain(tmp_path, capsys):
    assert cli_main(["analyze", "--results", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["analyze", "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "No results found" in err and "sslbench bench" in err
    assert cli_main(["analyze", "--results", str(tmp_path), "--threshold", "0.9"]) == 2


def test_dashboard_cli_dry_run_binds_localhost(tmp_path, capsys):
    assert cli_main(["dashboard", "--results", str(tmp_path), "--port", "8999", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"SSLBENCH_RESULTS={tmp_path.resolve()}" in out
    assert "streamlit run" in out and str(ROOT / "dashboard" / "app.py") in out
    assert "--server.address localhost" in out and "--server.port 8999" in out
    assert cli_main(["dashboard", "--port", "0", "--dry-run"]) == 2


def test_analysis_imports_no_torch():
    code = "import sys, sslbench.analysis; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_scaling_and_crossover_tables_keep_thread_counts_apart(tmp_path):
    for threads, factor in ((1, 3.0), (2, 1.0)):
        env = {**F.ENV, "threads": threads}
        for d in F.DIMS:
            rec = F._bench_record("vicreg", None, d, 256, env=env)
            rec["metrics"]["time_median_s"] *= factor * (1 + 0.5 * (d == F.DIMS[-1]) * (threads == 1))
            append_record(tmp_path / f"t{threads}.jsonl", rec)
    table = A.scaling_table(A.load_results(tmp_path))
    assert sorted(table["threads"]) == [1, 2]
    two = table[table["threads"] == 2].iloc[0]
    assert two["alpha_time_s"] == pytest.approx(1.5)  # not bent by the one-thread series


def test_analyze_cli_dim_min_fits_the_asymptotic_regime(tmp_path, capsys):
    for d in (64, 128, 256, 512, 1024, 2048, 4096, 8192):
        rec = F._bench_record("barlow_twins", "cross_correlation", d, 256)
        rec["metrics"]["time_median_s"] = 1e-5 + 1e-10 * d ** 2  # an overhead that flattens the small sizes
        append_record(tmp_path / "overhead.jsonl", rec)
    fits = {}
    for extra in ([], ["--dim-min", "2048"]):
        assert cli_main(["analyze", "--results", str(tmp_path), "--tables", "scaling_dim", "--format", "csv",
                         *extra]) == 0
        table = pd.read_csv(io.StringIO(capsys.readouterr().out.split("\n", 1)[1]))
        fits[bool(extra)] = table["alpha_time_s"].iloc[0]
        assert table["dim_range"].iloc[0] == ("2048-8192" if extra else "64-8192")
    assert fits[False] < 1.6 and fits[True] == pytest.approx(2.0, abs=0.05)


def _asv_frame(points):
    """A load_results-like frame of one asv time benchmark over commits: points = [(value, ci_lo, ci_hi), ...]."""
    rows = []
    for i, (value, lo, hi) in enumerate(points):
        rows.append({"kind": "asv", "status": "ok", "case.benchmark": "b.T.time_x", "case.regularizer": "simclr",
                     "case.commit": f"{i:040x}", "created": f"2026-01-0{i + 1}T00:00:00+00:00",
                     "env.machine": "m", "env.asv_env": "e", "metrics.value": value, "metrics.unit": "seconds",
                     "metrics.ci_99_a": lo, "metrics.ci_99_b": hi})
    return pd.DataFrame(rows)


def test_regressions_need_confidence_intervals_apart_when_asv_gives_them():
    # 1.0 -> 1.5 with overlapping 99 % intervals: noise, not a change; 1.0 -> 1.5 with separate ones: a regression
    noisy = A.regressions(_asv_frame([(1.0, 0.6, 1.4), (1.5, 1.1, 1.9)]), threshold=1.2)
    assert list(noisy["change"]) == ["", ""] and not noisy["significant"].iloc[1]
    clear = A.regressions(_asv_frame([(1.0, 0.95, 1.05), (1.5, 1.45, 1.55)]), threshold=1.2)
    assert list(clear["change"]) == ["", "regression"] and clear["significant"].iloc[1]
    # separate intervals but a ratio inside the threshold: no change either
    small = A.regressions(_asv_frame([(1.0, 0.99, 1.01), (1.1, 1.09, 1.11)]), threshold=1.2)
    assert list(small["change"]) == ["", ""]
    # without intervals (e.g. --quick runs) the threshold alone decides
    bare = _asv_frame([(1.0, None, None), (1.5, None, None)])
    assert list(A.regressions(bare, threshold=1.2)["change"]) == ["", "regression"]


# `sslbench analyze` with bad input: one line naming the option and the fix, a non-zero exit, never a traceback
BAD_ANALYZE_ARGS = [
    (["--results", "/dev/null"], "--results /dev/null: not a folder"),
    (["--results", "{tmp}/nope"], "the results folder does not exist"),
    (["--results", "{tmp}/store.jsonl"], "not a folder; pass the folder that holds the result files, e.g. "
                                         "--results {tmp}"),
    (["--asv", "{tmp}/no-asv"], "--asv {tmp}/no-asv: no such asv results folder"),
    (["--threshold", "nan"], "--threshold nan: must be a finite factor > 1"),
    (["--threshold", "inf"], "--threshold inf: must be a finite factor > 1"),
    (["--threshold", "1"], "--threshold 1.0: must be a finite factor > 1"),
    (["--min-points", "1"], "--min-points 1: must be at least 2"),
    (["--dim-min", "-5"], "--dim-min -5.0: must be a positive size"),
    (["--dim-min", "nan"], "--dim-min nan: must be a positive size"),
]


@pytest.mark.parametrize("argv, message", BAD_ANALYZE_ARGS)
def test_analyze_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, capsys, argv, message):
    store = tmp_path / "store.jsonl"
    append_record(store, make_record("k", {}, {}, env={}))
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "--results" not in argv:
        argv = ["--results", str(tmp_path), *argv]
    assert cli_main(["analyze", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sslbench analyze: "), captured.err
    assert message.format(tmp=tmp_path) in lines[0] and captured.out == ""


def test_analyze_a_failure_while_reading_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "r.jsonl").write_text("")

    def broken(*args, **kwargs):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(A, "load_results", broken)
    assert cli_main(["analyze", "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sslbench analyze: could not analyze the results in {tmp_path} (OverflowError: int too large to "
                   "convert to float); the file at fault can be moved aside and the command rerun"]


@pytest.mark.parametrize("raw", ["1e400", "1" + "0" * 400])
def test_analyze_reads_a_store_with_a_number_out_of_range(tmp_path, capsys, raw):
    good = [F._bench_record("vicreg", None, d, 128) for d in F.DIMS]
    lines = [json.dumps(r) for r in good]
    lines[2] = lines[2].replace(f'"time_median_s": {good[2]["metrics"]["time_median_s"]!r}', f'"time_median_s": {raw}')
    assert raw in lines[2]
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    assert cli_main(["analyze", "--results", str(tmp_path), "--tables", "inventory", "scaling_dim"]) == 0
    captured = capsys.readouterr()
    assert (f"warning: {tmp_path / 's.jsonl'}: number(s) out of range set to null (metrics.time_median_s) (line 3)"
            in captured.err)
    assert "vicreg" in captured.out and "1.500" in captured.out  # the other four points still give the exponent
