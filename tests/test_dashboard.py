"""The Streamlit dashboard driven with ``streamlit.testing.v1.AppTest`` on small fixture results: every page runs
without an exception, the expected plotly charts exist with the expected traces and log axes, sidebar filters
change them, and an empty or missing results folder shows how to produce results."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from streamlit.testing.v1 import AppTest  # noqa: E402

import results_fixtures as F  # noqa: E402
from sslbench.records import append_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return F.write_results(tmp_path_factory.mktemp("dashboard") / "results")


def run_app(monkeypatch, root, page=None) -> AppTest:
    monkeypatch.setenv("SSLBENCH_RESULTS", str(root))
    monkeypatch.delenv("SSLBENCH_ASV", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    if page:
        at.query_params["page"] = page
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """The plotly figures on the page, by their title."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[spec["layout"]["title"]["text"]] = spec
    return out


def names(spec: dict) -> list[str]:
    return [t.get("name") for t in spec["data"]]


def trace(spec: dict, prefix: str) -> dict:
    found = [t for t in spec["data"] if str(t.get("name", "")).startswith(prefix)]
    assert len(found) == 1, (prefix, names(spec))
    return found[0]


def widget(at: AppTest, kind: str, label: str):
    found = [w for w in getattr(at.sidebar, kind) if w.label == label]
    assert found, f"no sidebar {kind} {label!r}: {[w.label for w in getattr(at.sidebar, kind)]}"
    return found[0]


def only_chart(at: AppTest) -> dict:
    figs = charts(at)
    assert len(figs) == 1, list(figs)
    return next(iter(figs.values()))


# ---------------------------------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------------------------------
def test_scaling_page_log_log_fitted_exponents_oom_and_crossover(monkeypatch, results):
    at = run_app(monkeypatch, results)
    assert at.sidebar.radio(key="page").value == "Scaling"
    widget(at, "selectbox", "N (fixed)").set_value(256)
    spec = only_chart(rerun(at))
    assert spec["layout"]["xaxis"]["type"] == "log" and spec["layout"]["yaxis"]["type"] == "log"
    assert "N=256" in spec["layout"]["title"]["text"]
    labels = names(spec)
    # one line per regularizer/algorithm with the fitted exponent (the fixture's laws: D², D, D^1.5)
    for expected in ("barlow_twins[cross_correlation]  (α=2.00)", "barlow_twins[gram]  (α=1.00)",
                     "vicreg  (α=1.50)"):
        assert expected in labels
    cc = trace(spec, "barlow_twins[cross_correlation]")
    assert cc["x"] == list(F.DIMS) and cc["mode"] == "lines+markers"
    assert cc["y"][0] == pytest.approx(F.bench_time("cross_correlation", 64, 256) * 1e3)  # in ms
    assert "error_y" in cc and cc["error_y"]["array"][0] > 0  # the IQR
    # the OOM case: a distinct marker at its D
    oom = trace(spec, "out of memory")
    assert oom["x"] == [F.OOM_DIM] and oom["marker"]["symbol"] == "x"
    assert oom["y"][0] > max(max(t["y"]) for t in spec["data"] if t.get("name", "").endswith(")") and "α" in t["name"])
    # the crossover of the primal and dual forms at D = N, annotated
    star = trace(spec, "crossover at D≈256")
    assert star["x"][0] == pytest.approx(256, rel=1e-6) and star["marker"]["symbol"] == "star"
    assert "barlow_twins[gram] lower beyond" in star["name"]
    assert any("Crossover" in m.value and "256" in m.value for m in at.markdown)


