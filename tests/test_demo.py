"""`sslbench demo` (what `make demo` runs), shrunk: both parts write their records, a re-run measures nothing
again (the bench cases are skipped, the finished training run is recognised), and bad input is one line."""

from __future__ import annotations

import pytest

from sslbench import cli
from sslbench.records import read_records

TINY = ["--dataset", "digits", "--epochs", "1", "--dims", "16"]


@pytest.mark.slow
def test_demo_writes_both_stores_and_a_rerun_redoes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "demo"
    assert cli.main(["demo", *TINY, "--out-dir", str(out)]) == 0
    bench = read_records(out / "bench.jsonl")
    train = read_records(out / "train.jsonl")
    # 5 regularizers; the two with an 'algorithm' hyper-parameter get both algorithms
    assert sorted((r["case"]["regularizer"], r["case"].get("algorithm")) for r in bench) == sorted(
        [("barlow_twins", "auto"), ("barlow_twins", "cross_correlation"), ("vicreg", "auto"),
         ("vicreg", "cross_correlation"), ("barlow_twins_fft", None), ("vicreg_fft", None), ("sfrik", None)])
    assert all(r["status"] == "ok" and r["case"]["dim"] == 16 for r in bench)
    assert len(train) == 1 and train[0]["status"] == "ok"
    m = train[0]["metrics"]
    assert 0 <= m["linear_top1"] <= 100 and 0 <= m["init_linear_top1"] <= 100
    capsys.readouterr()

    assert cli.main(["demo", *TINY, "--out-dir", str(out)]) == 0
    text = capsys.readouterr()
    assert len(read_records(out / "bench.jsonl")) == len(bench)
    assert len(read_records(out / "train.jsonl")) == 1
    assert "already finished" in text.out + text.err


def test_demo_bad_dataset_is_one_line_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--dataset", "no_such_data", "--skip-bench", "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no_such_data" in err and "Traceback" not in err
    assert not (out / "train.jsonl").exists()


def test_the_scaling_part_passes_the_sweeps_own_options(tmp_path, monkeypatch):
    """The demo's bench grid goes through the sweep's parser (every option the sweep has, none written out again),
    and resolves to the demo's documented grid with the sweep's defaults for the rest."""
    import argparse

    from sslbench.execution import sweep

    seen = []
    monkeypatch.setattr(sweep, "execute", lambda args, command: seen.append(args) or 0)
    assert cli.main(["demo", "--skip-train", "--dims", "16", "32", "--out-dir", str(tmp_path)]) == 0
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    assert sorted(vars(seen[0])) == sorted(vars(parser.parse_args([])))
    s = sweep.resolve_settings(seen[0])
    assert (s["kind"], s["dims"], s["batches"], s["views"], s["device"], s["dtypes"]) == \
        ("bench", [16, 32], [256], [2], ["cpu"], ["float32"])
    assert s["regularizers"] == ["barlow_twins", "vicreg", "barlow_twins_fft", "vicreg_fft", "sfrik"]
    assert s["algorithms"] == ["cross_correlation", "auto"] and (s["warmup"], s["min_time"]) == (1, 0.3)
    assert (s["max_repeats"], s["isolate"], s["seed"], s["timeout"], s["resume"]) == (50, "auto", 0, 600.0, True)
    assert s["out"] == f"{tmp_path}/bench.jsonl" and s["progress"] is False and not seen[0].dry_run
