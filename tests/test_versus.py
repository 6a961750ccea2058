"""``sslbench analyze``'s versus table (sslbench.analysis.versus): each variant against the baselines at the same
setting, with its Welch interval, the equivalence test and a verdict. The figures are checked against scipy on
made-up seeds; the grouping, the deduplication of a run recorded twice and the command line on small stores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sslbench import analysis as A
from sslbench.analysis import versus as V
from sslbench.analysis.claims import stats
from sslbench.cli import main
from sslbench.records import append_record, make_record

CASE = {"dataset": "fashion_mnist", "fraction": 0.5, "dim": 512, "views": 2, "batch": 256, "epochs": 4,
        "device": "cpu"}


def _runs(store, reg, linear, knn=None, init=80.0, model="Xeon", **case):
    for seed, lin in enumerate(linear):
        metrics = {"linear_top1": lin, "init_linear_top1": init}
        if knn is not None:
            metrics.update(knn_top1=knn[seed], init_knn_top1=init - 10)
        append_record(store, make_record("train", {**CASE, **case, "regularizer": reg, "seed": seed}, metrics,
                                         env={"device_name": model}))


def _scipy(test, ref, margin):
    """Welch's 95 % interval and the TOST p-value, from scipy (the reference)."""
    a, b = np.asarray(test, float), np.asarray(ref, float)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    d = a.mean() - b.mean()
    half = sps.t.ppf(0.975, df) * se
    p = max(sps.t.sf((d + margin) / se, df), sps.t.cdf((d - margin) / se, df))
    return d, d - half, d + half, p


@pytest.mark.parametrize("test, ref, margin, says", [
    ([88.1, 88.3, 88.2], [88.4, 88.2, 88.3], 1.0, "comparable (within ±1)"),
    ([88.6, 88.7, 88.65], [88.1, 88.15, 88.2], 1.0, "comparable (within ±1, higher)"),
    ([91.0, 91.2, 91.1], [88.1, 88.3, 88.2], 1.0, "better (beyond +1)"),
    ([84.0, 84.3, 84.1], [88.1, 88.3, 88.2], 1.0, "worse (beyond -1)"),
    ([87.0, 88.5, 89.9], [88.1, 88.3, 88.2], 1.0, "inconclusive: ~"),
])
def test_verdict_and_figures_against_scipy(test, ref, margin, says):
    c = stats.welch(test, ref)
    d, lo, hi, p_ref = _scipy(test, ref, margin)
    assert (c.diff, c.lo, c.hi) == pytest.approx((d, lo, hi), rel=1e-6)
    text, p = V.verdict(c, margin)
    assert p == pytest.approx(p_ref, rel=1e-6, abs=1e-12)
    assert text.startswith(says), text
    if says.startswith("inconclusive"):
        n = int(text.split("~")[1].split(" ")[0])
        assert n == max(stats.seeds_to_settle_equivalence(c, margin), 4)  # the report's rule (test_stats checks it)


def test_the_margins_are_the_reports():
    from sslbench.analysis.claims.common import ACC_MARGIN, KNN_MARGIN

    assert {m: margin for m, _, margin in V.METRICS} == {"linear_top1": ACC_MARGIN, "knn_top1": KNN_MARGIN}


def test_one_seed_gives_no_interval():
    text, p = V.verdict(stats.welch([88.0], [87.0, 87.5]), 1.0)
    assert text.startswith("inconclusive: 2 seeds per arm") and math.isnan(p)