def test_scaling_filters_change_the_traces(monkeypatch, results):
    at = run_app(monkeypatch, results)
    before = names(only_chart(at))
    assert any(n.startswith("vicreg") for n in before)
    widget(at, "multiselect", "Regularizers").set_value(["barlow_twins"])
    after = names(only_chart(rerun(at)))
    assert not any(n.startswith("vicreg") for n in after) and any(n.startswith("barlow_twins[gram]") for n in after)
    # the memory metric: other exponents (4 D², 4 N² D / 64), another axis title, still log-log
    widget(at, "radio", "Metric").set_value("memory_bytes")
    spec = only_chart(rerun(at))
    assert "MiB" in spec["layout"]["yaxis"]["title"]["text"] and spec["layout"]["yaxis"]["type"] == "log"
    assert "barlow_twins[cross_correlation]  (α=2.00)" in names(spec) and "barlow_twins[gram]  (α=1.00)" in names(spec)
    # no crossover annotation when none is chosen
    widget(at, "selectbox", "Annotate the crossover of").set_value("(none)")
    assert not any(n.startswith("crossover") for n in names(only_chart(rerun(at))))
    # against N: two batch sizes only, below the minimum of points for a fit
    widget(at, "radio", "Metric").set_value("time_s")
    widget(at, "radio", "Scale in").set_value("batch")
    spec = only_chart(rerun(at))
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("N")
    assert all("too few points" in n for n in names(spec) if "α" in n)
    widget(at, "number_input", "Fit: minimum points").set_value(2)
    spec = only_chart(rerun(at))
    assert "barlow_twins[gram]  (α=2.00)" in names(spec)  # C N² D


def test_scaling_device_and_record_kind_filters(monkeypatch, results):
    at = run_app(monkeypatch, results)
    widget(at, "multiselect", "Device").set_value(["Fixture GPU"])
    spec = only_chart(rerun(at))
    assert [n for n in names(spec)] == ["vicreg  (α=1.50)"] and "V=4" in spec["layout"]["title"]["text"]
    widget(at, "multiselect", "Device").set_value([])
    rerun(at)
    assert not charts(at) and any("device" in w.value for w in at.warning)
    widget(at, "selectbox", "Records").set_value("pytest_benchmark")
    widget(at, "multiselect", "Device").set_value([F.DEVICE])
    spec = only_chart(rerun(at))
    assert names(spec) == ["simclr  (α=1.00)"]


# ---------------------------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------------------------
def test_accuracy_page_keeps_hyper_parameter_variants_apart(monkeypatch, tmp_path):
    """VICReg with and without its variance term are two series, not one pooled mean."""
    root = F.write_results(tmp_path / "results")
    from sslbench.records import make_record

    for views in (2, 4):
        for seed in (0, 1):
            case = {"regularizer": "vicreg", "dataset": "fashion_mnist", "fraction": 1.0, "dim": 128, "views": views,
                    "batch": 256, "epochs": 2, "seed": seed, "backbone": "convnet", "device": "cpu",
                    "hparams": {"lambd": 0.005, "std_coeff": 0.0}}
            append_record(root / "variants.jsonl", make_record("train", case, {
                "steps": 100, "train_time_s": 40.0, "linear_top1": 60.0 + seed, "knn_top1": 50.0,
                "init_linear_top1": 70.0, "init_knn_top1": 60.0}, env=F.ENV))
    for rec in F.train_records():  # the fixture's vicreg runs state their std_coeff (25, the default)
        if rec["case"]["regularizer"] == "vicreg" and rec["status"] == "ok":
            rec["case"]["hparams"]["std_coeff"] = 25.0
            append_record(root / "variants.jsonl", rec)
    at = run_app(monkeypatch, root, page="Accuracy")
    widget(at, "selectbox", "Study").set_value("(all studies)")  # both stores; by default it opens on one
    acc = next(s for t, s in charts(rerun(at)).items() if t.startswith("linear-probe top-1 (%) vs V"))
    assert {"vicreg (std_coeff=0)", "vicreg (std_coeff=25)"} <= set(names(acc))
    assert trace(acc, "vicreg (std_coeff=0)")["y"] == pytest.approx([60.5, 60.5])
    assert trace(acc, "vicreg (std_coeff=0)")["line"]["dash"] != trace(acc, "vicreg (std_coeff=25)")["line"]["dash"]


