"""A plugin treated like a built-in: ``sslbench bench --regularizers barlow_twins PLUGIN`` measures both in one run
(in this process and in fresh ones), ``sslbench train --regularizer PLUGIN`` trains with it, sweep plans accept it,
every record names its source (``extra.regularizer_source``), and ``sslbench analyze`` labels its series by the
spec. The official transcriptions (benchmarks/official.py, written for no registry) go through the same path."""

from __future__ import annotations

import sys

import pytest

from sslbench import cli, regularizers
from sslbench.records import read_records
from test_plugins import PLAIN, _write_dist

SPEC = "toyside.losses:CosLoss"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "toyside").mkdir(parents=True)
    (site / "toyside" / "__init__.py").write_text("")
    (site / "toyside" / "losses.py").write_text(PLAIN)
    _write_dist(site, "toyside", "0.3.1", {"toycos": SPEC})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield site
    for mod in [m for m in sys.modules if m.startswith("toyside")]:
        sys.modules.pop(mod)
    regularizers._source.cache_clear()


def _bench(store, *names, isolate="never"):
    return cli.main(["bench", "--regularizers", *names, "--dims", "16", "32", "--batches", "8", "--isolate", isolate,
                     "--warmup", "0", "--repeats", "2", "--min-time", "0", "--out", str(store)])


def test_bench_measures_a_plugin_beside_a_builtin_in_one_run(plugin, tmp_path):
    store = tmp_path / "bench.jsonl"
    assert _bench(store, "barlow_twins", SPEC, "toycos") == 0
    recs = read_records(store)
    assert {(r["case"]["regularizer"], r["case"]["dim"]) for r in recs} == {
        (n, d) for n in ("barlow_twins", SPEC, "toycos") for d in (16, 32)}
    assert all(r["status"] == "ok" and r["metrics"]["time_median_s"] > 0 for r in recs)
    src = {r["case"]["regularizer"]: r["extra"]["regularizer_source"] for r in recs}
    assert src["toycos"]["kind"] == "entry_point" and src["toycos"]["distribution"] == "toyside"
    assert src["toycos"]["version"] == "0.3.1" and src["toycos"]["class"] == SPEC
    assert src[SPEC]["kind"] == "module" and src["barlow_twins"]["kind"] == "builtin"


@pytest.mark.slow
def test_bench_measures_a_plugin_in_a_fresh_process(plugin, tmp_path):
    store = tmp_path / "bench.jsonl"
    assert _bench(store, SPEC, isolate="always") == 0
    recs = read_records(store)
    assert [r["status"] for r in recs] == ["ok", "ok"] and all(r["extra"]["isolated"] for r in recs)


def test_the_official_transcriptions_are_benched_through_the_plugin_path(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store = tmp_path / "bench.jsonl"
    assert _bench(store, "barlow_twins", "benchmarks.official:OfficialBarlowTwins") == 0
    recs = read_records(store)
    official = [r for r in recs if r["case"]["regularizer"] == "benchmarks.official:OfficialBarlowTwins"]
    assert len(official) == 2 and all(r["status"] == "ok" for r in official)
    assert official[0]["extra"]["regularizer_source"]["adapted"] is True
    # the same loss as the built-in at the official lambd: 'dim' is filled in like a built-in's
    import torch

    z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
    ours = regularizers.create("barlow_twins", lambd=0.0051)(z1, z2).loss
    theirs = regularizers.create("benchmarks.official:OfficialBarlowTwins", dim=16)(z1, z2).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_train_with_a_plugin_and_its_record(plugin, tmp_path, capsys):
    store = tmp_path / "train.jsonl"
    argv = ["train", "--regularizer", "toycos", "--hp", "scale=2.0", "--dataset", "digits", "--epochs", "1",
            "--max-steps", "2", "--batch-size", "32", "--dim", "16", "--projector", "32", "--no-eval", "--quiet",
            "--out", str(store), "--log-dir", str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck")]
    assert cli.main(argv) == 0, capsys.readouterr().err
    (rec,) = read_records(store)
    assert rec["status"] == "ok" and rec["case"]["regularizer"] == "toycos"
    assert rec["case"]["hparams"] == {"scale": 2.0, "learn": False}
    assert rec["extra"]["regularizer_source"]["distribution"] == "toyside"
    assert "predictor_hidden" not in rec["case"]  # the plain module declares no predictor


def test_sweep_plans_a_plugin(plugin, tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(f'kind = "bench"\nregularizers = ["barlow_twins", "{SPEC}"]\ndims = [16]\nbatches = [8]\n')
    assert cli.main(["sweep", "--config", str(config), "--dry-run", "--out", str(tmp_path / "s.jsonl")]) == 0
    out = capsys.readouterr().out
    assert SPEC in out and "barlow_twins" in out


def test_analyze_labels_the_plugin_series_by_its_spec(plugin, tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    store = results / "bench.jsonl"
    assert cli.main(["bench", "--regularizers", "barlow_twins", "toycos", "--dims", "16", "32", "64",
                     "--batches", "8", "--isolate", "never", "--warmup", "0", "--repeats", "2", "--min-time", "0",
                     "--out", str(store)]) == 0
    capsys.readouterr()
    assert cli.main(["analyze", "--results", str(results), "--min-points", "3"]) == 0
    out = capsys.readouterr().out
    scaling = out.split("Scaling exponents in D")[1].split("\n\n")[1]  # the table below the title
    rows = [line.split() for line in scaling.splitlines()]
    labels = {row[row.index("float32") + 1] for row in rows if "float32" in row}
    assert labels == {"barlow_twins", "toycos"}, out  # one fitted series each, the plugin's under its own name
    # the tidy table carries where each came from: a plugin's results compared across its own repository's commits
    from sslbench.analysis.load import load_results
    from sslbench.records import make_record
    from sslbench.records import read_records as read

    frame = load_results(results)
    plugin_rows = frame[frame["regularizer"] == "toycos"]
    assert len(plugin_rows) == 3 and set(plugin_rows["regularizer_source.distribution"]) == {"toyside"}
    assert set(plugin_rows["regularizer_source.version"]) == {"0.3.1"}
    assert set(frame.loc[frame["regularizer"] == "barlow_twins", "regularizer_source.kind"]) == {"builtin"}
    # an old record (no regularizer_source) still loads beside them
    old = make_record("regularizer_bench", dict(read(store)[0]["case"], dim=128), {"time_median_s": 1e-3}, env={})
    (results / "old.jsonl").write_text(__import__("json").dumps(old) + "\n")
    frame = load_results(results)
    assert len(frame) == 7 and frame["regularizer_source.kind"].isna().sum() == 1


def test_an_interrupted_case_of_a_plugin_names_its_source(plugin, tmp_path, monkeypatch):
    from sslbench.execution import bench as B

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(B, "run_case", interrupt)
    store = tmp_path / "b.jsonl"
    assert _bench(store, "toycos") == 130
    (rec,) = read_records(store)
    assert rec["status"] == "interrupted" and rec["extra"]["regularizer_source"]["distribution"] == "toyside"