def test_the_table_compares_each_variant_with_the_baselines_of_its_setting(tmp_path):
    store = tmp_path / "s.jsonl"
    _runs(store, "barlow_twins", [88.3, 88.1, 88.5], knn=[80.9, 80.5, 81.2])
    _runs(store, "vicreg", [88.4, 88.2, 88.6], knn=[81.0, 80.8, 81.4])
    _runs(store, "mypkg.loss:MyLoss", [88.0, 88.2, 87.9], knn=[79.0, 79.5, 79.2])
    _runs(store, "mypkg.loss:MyLoss", [70.0, 71.0], dim=2048)  # no baseline at D = 2048: no row
    _runs(store, "vicreg", [85.0, 85.5], model="NVIDIA H100", device="cuda")  # another machine: apart
    t = V.versus_table(A.load_results(tmp_path, asv=[]))
    pairs = list(zip(t["variant"], t["baseline"], t["metric"]))
    assert pairs == [("barlow_twins", "vicreg", "linear"), ("barlow_twins", "vicreg", "kNN"),  # one direction
                     ("mypkg.loss:MyLoss", "barlow_twins", "linear"), ("mypkg.loss:MyLoss", "barlow_twins", "kNN"),
                     ("mypkg.loss:MyLoss", "vicreg", "linear"), ("mypkg.loss:MyLoss", "vicreg", "kNN")]
    row = t[(t["variant"] == "mypkg.loss:MyLoss") & (t["baseline"] == "vicreg") & (t["metric"] == "linear")].iloc[0]
    d, lo, hi, p = _scipy([88.0, 88.2, 87.9], [88.4, 88.2, 88.6], 1.0)
    assert row["seeds"] == "3/3" and row["delta"] == pytest.approx(d) and row["tost_p"] == pytest.approx(p)
    assert row["ci95"] == f"[{lo:+.2f}, {hi:+.2f}]" and row["margin"] == 1.0
    assert set(t["dim"]) == {512} and set(t["device_name"]) == {"Xeon"}
    # baselines named on the command line's terms: a regularizer, or one variant's label
    t2 = V.versus_table(A.load_results(tmp_path, asv=[]), baselines=("mypkg.loss:MyLoss",))
    assert set(t2["baseline"]) == {"mypkg.loss:MyLoss"} and set(t2["variant"]) == {"barlow_twins", "vicreg"}


def test_a_run_recorded_in_two_stores_counts_once(tmp_path):
    """share_arms.py copies a run's record into another study's store: the same run id, one seed."""
    _runs(tmp_path / "a.jsonl", "barlow_twins", [88.3, 88.1, 88.5])
    _runs(tmp_path / "a.jsonl", "vicreg", [88.4, 88.2, 88.6])
    _runs(tmp_path / "b.jsonl", "barlow_twins", [88.3, 88.1, 88.5])  # the same three runs again
    df = A.load_results(tmp_path, asv=[])
    t = V.versus_table(df)
    assert t["seeds"].tolist() == ["3/3"]
    acc = A.accuracy_table(df)
    assert acc.set_index("regularizer")["runs"].to_dict() == {"barlow_twins": 3, "vicreg": 3}
    from sslbench.analysis import views

    assert len(views.accuracy_runs(df)) == 6  # the dashboard's accuracy page too
    # the same case on another machine is another run
    _runs(tmp_path / "c.jsonl", "barlow_twins", [87.0, 87.1, 87.2], model="AMD EPYC")
    acc = A.accuracy_table(A.load_results(tmp_path, asv=[]))
    assert sorted(acc["runs"]) == [3, 3, 3] and set(acc["device_name"]) == {"Xeon", "AMD EPYC"}


def test_below_the_network_at_initialisation_is_said(tmp_path):
    store = tmp_path / "s.jsonl"
    _runs(store, "barlow_twins", [70.1, 70.2, 70.3], init=75.0)
    _runs(store, "vicreg", [70.0, 70.2, 70.1], init=75.0)
    t = V.versus_table(A.load_results(tmp_path, asv=[]))
    assert t["verdict"].iloc[0].endswith("; both below the network at initialisation (75.00)")


def test_analyze_prints_the_table_and_escapes_a_hostile_name(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    _runs(store, "vicreg", [88.4, 88.2, 88.6])
    _runs(store, "<img src=x onerror=alert(1)>", [88.0, 88.2, 87.9])
    assert main(["analyze", "--results", str(tmp_path), "--tables", "versus", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "## Each variant against the baselines" in out and "<img" not in out and "&lt;img" in out
    assert main(["analyze", "--results", str(tmp_path), "--tables", "versus", "--baselines", "nothing"]) == 0
    assert "(none)" in capsys.readouterr().out