def test_accuracy_page_against_views_fraction_and_the_floor(monkeypatch, results):
    at = run_app(monkeypatch, results, page="Accuracy")
    figs = charts(at)
    assert len(figs) == 2
    acc = next(s for t, s in figs.items() if t.startswith("linear-probe top-1 (%) vs V"))
    assert set(names(acc)) == {"barlow_twins", "vicreg", "at initialisation (floor)"}
    assert acc["layout"]["xaxis"]["type"] == "linear"
    bt = trace(acc, "barlow_twins")
    assert bt["x"] == [2, 4]
    frac = widget(at, "selectbox", "data fraction (fixed)").value
    assert frac == 1.0  # all the data by default
    assert bt["y"] == pytest.approx([80 + v + 2 * frac + 0.25 for v in (2, 4)])  # mean over the two seeds
    assert trace(acc, "at initialisation")["y"] == [70.0, 70.0]
    tta = next(s for t, s in figs.items() if t.startswith("time to accuracy"))
    assert tta["layout"]["xaxis"]["type"] == "log" and "at initialisation (floor)" in names(tta)
    assert len(at.dataframe) == 1
    # kNN instead of the linear probe
    widget(at, "radio", "Accuracy").set_value("knn_top1")
    knn = next(s for t, s in charts(rerun(at)).items() if t.startswith("kNN top-1"))
    assert trace(knn, "barlow_twins")["y"] == pytest.approx([y - 5 for y in bt["y"]])
    assert trace(knn, "at initialisation")["y"] == [60.0, 60.0]
    # against the data set fraction, on a log axis
    widget(at, "radio", "Against").set_value("fraction")
    figs = charts(rerun(at))
    spec = next(s for t, s in figs.items() if " vs data fraction" in t)
    assert trace(spec, "vicreg")["x"] == [0.5, 1.0] and spec["layout"]["xaxis"]["type"] == "log"
    widget(at, "multiselect", "Regularizers").set_value(["vicreg"])
    spec = next(s for t, s in charts(rerun(at)).items() if " vs data fraction" in t)
    assert set(names(spec)) == {"vicreg", "at initialisation (floor)"}


def _train_record(study_steps, seed, views, *, linear, env=None, device="cpu", epochs=1, fraction=0.1):
    from sslbench.records import make_record

    case = {"regularizer": "barlow_twins", "dataset": "fashion_mnist", "fraction": fraction, "dim": 128,
            "views": views, "batch": 256, "epochs": epochs, "seed": seed, "backbone": "convnet", "device": device,
            "hparams": {"lambd": 0.005}}
    return make_record("train", case, {"steps": study_steps, "train_time_s": study_steps / 10, "linear_top1": linear,
                                       "knn_top1": linear - 5, "init_linear_top1": 70.0, "init_knn_top1": 60.0},
                       env=env or F.ENV)


def test_accuracy_page_opens_on_the_study_with_the_most_training(monkeypatch, tmp_path):
    """Two studies: many 1-epoch runs on a tenth of the data (near the floor) and fewer 8-epoch runs on all of it.
    The page opens on the second (more samples seen per run), and the first can still be chosen."""
    root = tmp_path / "results"
    for seed in range(4):
        for views in (2, 4):
            append_record(root / "studies" / "short.jsonl", _train_record(23, seed, views, linear=70.5))
    for views in (2, 4):
        append_record(root / "studies" / "long.jsonl",
                      _train_record(1872, 0, views, linear=80.0 + views, epochs=8, fraction=1.0))
    at = run_app(monkeypatch, root, page="Accuracy")
    study = widget(at, "selectbox", "Study")
    assert study.value == "studies/long.jsonl"
    assert study.options[0].startswith("studies/long.jsonl") and study.options[-1] == "(all studies)"
    acc = next(s for t, s in charts(at).items() if t.startswith("linear-probe top-1 (%) vs V"))
    assert trace(acc, "barlow_twins")["y"] == pytest.approx([82.0, 84.0])
    study.set_value("studies/short.jsonl")
    acc = next(s for t, s in charts(rerun(at)).items() if t.startswith("linear-probe top-1 (%) vs V"))
    assert trace(acc, "barlow_twins")["y"] == pytest.approx([70.5, 70.5])


def test_accuracy_page_shows_gpu_runs_beside_cpu_runs(monkeypatch, tmp_path):
    root = tmp_path / "results"
    for seed in (0, 1):
        for views in (2, 4):
            append_record(root / "study.jsonl", _train_record(100, seed, views, linear=70.0 + views + seed))
            append_record(root / "study.jsonl", _train_record(100, seed, views, linear=80.0 + views + seed,
                                                              env=F.GPU_ENV, device="cuda"))
    at = run_app(monkeypatch, root, page="Accuracy")
    assert widget(at, "multiselect", "Devices").value == sorted(["Fixture CPU", "Fixture GPU"])
    acc = next(s for t, s in charts(at).items() if t.startswith("linear-probe top-1 (%) vs V"))
    assert trace(acc, "barlow_twins @ Fixture CPU")["y"] == pytest.approx([72.5, 74.5])  # never the pooled 77.5
    assert trace(acc, "barlow_twins @ Fixture GPU")["y"] == pytest.approx([82.5, 84.5])
    assert trace(acc, "barlow_twins @ Fixture CPU")["marker"]["symbol"] != \
        trace(acc, "barlow_twins @ Fixture GPU")["marker"]["symbol"]
    widget(at, "multiselect", "Devices").set_value(["Fixture GPU"])
    acc = next(s for t, s in charts(rerun(at)).items() if t.startswith("linear-probe top-1 (%) vs V"))
    assert set(names(acc)) == {"barlow_twins", "at initialisation (floor)"}


# ---------------------------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------------------------
def _throughput_record(loop, views, ips, *, env=None, status="ok", message=None):
    """A record laid out as benchmarks/train_throughput.py writes one (its case keys and figures)."""
    from sslbench.records import make_record

    env = env or F.ENV
    case = {"loop": loop, "backbone": "convnet", "batch": 64, "views": views, "image_shape": [3, 32, 32],
            "regularizer": "barlow_twins", "projector": "512-128", "optimizer": "lars",
            "device": "cuda" if env is F.GPU_ENV else "cpu", "amp": "off", "augment": "cifar"}
    case.update({"compile": False} if loop == "sslbench" else {"workers": 1})
    metrics = {}
    if status == "ok":
        step_ms = 64 / ips * 1e3
        phases = {"data_ms": 0.1 * step_ms, "augment_ms": 0.2 * step_ms if loop == "sslbench" else None,
                  "fwd_bwd_ms": (0.6 if loop == "sslbench" else 0.8) * step_ms, "optimizer_ms": 0.1 * step_ms}
        metrics = {**phases, "step_ms": step_ms, "images_per_s": ips, "view_images_per_s": ips * views,
                   "worker_augment_ms": 7.0 if loop == "peer" else None, "flops_per_step": 1e9,
                   "tflops": 1e9 / (step_ms / 1e3) / 1e12, "peak_tflops": 1.0,
                   "fraction_of_peak": 1e9 / (step_ms / 1e3) / 1e12 / 1.0}
    extra = {"warmup_steps": 2, "timed_steps": 3, "device_name": env["device_name"]}
    return make_record("train_throughput", case, metrics, status, env=env, message=message, extra=extra)


def _throughput_store(root: Path) -> Path:
    cpu = root / "throughput" / "fixture-cpu-20261130-100000.jsonl"
    gpu = root / "throughput" / "fixture-gpu-20261130-110000.jsonl"
    for loop, v, ips in (("sslbench", 2, 600.0), ("peer", 2, 300.0), ("sslbench", 4, 400.0)):
        append_record(cpu, _throughput_record(loop, v, ips))
    append_record(cpu, _throughput_record("peer", 4, None, status="oom", message="out of memory"))
    for loop, v, ips in (("sslbench", 2, 9000.0), ("peer", 2, 6000.0), ("sslbench", 4, 5000.0),
                         ("peer", 4, 5000.0)):
        append_record(gpu, _throughput_record(loop, v, ips, env=F.GPU_ENV))
    # an ok record whose images/s no float can hold (1e400): set to null while reading, listed, not plotted
    poisoned = json.dumps(_throughput_record("peer", 8, 123.0)).replace('"images_per_s": 123.0',
                                                                        '"images_per_s": 1e400')
    with open(cpu, "a") as f:
        f.write(poisoned + "\n")
    return root


def test_throughput_page_devices_side_by_side_ratio_phases_and_failures(monkeypatch, tmp_path):
    root = _throughput_store(tmp_path / "results")
    at = run_app(monkeypatch, root, page="Throughput")
    assert not at.error, [e.value for e in at.error]
    figs = charts(at)
    assert set(figs) == {"training throughput (images/s)", "fraction of peak (%)",
                         "sslbench / peer (images/s, same run, same device)",
                         "time per step by phase (ms) on Fixture CPU", "time per step by phase (ms) on Fixture GPU"}
    ips = figs["training throughput (images/s)"]
    cases = ["convnet B=64 V=2", "convnet B=64 V=4"]
    # one bar series per loop and device: the CPU's and the GPU's figures side by side, never averaged
    assert trace(ips, "sslbench @ Fixture CPU")["x"] == cases
    assert trace(ips, "sslbench @ Fixture CPU")["y"] == pytest.approx([600.0, 400.0])
    assert trace(ips, "sslbench @ Fixture GPU")["y"] == pytest.approx([9000.0, 5000.0])
    assert trace(ips, "peer @ Fixture CPU")["y"][0] == pytest.approx(300.0)
    assert trace(ips, "peer @ Fixture CPU")["y"][1] is None  # the OOM is a gap, not a zero
    peak = figs["fraction of peak (%)"]
    # FLOPs per step / step time / peak: 1e9 × 9000 / 64 per second against 1 TFLOP/s
    assert trace(peak, "sslbench @ Fixture GPU")["y"][0] == pytest.approx(100 * 1e9 * 9000 / 64 / 1e12)
    ratio = figs["sslbench / peer (images/s, same run, same device)"]
    assert trace(ratio, "Fixture CPU")["y"][0] == pytest.approx(2.0) and trace(ratio, "Fixture CPU")["y"][1] is None
    assert trace(ratio, "Fixture GPU")["y"] == pytest.approx([1.5, 1.0])
    phases = figs["time per step by phase (ms) on Fixture GPU"]
    assert phases["layout"]["barmode"] == "stack" and names(phases) == ["data", "augment", "fwd_bwd", "optimizer"]
    fb = trace(phases, "fwd_bwd")
    assert fb["x"] == [[cases[0], cases[0], cases[1], cases[1]], ["sslbench", "peer", "sslbench", "peer"]]
    assert fb["y"] == pytest.approx([0.6 * 64e3 / 9000, 0.8 * 64e3 / 6000, 0.6 * 64e3 / 5000, 0.8 * 64e3 / 5000])
    assert trace(phases, "augment")["y"][1] is None  # the peer augments in its workers
    # the OOM and the poisoned record are listed
    unplotted = [d for d in at.dataframe if "why" in d.value.columns]
    assert len(unplotted) == 1
    assert sorted(unplotted[0].value["why"]) == ["ok, but no finite images/s", "oom: out of memory"]
    # one device only: its name moves to the titles
    widget(at, "multiselect", "Devices").set_value(["Fixture GPU"])
    figs = charts(rerun(at))
    ips = figs["training throughput (images/s) on Fixture GPU"]
    assert names(ips) == ["sslbench", "peer"]


def test_throughput_page_default_runs_are_the_latest_of_each_device(monkeypatch, tmp_path):
    root = _throughput_store(tmp_path / "results")
    older = root / "throughput" / "fixture-gpu-20261101-090000.jsonl"
    rec = _throughput_record("sslbench", 2, 1.0, env=F.GPU_ENV)
    rec["created"] = "2026-11-01T09:00:00+00:00"
    append_record(older, rec)
    at = run_app(monkeypatch, root, page="Throughput")
    runs = widget(at, "multiselect", "Runs (files)")
    assert runs.options[-1] == "throughput/fixture-gpu-20261101-090000.jsonl"
    assert sorted(runs.value) == ["throughput/fixture-cpu-20261130-100000.jsonl",
                                  "throughput/fixture-gpu-20261130-110000.jsonl"]
    runs.set_value(runs.value + ["throughput/fixture-gpu-20261101-090000.jsonl"])
    ips = charts(rerun(at))["training throughput (images/s)"]
    assert trace(ips, "sslbench @ Fixture GPU")["y"][0] == pytest.approx(9000.0)  # the latest of the two
    assert any("measured more than once" in c.value for c in at.caption)


# ---------------------------------------------------------------------------------------------------------------
# Regressions
# ---------------------------------------------------------------------------------------------------------------
def test_regressions_page_highlights_the_planted_regression(monkeypatch, results):
    at = run_app(monkeypatch, results, page="Regressions")
    spec = only_chart(at)
    assert spec["layout"]["yaxis"]["type"] == "log"  # seconds
    assert spec["layout"]["xaxis"]["ticktext"] == [c[:8] for c in F.ASV_COMMITS]
    flagged = trace(spec, "regression (beyond ×1.2)")
    assert flagged["x"] == [2] and flagged["marker"]["symbol"] == "triangle-up"
    line = trace(spec, "algorithm=gram, batch=128, dim=256, regularizer=barlow_twins")
    assert line["x"] == [0, 1, 2] and line["y"][2] == pytest.approx(2 * line["y"][1] * 1.04 / 1.02)
    assert len(at.dataframe) == 1  # the table of flagged changes
    # a higher threshold: nothing flagged any more, and the page says so
    at.sidebar.slider(key="rg_threshold").set_value(2.5)
    spec = only_chart(rerun(at))
    assert not any(n.startswith("regression") for n in names(spec))
    assert any("No benchmark changed" in s.value for s in at.success)
    # the accuracy track_ benchmark: linear y, the drop is a regression
    at.sidebar.slider(key="rg_threshold").set_value(1.2)
    widget(at, "selectbox", "Benchmark").set_value("bench_regularizers.DownstreamAccuracy.track_knn_top1")
    spec = only_chart(rerun(at))
    assert spec["layout"]["yaxis"]["type"] == "linear" and trace(spec, "regression")["y"] == [40.0]


# ---------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------
def test_runs_page_training_curves(monkeypatch, results):
    at = run_app(monkeypatch, results, page="Runs")
    figs = charts(at)
    assert set(figs) == {"loss during training", "throughput", "memory", "kNN accuracy during training"}
    loss = figs["loss during training"]
    assert len(loss["data"]) == 2 and loss["layout"]["xaxis"]["title"]["text"] == "step"
    first = loss["data"][0]
    assert first["x"] == [1, 2, 3, 4, 5] and first["y"][0] == pytest.approx(first["y"][1] * 2)
    assert figs["kNN accuracy during training"]["data"][0]["y"] == [52.0]
    mem = figs["memory"]
    assert "MiB" in mem["layout"]["yaxis"]["title"]["text"]
    assert mem["data"][0]["y"][0] == pytest.approx(1_000_001 / 2 ** 20)
    runs = widget(at, "multiselect", "Runs")
    runs.set_value(runs.value[:1])
    assert len(charts(rerun(at))["loss during training"]["data"]) == 1
    widget(at, "selectbox", "Loss term").set_value("invariance")
    widget(at, "radio", "x axis").set_value("elapsed_s")
    figs = charts(rerun(at))
    inv = figs["invariance during training"]
    assert inv["data"][0]["y"][0] == pytest.approx(first["y"][0] * 0.7)  # the same (first) run's term
    assert inv["layout"]["xaxis"]["title"]["text"].startswith("wall time")
    widget(at, "checkbox", "Log y for the loss").check()
    assert charts(rerun(at))["invariance during training"]["layout"]["yaxis"]["type"] == "log"


def test_claims_page_lists_every_scale_of_each_study_with_its_cost(monkeypatch, results):
    from sslbench.analysis import report as R

    at = run_app(monkeypatch, results, "Claims")
    blocks = {c.value.split()[3]: c.value.splitlines() for c in at.code if c.value.startswith("sslbench sweep --study")}
    assert sorted(blocks) == sorted(R.STUDIES)
    for name, lines in blocks.items():
        st = R.STUDIES[name]
        want = [f"sslbench sweep --study {name}   # {st.cost_cpu}",
                f"sslbench sweep --study {name} --scale gpu   # {st.cost_gpu}"]
        if st.gpu_1h:  # the one-GPU-hour grid, where the study has one (gram has no training grid)
            want.append(f"sslbench sweep --study {name} --scale gpu-1h   # {st.cost_gpu_1h}")
        assert lines == want, name
    assert sum("--scale gpu-1h" in " ".join(lines) for lines in blocks.values()) == 5


# ---------------------------------------------------------------------------------------------------------------
# Empty, missing, corrupt, changed
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["Scaling", "Accuracy", "Throughput", "Regressions", "Runs"])
def test_empty_results_folder_shows_how_to_produce_results(monkeypatch, tmp_path, page):
    at = run_app(monkeypatch, tmp_path, page=page)
    assert not charts(at)
    assert any("No results" in i.value for i in at.info)
    text = "\n".join(m.value for m in at.markdown)
    assert "sslbench bench" in text and "benchmarks/side_by_side.py" in text and "asv run" in text


def test_missing_results_folder_shows_how_to_produce_results(monkeypatch, tmp_path):
    at = run_app(monkeypatch, tmp_path / "does-not-exist")
    assert any("does not exist" in w.value for w in at.warning)
    assert "sslbench bench" in "\n".join(m.value for m in at.markdown)


def test_pages_without_their_kind_of_results_explain(monkeypatch, tmp_path):
    F.write_bench_store(tmp_path / "bench.jsonl", corrupt_line=False)  # benchmarks only
    for page, needle, command in (("Accuracy", "No training runs", "sslbench train"),
                                  ("Throughput", "No training-throughput", "benchmarks/train_throughput.py"),
                                  ("Regressions", "No asv results", "asv run"),
                                  ("Runs", "No training logs", "sslbench train")):
        at = run_app(monkeypatch, tmp_path, page=page)
        assert not charts(at) and any(needle in i.value for i in at.info), page
        assert any(command in c.value for c in at.code), page


def test_reading_warnings_are_shown_and_the_results_folder_can_be_changed(monkeypatch, results, tmp_path):
    at = run_app(monkeypatch, results)
    assert any("skipped 1 line" in c.value for c in at.sidebar.caption)
    at.sidebar.text_input(key="results_dir").set_value(str(tmp_path))
    rerun(at)
    assert not charts(at) and any("No results" in i.value for i in at.info)


def test_new_records_show_up_on_the_next_run(monkeypatch, results, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(results, root)
    at = run_app(monkeypatch, root)
    widget(at, "selectbox", "N (fixed)").set_value(256)
    assert not any(n.startswith("sfrik") for n in names(only_chart(rerun(at))))
    for d in F.DIMS:  # a new regularizer appended to the store: the cache is keyed on the files' mtime/size
        rec = F._bench_record("sfrik", None, d, 256)
        append_record(root / "sweeps" / "new.jsonl", rec)
    widget(at, "multiselect", "Regularizers").set_value(["barlow_twins", "sfrik", "vicreg"])
    assert "sfrik  (α=1.50)" in names(only_chart(rerun(at)))


def test_dashboard_runs_without_torch(results):
    """The app (and what it imports) must not import torch: run it in a fresh interpreter and look."""
    code = textwrap.dedent(f"""
        import os, sys, warnings
        warnings.simplefilter("ignore")
        os.environ["SSLBENCH_RESULTS"] = {str(results)!r}
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=120).run()
        assert not at.exception, at.exception
        assert len(at.get("plotly_chart")) == 1
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "SSLBENCH_ASV"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_timings_with_another_thread_count_are_a_separate_choice(monkeypatch, results, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(results, root)
    one_thread = {**F.ENV, "threads": 1}
    for d in F.DIMS:  # the same cases, 3x slower with one thread
        rec = F._bench_record("vicreg", None, d, 256, env=one_thread)
        rec["metrics"]["time_median_s"] *= 3
        append_record(root / "sweeps" / "one-thread.jsonl", rec)
    at = run_app(monkeypatch, root)
    threads = widget(at, "selectbox", "torch threads")
    assert threads.options == ["1", "2"] and threads.value == 2  # the most common
    widget(at, "selectbox", "N (fixed)").set_value(256)
    two = trace(only_chart(rerun(at)), "vicreg")["y"]
    widget(at, "selectbox", "torch threads").set_value(1)
    spec = only_chart(rerun(at))
    assert names(spec) == ["vicreg  (α=1.50)"]
    assert trace(spec, "vicreg")["y"] == pytest.approx([3 * y for y in two])


def test_fitting_from_a_larger_size_recovers_the_asymptotic_exponent(monkeypatch, tmp_path):
    # a fixed overhead dominates the small sizes: t = 10 µs + C D², a whole-range fit bends the exponent down
    for d in (64, 128, 256, 512, 1024, 2048, 4096, 8192):
        rec = F._bench_record("barlow_twins", "cross_correlation", d, 256)
        rec["metrics"]["time_median_s"] = 1e-5 + 1e-10 * d ** 2
        append_record(tmp_path / "overhead.jsonl", rec)
    at = run_app(monkeypatch, tmp_path)
    whole = float(names(only_chart(at))[0].split("α=")[1].rstrip(")"))
    assert whole < 1.6
    widget(at, "selectbox", "Fit: from D ≥").set_value(2048)
    spec = only_chart(rerun(at))
    assert float(names(spec)[0].split("α=")[1].rstrip(")")) == pytest.approx(2.0, abs=0.05)
    assert "fitted over D ≥ 2048" in spec["layout"]["legend"]["title"]["text"]
    assert len(trace(spec, "barlow_twins")["x"]) == 8  # every point is still drawn


def _poisoned_store(root: Path) -> Path:
    """The fixture results plus a store whose records hold numbers no float can hold (1e400, a 400-digit
    integer), which crashed every page with an OverflowError naming no file."""
    F.write_results(root)
    good = F._bench_record("vicreg", None, 4096, 128)
    lines = [json.dumps(good).replace(f'"time_median_s": {good["metrics"]["time_median_s"]!r}',
                                      '"time_median_s": ' + "1" + "0" * 400),
             json.dumps({**good, "id": "x"}).replace('"peak_rss_delta_bytes": ', '"peak_rss_delta_bytes": 1e400, "y": ')]
    (root / "poisoned.jsonl").write_text("\n".join(lines) + "\n")
    return root / "poisoned.jsonl"


@pytest.mark.parametrize("page", ["Scaling", "Accuracy", "Throughput", "Regressions", "Runs", "Claims"])
def test_a_poisoned_store_does_not_take_down_any_page(monkeypatch, tmp_path, page):
    store = _poisoned_store(tmp_path / "results")
    at = run_app(monkeypatch, tmp_path / "results", page)
    assert not at.error, [e.value for e in at.error]
    captions = " ".join(c.value for c in at.sidebar.caption)
    from sslbench.records.text import markdown_text  # the warnings name files: shown escaped

    assert markdown_text(f"{store}: number(s) out of range set to null") in captions
    assert markdown_text("(line 1)") in captions


def test_a_page_that_fails_shows_an_error_box_and_the_app_goes_on(monkeypatch, results):
    from sslbench.analysis import views

    def broken(*args, **kwargs):
        raise RuntimeError("a derivation broke")

    monkeypatch.setattr(views, "scaling_axes", broken)
    at = run_app(monkeypatch, results, "Scaling")  # run_app asserts that no exception escaped
    assert [e.value for e in at.error] == [
        "The Scaling page could not be drawn: RuntimeError: a derivation broke. The other pages still work; the "
        "warnings in the sidebar name the files and lines that were skipped while reading."]
    at = run_app(monkeypatch, results, "Accuracy")
    assert not at.error and charts(at)
