"""`sslbench report`: the claims' rules (one module per study, :mod:`sslbench.analysis.claims`) on small synthetic
record sets with known answers, the exact checks (:mod:`sslbench.execution.studies`), the study configs, the command
line, the torch-free import, and records a rule cannot read (skipped with a warning, the table still printed)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sslbench.analysis import load_results, report
from sslbench.analysis.claims import common, fft, gram, sfrik
from sslbench.cli import main
from sslbench.execution import studies, sweep
from sslbench.records import append_record, make_record

ROOT = Path(__file__).resolve().parent.parent
ENV = {"device_name": "Fixture CPU", "cpu_model": "Fixture CPU", "threads": 1, "git_commit": "f1x7ure"}
DIMS = (256, 512, 1024, 2048, 4096, 8192)
C = 1e-10


def _bench(path: Path, label_times: dict) -> None:
    """regularizer_bench records: {(regularizer, algorithm): f(D) -> (time, memory)} at N = 256."""
    for (reg, algo), f in label_times.items():
        for d in DIMS:
            case = {"regularizer": reg, **({"algorithm": algo} if algo else {}), "dim": d, "batch": 256, "views": 2,
                    "device": "cpu", "dtype": "float32"}
            t, m = f(d)
            append_record(path, make_record("regularizer_bench", case, {"time_median_s": t,
                                                                        "peak_rss_delta_bytes": m}, env=ENV))


def _quadratic(d):
    return C * 256 * d * d, 4 * d * d


def _loglinear(d):
    return 60 * C * 256 * d * math.log2(d), 400 * d * math.log2(d)  # crossovers near D = 600, 1000


def _flat(d):
    return 1e-3, 1_000_000


def _load(tmp_path):
    return load_results(tmp_path, asv=[])


def _rows(df, study, claim_start):
    return [v for v in report.verdicts(df, [study]) if v.claim.startswith(claim_start)]


def _lin(rows):
    """The linear-probe rows (the kNN rows' claims end with " [kNN]")."""
    return [v for v in rows if not v.claim.endswith("[kNN]")]


def test_fft_cost_known_scaling_is_supported(tmp_path):
    _bench(tmp_path / "b.jsonl", {("barlow_twins", "cross_correlation"): _quadratic, ("barlow_twins_fft", None): _loglinear,
                                  ("vicreg", "cross_correlation"): _quadratic, ("vicreg_fft", None): _loglinear})
    df = _load(tmp_path)
    time_rows = _rows(df, "fft", "loss time")
    assert [v.verdict for v in time_rows] == ["supported"]
    assert "α=2" in time_rows[0].figures
    mem = _rows(df, "fft", "loss memory")
    assert [v.verdict for v in mem] == ["supported"]
    cross = _rows(df, "fft", "the relaxed loss is faster")
    assert cross[0].verdict == "supported" and "crossover D≈" in cross[0].figures


def test_fft_cost_relaxed_growing_as_fast_is_not_supported_and_flat_is_inconclusive(tmp_path):
    _bench(tmp_path / "q.jsonl", {("barlow_twins", "cross_correlation"): _quadratic, ("barlow_twins_fft", None): _quadratic,
                                  ("vicreg", "cross_correlation"): _quadratic, ("vicreg_fft", None): _quadratic})
    assert [v.verdict for v in _rows(_load(tmp_path), "fft", "loss time")] == ["not supported"]
    flat = tmp_path / "flat"
    flat.mkdir()
    _bench(flat / "f.jsonl", {("barlow_twins", "cross_correlation"): _flat, ("barlow_twins_fft", None): _flat,
                              ("vicreg", "cross_correlation"): _flat, ("vicreg_fft", None): _flat})
    flat_rows = _rows(_load(flat), "fft", "loss time")
    assert [v.verdict for v in flat_rows] == ["inconclusive"]
    # an inconclusive scaling row says what would settle it: the same losses, on the same device, at a larger batch
    hint = flat_rows[0].command
    assert hint.startswith("sslbench sweep --config results/sweeps/configs/scaling-dim.toml --regularizers "
                           "barlow_twins_fft barlow_twins vicreg_fft vicreg --algorithms cross_correlation --dims ")
    assert "--batches 4096 --device cpu" in hint and "fixed costs dominate" in hint and "N=256" in hint
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    rng = np.random.default_rng(0)

    def _noisy(d):  # time as the exact loss; memory a page-granular RSS delta that does not follow D
        return C * 256 * d * d, float(rng.choice([4096, 64 * 2**20, 4 * 2**20]))
    _bench(noisy / "n.jsonl", {("barlow_twins", "cross_correlation"): _noisy, ("barlow_twins_fft", None): _noisy,
                               ("vicreg", "cross_correlation"): _noisy, ("vicreg_fft", None): _noisy})
    mem = _rows(_load(noisy), "fft", "loss memory")
    assert [v.verdict for v in mem] == ["inconclusive"]
    assert "R² < 0.8" in mem[0].command and "--dims 2048 4096 8192 16384 --device cpu" in mem[0].command
    assert "--batches" not in mem[0].command


def test_scaling_hint_names_the_device_and_sweep_parses_it(capsys):
    """The hint's command is one that ``sslbench sweep`` accepts (its --dry-run lists the cases)."""
    hint = common.settle_scaling(["sfrik"], "NVIDIA H100 80GB HBM3", "why", batch=4096, dims=(512, 1024))
    assert "--device cuda" in hint and hint.endswith("# why; 2 bench cases (minutes)")
    assert common.settle_scaling(["sfrik"], "Intel(R) Xeon(R) CPU", "w").count("--device cpu") == 1
    argv = hint.split("   #")[0].split()[1:]
    argv[argv.index("cuda")] = "cpu"  # no GPU here: the same grid on the CPU, listed and not run
    assert main(argv + ["--dry-run", "--out", "/nonexistent-dir/x.jsonl"]) == 0, capsys.readouterr().err
    assert "2 case(s)" in capsys.readouterr().out


def test_crossover_with_no_figure_at_the_largest_d_is_inconclusive_not_a_traceback(tmp_path):
    """Both series' times missing (NaN) at the largest D: no "lower at the top" to read, an inconclusive crossover
    row (it raised pandas' "Encountered all NA values" from idxmin)."""
    def nan_top(f):
        return lambda d: (math.nan, f(d)[1]) if d == DIMS[-1] else f(d)
    _bench(tmp_path / "b.jsonl", {("barlow_twins", "cross_correlation"): nan_top(_quadratic),
                                  ("barlow_twins_fft", None): nan_top(_loglinear),
                                  ("vicreg", "cross_correlation"): nan_top(_quadratic),
                                  ("vicreg_fft", None): nan_top(_loglinear)})
    [cross] = _rows(_load(tmp_path), "fft", "the relaxed loss is faster")
    assert cross.verdict == "inconclusive" and "barlow_twins time: crossover D≈" in cross.figures, cross


def test_no_records_gives_no_data_for_every_claim(tmp_path):
    rows = report.verdicts(_load(tmp_path))
    assert {v.study for v in rows} == set(report.STUDIES)
    assert all(v.verdict == "no data" for v in rows)
    assert all(v.command for v in rows)  # every missing figure says how to produce it


def test_verdict_values_are_checked():
    with pytest.raises(ValueError, match="choose one of"):
        report.Verdict("fft", "x", "maybe")


def _train(path, reg, seed, lin, *, hparams=None, ema_tau=0.0, status="ok", eff_rank=10.0, std=0.08, dim=128,
           init=None, backbone_rank=None, knn=None, **extra):
    case = {"regularizer": reg, "hparams": hparams or {}, "dataset": "fashion_mnist", "fraction": 0.1, "dim": dim,
            "projector": f"512-{dim}", "views": 2, "batch": 256, "epochs": 1, "seed": seed, "backbone": "auto",
            "optimizer": "adamw", "lr": 0.1, "device": "cpu", "ema_tau": ema_tau, "warmup_epochs": 0.2, **extra}
    metrics = {} if status != "ok" else {"linear_top1": lin, "knn_top1": lin - 10 if knn is None else knn,
                                         "effective_rank": eff_rank,
                                         "std_normalized": std, **({"init_linear_top1": init} if init else {}),
                                         **({"backbone_effective_rank": backbone_rank} if backbone_rank else {})}
    append_record(path, make_record("train", case, metrics, status, env=ENV))


def test_accuracy_comparable_within_the_margin_and_not_when_far_below(tmp_path):
    p = tmp_path / "t.jsonl"
    for s, (a, b) in enumerate([(80.0, 80.2), (80.1, 80.3), (79.9, 80.1)]):  # Δ = -0.2, 90 % interval inside ±1
        _train(p, "barlow_twins_fft", s, a, hparams={"permute": True})
        _train(p, "barlow_twins", s, b)
    rows = _rows(_load(tmp_path), "fft", "downstream accuracy")
    assert [v.verdict for v in rows] == ["supported", "supported"]  # linear, kNN
    assert "Δ = -0.20 [-0.43, +0.03] (Welch 95 %, n = 3/3), margin 1, TOST p = " in rows[0].figures
    q = tmp_path / "far"
    q.mkdir()
    for s in range(3):
        _train(q / "t.jsonl", "barlow_twins_fft", s, 70.0 + 0.1 * s, hparams={"permute": True})
        _train(q / "t.jsonl", "barlow_twins", s, 80.0 + 0.1 * s)
    row = _rows(_load(q), "fft", "downstream accuracy")[0]
    assert row.verdict == "not supported" and "Δ = -10.00" in row.figures
    one = tmp_path / "one"
    one.mkdir()
    _train(one / "t.jsonl", "barlow_twins_fft", 0, 80.0, hparams={"permute": True})
    _train(one / "t.jsonl", "barlow_twins", 0, 80.5)
    row = _rows(_load(one), "fft", "downstream accuracy")[0]
    assert row.verdict == "inconclusive" and "no interval" in row.figures and "≥ 2 seeds per arm" in row.figures


def test_relaxed_and_exact_are_compared_at_the_same_lambd(tmp_path):
    p = tmp_path / "t.jsonl"
    for s in range(2):
        _train(p, "barlow_twins_fft", s, 80.0 + 0.1 * s, hparams={"permute": True, "lambd": 0.0051})
        _train(p, "barlow_twins", s, 80.5 + 0.1 * s, hparams={"lambd": 0.0051})
        _train(p, "barlow_twins", s, 90.0 + 0.1 * s, hparams={"lambd": 1 / 128})  # another variant: not pooled
    [row] = _lin(_rows(_load(tmp_path), "fft", "downstream accuracy"))
    assert row.verdict == "supported" and "barlow_twins 80.55" in row.figures and "both lambd 0.0051" in row.figures


def test_accuracy_below_the_network_at_initialisation_settles_nothing(tmp_path):
    p = tmp_path / "t.jsonl"
    for s in range(3):
        _train(p, "barlow_twins_fft", s, 70.0 + 0.1 * s, hparams={"permute": True}, init=77.0)
        _train(p, "barlow_twins", s, 70.5 + 0.1 * s, init=77.0)
    row = _rows(_load(tmp_path), "fft", "downstream accuracy")[0]
    assert row.verdict == "inconclusive" and "below the network at initialisation" in row.figures


def test_the_same_run_in_two_stores_counts_once(tmp_path):
    for name in ("a.jsonl", "b.jsonl"):
        _train(tmp_path / name, "barlow_twins_fft", 0, 80.0, hparams={"permute": True})
        _train(tmp_path / name, "barlow_twins", 0, 80.0)
    row = _rows(_load(tmp_path), "fft", "downstream accuracy")[0]
    assert "(1 seed)" in row.figures and row.verdict == "inconclusive"


def test_variance_collapse_verdict(tmp_path):
    p = tmp_path / "v.jsonl"
    for s in range(2):
        _train(p, "vicreg", s, 80.0, hparams={"std_coeff": 25.0}, eff_rank=20.0, std=0.08)
        _train(p, "vicreg", s, 60.0, hparams={"std_coeff": 0.0}, eff_rank=1.5, std=0.005)
    row = _rows(_load(tmp_path), "variance", "the variance term prevents")[0]
    assert row.verdict == "supported" and "×13.3" in row.figures
    same = tmp_path / "same"
    same.mkdir()
    for s in range(2):
        _train(same / "v.jsonl", "vicreg", s, 80.0, hparams={"std_coeff": 25.0})
        _train(same / "v.jsonl", "vicreg", s, 80.0, hparams={"std_coeff": 0.0})
    assert _rows(_load(same), "variance", "the variance term prevents")[0].verdict == "not supported"


def test_variance_collapse_of_scale_shows_in_the_backbone(tmp_path):
    """VICReg without its variance term (measured on the CPU): normalised embeddings spread out (rank 30 vs 16),
    the backbone's representation collapsed (rank 1.9 vs 5.8). The representation decides."""
    p = tmp_path / "v.jsonl"
    for s in range(2):
        _train(p, "vicreg", s, 80.4, hparams={"std_coeff": 25.0}, eff_rank=16.4, std=0.061, backbone_rank=5.8)
        _train(p, "vicreg", s, 72.3, hparams={"std_coeff": 0.0}, eff_rank=30.5, std=0.044, backbone_rank=1.9)
    row = _rows(_load(tmp_path), "variance", "the variance term prevents collapse")[0]
    assert row.verdict == "supported" and "backbone_effective_rank 5.8 vs 1.9 (×3.05)" in row.figures
    assert "effective_rank 16.4 vs 30.5 (×0.538)" in row.figures
    old = tmp_path / "old"  # records without the backbone's metrics: the embeddings alone cannot settle it
    old.mkdir()
    for s in range(2):
        _train(old / "v.jsonl", "vicreg", s, 80.4, hparams={"std_coeff": 25.0}, eff_rank=16.4, std=0.061)
        _train(old / "v.jsonl", "vicreg", s, 72.3, hparams={"std_coeff": 0.0}, eff_rank=30.5, std=0.044)
    assert _rows(_load(old), "variance", "the variance term prevents collapse")[0].verdict == "inconclusive"


def test_variance_add_on_verdicts(tmp_path):
    p = tmp_path / "v.jsonl"
    for s in range(2):  # SimSiam without its predictor collapses; the add-on keeps it spread out
        _train(p, "byol", s, 60.0 + s, predictor_hidden=0, eff_rank=1.5, std=0.005)
        _train(p, "byol", s, 70.0 + s, predictor_hidden=0, eff_rank=6.0, std=0.05, hparams={"variance_coeff": 1.0})
        # with its predictor it does not collapse: the add-on must not cost accuracy
        _train(p, "byol", s, 80.0 + 0.1 * s, predictor_hidden=512, eff_rank=6.0, std=0.06)
        _train(p, "byol", s, 79.5 + 0.1 * s, predictor_hidden=512, eff_rank=6.0, std=0.06,
               hparams={"variance_coeff": 1.0})
    df = _load(tmp_path)
    [col] = _rows(df, "variance", "the variance term prevents the collapse of another")
    assert col.verdict == "supported" and "byol EMA 0 no predictor: variance_coeff 1 vs 0" in col.figures
    assert "std_normalized 0.05 vs 0.005 (×10)" in col.figures and "effective_rank 6 vs 1.5 (×4)" in col.figures
    [acc] = _rows(df, "variance", "adding the variance term")
    assert acc.verdict == "supported" and "predictor 512" in acc.figures and "Δ = -0.50" in acc.figures
    # the add-on's arms and the predictor-less ones are not BYOL in the isoloss study: no isoloss rows appear
    assert _rows(df, "isoloss", "IsoLoss")[0].verdict == "no data"
    worse = tmp_path / "worse"
    worse.mkdir()
    for s in range(2):
        _train(worse / "v.jsonl", "byol", s, 80.0 + s, predictor_hidden=512)
        _train(worse / "v.jsonl", "byol", s, 70.0 + s, predictor_hidden=512, hparams={"variance_coeff": 25.0})
        _train(worse / "v.jsonl", "byol", s, 60.0, predictor_hidden=0, std=0.005, eff_rank=1.5)
        _train(worse / "v.jsonl", "byol", s, 60.0, predictor_hidden=0, std=0.0052, eff_rank=1.5,
               hparams={"variance_coeff": 25.0})
    df = _load(worse)
    assert _rows(df, "variance", "adding the variance term")[0].verdict == "not supported"
    assert _rows(df, "variance", "the variance term prevents the collapse of another")[0].verdict == "not supported"


def test_an_inconclusive_collapse_row_says_more_seeds_do_not_settle_it(tmp_path):
    """The collapse rule reads ratios of the arms' means: on the AdamW recipe's CPU setting an inconclusive row says
    that more seeds of the grid do not settle it (then the GPU grid); elsewhere it gives the GPU grid only."""
    for opt in ("adamw", "sgd"):
        d = tmp_path / opt
        d.mkdir()
        for s in range(2):  # collapsed without the add-on; with it the representation's rank moves ×1.2 only
            _train(d / "v.jsonl", "byol", s, 60.0, predictor_hidden=0, eff_rank=1.5, std=0.005, backbone_rank=4.0,
                   optimizer=opt)
            _train(d / "v.jsonl", "byol", s, 60.0, predictor_hidden=0, eff_rank=1.5, std=0.005, backbone_rank=4.8,
                   optimizer=opt, hparams={"variance_coeff": 1.0})
        [col] = [v for v in _rows(_load(d), "variance", "the variance term prevents the collapse of another")
                 if v.verdict != "no data"]  # (the AdamW grid's own arms are pending: a row of their own)
        assert col.verdict == "inconclusive", col
        recipe = col.command.startswith("# more seeds do not settle this: the rule reads ratios of the arms' means")
        assert recipe == (opt == "adamw"), col.command
        assert "sslbench sweep --study variance --scale gpu" in col.command


def test_old_byol_records_without_predictor_width_are_the_default_predictor(tmp_path):
    _train(tmp_path / "a.jsonl", "byol", 0, 80.0)  # written before the predictor width was recorded
    _train(tmp_path / "b.jsonl", "byol", 0, 80.0, predictor_hidden=512)  # the same run today
    _train(tmp_path / "b.jsonl", "byol", 0, 60.0, predictor_hidden=0)  # another run
    runs = common.train_runs(_load(tmp_path))
    assert sorted(runs["predictor_hidden"].tolist()) == [0, 512]
    from sslbench.records.constants import DEFAULT_PREDICTOR_HIDDEN, DEFAULT_WARMUP_EPOCHS
    from sslbench.training.config import TrainConfig
    assert DEFAULT_PREDICTOR_HIDDEN == TrainConfig().predictor_hidden
    assert DEFAULT_WARMUP_EPOCHS == TrainConfig().warmup_epochs  # the report leaves the default out of a setting


def test_isoloss_robust_where_byol_drops(tmp_path):
    p = tmp_path / "i.jsonl"
    for s in range(2):
        for tau in (0.99, 0.0):
            _train(p, "isoloss", s, 80.0 + s * 0.2, ema_tau=tau)
            _train(p, "byol", s, (80.0 if tau else 65.0) + s * 0.2, ema_tau=tau)
    assert _rows(_load(tmp_path), "isoloss", "IsoLoss")[0].verdict == "supported"
    q = tmp_path / "drop"
    q.mkdir()
    for s in range(2):
        for tau in (0.99, 0.0):
            _train(q / "i.jsonl", "isoloss", s, (80.0 if tau else 60.0) + s * 0.2, ema_tau=tau)
            _train(q / "i.jsonl", "byol", s, 80.0 + s * 0.2, ema_tau=tau)
    assert _rows(_load(q), "isoloss", "IsoLoss")[0].verdict == "not supported"


def test_gram_exact_check_and_its_verdict(tmp_path):
    m = studies.check_gram_values()
    assert m["value_rel_diff_float64"] < gram.GRAM_TOL_F64 and m["grad_rel_diff_float64"] < gram.GRAM_TOL_F64
    assert m["value_rel_diff_float32"] < gram.GRAM_TOL_F32
    append_record(tmp_path / "c.jsonl", make_record(report.CHECK_KIND, {"study": "gram", "check": "values"}, m, env=ENV))
    assert _rows(_load(tmp_path), "gram", "the Gram form gives the same loss")[0].verdict == "supported"
    bad = dict(m, value_rel_diff_float32=0.5)
    d2 = tmp_path / "bad"
    d2.mkdir()
    append_record(d2 / "c.jsonl", make_record(report.CHECK_KIND, {"study": "gram", "check": "values"}, bad, env=ENV))
    assert _rows(_load(d2), "gram", "the Gram form gives the same loss")[0].verdict == "not supported"


def test_run_checks_writes_records_the_report_reads(tmp_path):
    studies.run_checks("sfrik", report.STUDIES["sfrik"].checks, tmp_path / "s.jsonl")
    row = _rows(_load(tmp_path), "sfrik", "the degree-2 truncation")[0]
    assert row.verdict == "supported", row.figures


def test_permutation_check_separates_with_and_without():
    m = studies.check_permutation(batches=8, n=256, d=64)
    assert m["r_permute_structured"] > m["r_no_permute_structured"] + 0.3


def test_every_study_config_is_a_valid_sweep():
    for st in report.STUDIES.values():
        for name in st.cpu + st.cpu_earlier + st.gpu + st.gpu_1h:
            cfg = sweep.load_config(report.CONFIG_DIR / name)
            cfg["device"] = ["cpu"]  # the GPU grids are checked here without a GPU
            ns = argparse.Namespace(**{o.key: None for o in sweep.OPTIONS})
            assert sweep.build_cases(sweep.resolve_settings(ns, cfg)), name


def test_cli_list(capsys):
    assert main(["report", "--list"]) == 0
    out = capsys.readouterr().out
    for name in report.STUDIES:
        assert f"sslbench sweep --study {name}" in out
    assert "--scale gpu" in out and "fft-cpu2-exact.toml" in out
    for st in report.STUDIES.values():
        for c in st.gpu_1h:
            assert f"configs/{c} --out" in out
        assert (f"sslbench sweep --study {st.name} --scale gpu-1h" in out) == bool(st.gpu_1h)


def test_each_scale_is_its_studys_config_files():
    """--scale gpu runs <study>-gpu*.toml, --scale gpu-1h <study>-gpu-1h*.toml: every such file on disk, none
    other (results/studies/README.md, "Projected GPU time of the claim studies")."""
    for st in report.STUDIES.values():
        one_hour = sorted(p.name for p in report.CONFIG_DIR.glob(f"{st.name}-gpu-1h*.toml"))
        full = sorted(p.name for p in report.CONFIG_DIR.glob(f"{st.name}-gpu*.toml") if p.name not in one_hour)
        assert sorted(st.configs("gpu-1h")) == one_hour and sorted(st.configs("gpu")) == full, st.name
        # --scale cpu: the AdamW recipe (<study>-cpu2*.toml); the earlier SGD recipe's configs stay for their records
        cpu2 = sorted(p.name for p in report.CONFIG_DIR.glob(f"{st.name}-cpu2*.toml"))
        assert sorted(st.configs("cpu")) == cpu2
        assert sorted(st.cpu_earlier + cpu2) == sorted(p.name for p in report.CONFIG_DIR.glob(f"{st.name}-cpu*.toml"))
    assert report.STUDIES["sfrik"].command("gpu-1h") == "sslbench sweep --study sfrik --scale gpu-1h"
    with pytest.raises(ValueError, match="gpu-1h"):
        report.STUDIES["sfrik"].configs("gpu-2h")


def test_the_gpu_cost_notes_are_the_projection_scripts():
    """The cost notes of both GPU scales are benchmarks/project_studies.py's projection at the assumption (the
    study's cases, their epochs, the per-case time and the total of the README's table), said to be assumed."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import project_studies as ps

    rows, _ = ps.study_rows(ps.default_configs(), ps.AssumedThroughput(17_000.0), ps.DEFAULT_OVERHEAD_S)
    rows = {r.name: r for r in rows}
    for st in report.STUDIES.values():
        if not st.gpu_1h:
            continue
        for scale in ("gpu", "gpu-1h"):
            row = rows[f"{st.name} ({scale})"]
            assert sorted(row.configs) == sorted(c.removesuffix(".toml") for c in st.configs(scale))
            epochs = {c.epochs for c in row.cases}
            assert len(epochs) == 1, st.name
            lo, hi = ps.duration(min(row.seconds)), ps.duration(max(row.seconds))
            per_run = lo if lo == hi else f"{lo}–{hi}"
            assert ps._cells(row)[4] == per_run  # the README table's "GPU time per case"
            assert st.cost(scale) == (f"{len(row.cases)} runs of {epochs.pop()} epochs (CIFAR-10, ResNet-18): "
                                      f"projected {per_run} each, {ps.duration(row.total_s)} in all, on one GPU at "
                                      "an ASSUMED 17 000 images/s (python benchmarks/project_studies.py "
                                      "--assume-images-per-s 17000)"), (st.name, scale)
    # and the range the claims page (docs/claims.md) quotes
    minutes = [rows[f"{st.name} (gpu-1h)"].total_s / 60 for st in report.STUDIES.values() if st.gpu_1h]
    claims_page = " ".join((ROOT / "docs" / "claims.md").read_text().split())
    assert f"{min(minutes):.0f}–{max(minutes):.0f} min per study at an *assumed* 17 000 images/s" in claims_page


def test_the_studies_readme_runs_a_one_hour_grid_with_the_reports_command():
    """results/studies/README.md ends with the command that runs a study's one-hour grid and reports it (not a loop
    of sweeps by hand), naming exactly the studies that have such a grid."""
    readme = (ROOT / "results" / "studies" / "README.md").read_text()
    block = readme[readme.rindex("```bash"):]
    one_hour = sorted(n for n, st in report.STUDIES.items() if st.gpu_1h)
    assert "sslbench sweep --config" not in block
    assert report.STUDIES[one_hour[0]].command("gpu-1h").replace(one_hour[0], "STUDY") in block
    assert f"STUDY: {', '.join(one_hour[:-1])} or {one_hour[-1]}" in block


def test_each_one_hour_config_says_to_run_it_with_the_study_command():
    for st in report.STUDIES.values():
        for name in st.gpu_1h:
            text = (report.CONFIG_DIR / name).read_text()
            comments = " ".join(line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#"))
            assert f"sslbench sweep --study {st.name} --scale gpu-1h" in comments, name
            assert "<device>" not in text and "sslbench sweep --config" not in comments, name


def _grid_seeds(study: str, scale: str) -> list[tuple[dict, int]]:
    """[(an arm of the study's grid at ``scale``: a case without seed, epochs and device; its number of seeds)]."""
    arms: dict[str, set] = {}
    for name in report.STUDIES[study].configs(scale):
        cfg = sweep.load_config(report.CONFIG_DIR / name)
        cfg["device"] = ["cpu"]  # expanded without a GPU, as the sweep's dry run does
        settings = sweep.resolve_settings(argparse.Namespace(**{o.key: None for o in sweep.OPTIONS}), cfg)
        for c in sweep.build_cases(settings):
            arm = {k: v for k, v in c.items() if k not in ("seed", "epochs", "device")}
            arms.setdefault(json.dumps(arm, sort_keys=True), set()).add(c["seed"])
    return [(json.loads(k), len(v)) for k, v in sorted(arms.items())]


def test_the_gpu_regularizers_of_each_study_are_its_gpu_grids():
    """Study.gpu_regularizers (what a "to settle" hint may send to a GPU grid) are the regularizers of the config
    files of both GPU scales."""
    for st in report.STUDIES.values():
        if not st.gpu_1h:
            continue
        for scale in ("gpu", "gpu-1h"):
            regs = {a["regularizer"] for a, _ in _grid_seeds(st.name, scale)}
            assert regs == set(st.gpu_regularizers), (st.name, scale)


def test_the_to_settle_hints_name_the_grids_with_the_seeds_their_rules_need():
    """The seed counts behind the hints: "comparable" rules need >= 2 seeds per arm; the one-hour grids have them
    wherever a hint sends to them, the full grids lack them for views' D = 128 vs 2048 and the add-on with a
    predictor (common.ONE_SEED), and neither has them for the add-on arms without a predictor."""
    def seeds(study, scale, keep):
        found = [n for a, n in _grid_seeds(study, scale) if keep(a)]
        assert found, (study, scale)
        return min(found), max(found)

    every = lambda a: True  # noqa: E731
    for study in ("fft", "sfrik", "isoloss"):
        assert seeds(study, "gpu-1h", every)[0] >= 2
    assert seeds("fft", "gpu", every)[0] >= 2 and seeds("sfrik", "gpu", every)[0] >= 2
    low_dim = lambda a: a["views"] == 2 and a["fraction"] == 1.0  # noqa: E731  D = 128 and D = 2048
    assert {a["dim"] for a, _ in _grid_seeds("views", "gpu-1h") if low_dim(a)} == {128, 2048}
    assert seeds("views", "gpu-1h", low_dim)[0] >= 2 and seeds("views", "gpu", low_dim) == (1, 1)
    for pred, one_hour, full in ((True, 2, 1), (False, 1, 1)):
        addon = lambda a: a["regularizer"] == "byol" and (a["train_options"]["predictor_hidden"] > 0) == pred  # noqa
        assert seeds("variance", "gpu-1h", addon)[0] >= one_hour and seeds("variance", "gpu", addon)[1] == full
        if one_hour == 1:
            assert seeds("variance", "gpu-1h", addon)[1] == 1


def test_to_settle_points_at_the_one_hour_grid_first_where_it_can(tmp_path):
    views, fft_, variance = (report.STUDIES[n] for n in ("views", "fft", "variance"))
    p = tmp_path / "t.jsonl"
    _train(p, "barlow_twins_fft", 0, 80.0, hparams={"permute": True})
    _train(p, "barlow_twins", 0, 80.5)
    _train(p, "vicreg_fft", 0, 80.0, hparams={"permute": True})
    _train(p, "vicreg", 0, 80.5)
    bt, vic = sorted(_lin(_rows(_load(tmp_path), "fft", "downstream accuracy")), key=lambda v: "vicreg" in v.figures)
    assert bt.verdict == vic.verdict == "inconclusive"  # one seed each
    # the AdamW recipe on a CPU: first the seeds the rule needs on the CPU grid, then the GPU grid
    cpu = (f'STUDIES=fft SEEDS="1 2" bash results/studies/run-cpu2.sh   # 3 seeds per arm: 2 more seed(s) of the '
           f"study's CPU grid, ~{2 * fft_.cpu_seed_min:.0f} min on 2 idle CPU cores (estimated)   | GPU: ")
    assert bt.command == cpu + "sslbench sweep --study fft --scale gpu-1h   # one GPU-hour; the full grid: --scale gpu"
    assert vic.command == cpu + "# no GPU grid of study fft settles this: it trains no vicreg_fft, vicreg"
    # views: D = 128 vs 2048 is "comparable": the full grid's one seed cannot settle it, the one-hour grid's two can
    q = tmp_path / "views"
    q.mkdir()
    _views_run(q / "v.jsonl", 2, 1.0, 80.0)
    _views_run(q / "v.jsonl", 2, 1.0, 79.5, dim=2048, lambd=0.0051)
    low = _rows(_load(q), "views", "D = 128")[0]
    assert low.command.split("   | GPU: ")[1] == (f"{views.command('gpu-1h')}   # one GPU-hour; the full grid (--scale gpu) cannot settle "
                           f"this: {common.ONE_SEED}")
    # variance add-on: with a predictor as views; without one, neither grid has a second seed
    r = tmp_path / "variance"
    r.mkdir()
    for pred in (512, 0):
        _train(r / "v.jsonl", "byol", 0, 80.0, predictor_hidden=pred, eff_rank=6.0, std=0.06)
        _train(r / "v.jsonl", "byol", 0, 79.5, predictor_hidden=pred, eff_rank=6.0, std=0.06,
               hparams={"variance_coeff": 1.0})
    with_pred, without = sorted(_rows(_load(r), "variance", "adding the variance term"),
                                key=lambda v: "no predictor" in v.figures)
    gpu = [v.command.split("   | GPU: ")[1] for v in (with_pred, without)]
    assert gpu[0].startswith(variance.command("gpu-1h") + "   # one GPU-hour; the full grid (--scale gpu)")
    assert gpu[1] == f"# no GPU grid of study variance settles this: {common.ONE_SEED}"
    assert fft_.settle_command("barlow_twins", gpu_1h="x") == ("sslbench sweep --study fft --scale gpu   # the full "
                                                               "grid; the one-GPU-hour grid (--scale gpu-1h) cannot "
                                                               "settle this: x")


def _sweep_main(argv: list[str]) -> int:
    return main(["sweep", *argv])


def test_a_gpu_scale_without_cuda_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(studies.torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    for scale in ("gpu", "gpu-1h"):
        assert _sweep_main(["--study", "sfrik", "--scale", scale]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--scale {scale} needs a CUDA device" in err[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, says", [
    (["--study", "nope"], "--study nope: no such study; choose from fft"),
    (["--study", "gram", "--scale", "gpu-2h"], "--scale gpu-2h: choose one of cpu, gpu, gpu-1h"),
    (["--study", "gram", "--scale", "gpu-1h"], "study gram has no --scale gpu-1h grid"),
    (["--study", "fft", "--out", "x.jsonl"], "--study picks the configs and the store"),
    (["--scale", "gpu", "--kind", "bench"], "--scale gpu applies to the claim studies: add --study NAME"),
])
def test_sweep_study_bad_input_is_one_line(tmp_path, monkeypatch, capsys, argv, says):
    monkeypatch.chdir(tmp_path)
    assert _sweep_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("scale, epochs", [("gpu", 200), ("gpu-1h", 100)])
def test_a_gpu_dry_run_without_cuda_prints_the_plan(tmp_path, monkeypatch, capsys, scale, epochs):
    monkeypatch.setattr(studies.torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert _sweep_main(["--study", "sfrik", "--scale", scale, "--dry-run"]) == 0
    cap = capsys.readouterr()
    todo = [line for line in cap.out.splitlines() if line.startswith("todo  ")]
    assert len(todo) == 9 and all(f" epochs={epochs} " in line and " cuda " in line for line in todo)
    assert "9 case(s): 0 already done in results/studies/GPU_NAME-sfrik.jsonl, 9 to run" in cap.out
    sweeps = [line for line in cap.out.splitlines() if line.startswith("$ sslbench sweep")]
    assert len(sweeps) == 1 and re.fullmatch(r"\$ sslbench sweep [\w./ -]+", sweeps[0]), sweeps  # pastes as it is
    assert "running these cases needs CUDA" in cap.out and cap.err == ""
    assert not any(tmp_path.iterdir())  # a plan writes nothing


def test_sweep_study_runs_each_config_of_the_scale_with_the_command_lines_options(tmp_path, monkeypatch, capsys):
    """--study runs the study's configs one after the other through the sweep's own loop, with the options the
    user gave (--executor local, --workers: a SLURM cluster or local workers run the studies too), the config and
    the study's store in place of --config / --out, and no settings or argv rebuilt."""
    calls = []
    monkeypatch.setattr(sweep, "execute", lambda args, command="sweep": calls.append((command, vars(args))) or 0)
    monkeypatch.setattr(studies.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(sweep, "device_slug", lambda device="cpu": "nvidia-test" if device == "cuda" else "cpu-test")
    # the exact checks run as they are, but their records' environment is a fixed one: a real probe with CUDA faked
    # available finds no device (an IndexError when this test ran first, before the probe's cache was filled)
    checked = []
    monkeypatch.setattr(studies, "environment", lambda: checked.append(1) or {"device_name": "test GPU"})
    monkeypatch.chdir(tmp_path)
    assert _sweep_main(["--study", "sfrik", "views", "--scale", "gpu-1h", "--executor", "local", "--workers", "3",
                        "--timeout", "99"]) == 0
    assert len(checked) == len(report.STUDIES["sfrik"].checks)  # sfrik's checks ran, each recorded once
    want = [report.CONFIG_DIR / "sfrik-gpu-1h.toml"] + [report.CONFIG_DIR / c for c in report.STUDIES["views"].gpu_1h]
    assert [Path(a["config"]) for _, a in calls] == want
    assert [a["out"] for _, a in calls] == (["results/studies/nvidia-test-sfrik.jsonl"]
                                           + ["results/studies/nvidia-test-views.jsonl"] * (len(want) - 1))
    assert all(c == "sweep" and a["executor"] == "local" and a["workers"] == 3 and a["timeout"] == 99.0
               and a["progress"] is False and not a["study"] for c, a in calls)
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "then: sslbench report --study sfrik views"


def test_report_run_is_one_line_pointing_at_sweep_study(tmp_path, capsys):
    """`report --run` (an old habit): one line naming the new command, exit 2, nothing run."""
    for argv, says in ((["--run", "fft", "--scale", "gpu"], "`sslbench sweep --study fft --scale gpu`"),
                       (["--run", "gram"], "`sslbench sweep --study gram`"),
                       (["--dry-run"], "`sslbench sweep --study NAME`")):
        assert main(["report", *argv, "--results", str(tmp_path)]) == 2
        cap = capsys.readouterr()
        err = cap.err.strip().splitlines()
        assert len(err) == 1 and says in err[0] and "report only reads" in err[0] and cap.out == "", cap
    assert not list(tmp_path.iterdir())


def test_cli_on_an_empty_results_dir(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert "no records under" in cap.err and "Traceback" not in cap.err
    assert "[NO DATA]" in cap.out and "sslbench sweep --study gram" in cap.out
    assert main(["report", "--results", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_markdown(tmp_path, capsys):
    _bench(tmp_path / "b.jsonl", {("barlow_twins", "cross_correlation"): _quadratic, ("barlow_twins_fft", None): _loglinear,
                                  ("vicreg", "cross_correlation"): _quadratic, ("vicreg_fft", None): _loglinear})
    assert main(["report", "--results", str(tmp_path), "--format", "markdown", "--study", "fft"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| study | claim | verdict |") and "**supported**" in out and "Rules:" in out


def test_sweep_study_gram_writes_its_checks_then_the_report_reads_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--study", "gram"]) == 0
    stores = list((tmp_path / "results" / "studies").glob("*-gram.jsonl"))
    assert len(stores) == 1
    capsys.readouterr()
    assert main(["report", "--study", "gram", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[SUPPORTED] the Gram form gives the same loss values" in out
    assert "[SUPPORTED] the Gram form gives the same training curves" in out


def _views_run(path, v, frac, lin, *, dim=128, lambd=1 / 128, seed=0, reg="barlow_twins"):
    case = {"regularizer": reg, "hparams": {"lambd": lambd} if lambd else {"std_coeff": 25.0}, "dataset": "fashion_mnist",
            "fraction": frac, "dim": dim, "projector": f"512-{dim}", "views": v, "batch": 256, "epochs": 1,
            "seed": seed, "backbone": "auto", "optimizer": "adamw", "lr": 0.1, "device": "cpu", "ema_tau": 0.0}
    metrics = {"linear_top1": lin, "knn_top1": lin - 10, "init_linear_top1": 50.0}
    append_record(path, make_record("train", case, metrics, env=ENV))


def test_views_verdicts_for_a_regularizer_without_lambd(tmp_path):
    """VICReg has no lambd: its runs (NaN there) must still form one setting (NaN != NaN split them once)."""
    p = tmp_path / "v.jsonl"
    for seed in (0, 1):
        for v, frac, lin in ((2, 0.25, 82.0), (4, 0.25, 82.5), (2, 0.0625, 77.6), (4, 0.0625, 78.1)):
            _views_run(p, v, frac, lin + 0.1 * seed, lambd=None, seed=seed, reg="vicreg")
    rows = _rows(_load(tmp_path), "views", "more views reach")
    assert rows[0].verdict == "not supported" and rows[0].setting.startswith("vicreg fashion_mnist D=128")
    assert "V=4 at frac 0.0625 78.15 vs V=2 at frac 0.25 82.05" in rows[0].figures


def test_views_verdicts_on_a_known_grid(tmp_path):
    p = tmp_path / "v.jsonl"
    # accuracy grows with data; 8 views at a quarter of the data match 2 views at all of it
    for frac, a2, a8 in ((0.25, 70.0, 83.0), (0.5, 75.0, 83.5), (1.0, 80.0, 84.0)):
        for seed in range(3):  # the rules need an interval: at least 2 seeds per arm
            _views_run(p, 2, frac, a2 + 0.1 * seed, seed=seed)
            _views_run(p, 8, frac, a8 + 0.1 * seed, seed=seed)
    _views_run(p, 2, 1.0, 79.5, dim=2048, lambd=0.0051)
    df = _load(tmp_path)
    assert _rows(df, "views", "more views improve accuracy at equal data")[0].verdict == "supported"
    less = _rows(df, "views", "more views reach")[0]
    assert less.verdict == "supported" and "4× less data" in less.figures
    assert _rows(df, "views", "more views at fixed compute")[0].verdict == "supported"  # V=8 at 0.25 vs V=2 at 1
    low = _rows(df, "views", "D = 128")[0]
    assert low.verdict == "inconclusive" and "Δ = +0.60 (no interval" in low.figures  # one seed of D = 2048
    # the paper quotes kNN too: every views claim has a kNN row with its own margin
    for claim in ("more views improve", "more views reach", "more views at fixed", "D = 128"):
        knn = [r for r in _rows(df, "views", claim) if r.claim.endswith("[kNN]")]
        assert len(knn) == 1 and "margin 2" in knn[0].figures, claim


# ---- the layout: every study's rules in its claims module, the analysis side without torch ---------------------
def test_every_study_is_decided_by_its_claims_module():
    assert {st.verdict.__module__ for st in report.STUDIES.values()} == {
        f"sslbench.analysis.claims.{name}" for name in report.STUDIES}


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--help"], ["--list"], ["--format", "markdown", "--study", "fft"], ["--study", "gram"],
                                  ["--run", "gram"], ["--run", "fft", "--scale", "gpu", "--dry-run"]])
def test_report_imports_nothing_of_the_torch_half_with_any_option(tmp_path, argv):
    """`sslbench report` is read-only: with torch unimportable it runs with every option (--run only says where the
    runs went), and it loads no module of execution, training or regularizers."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        sys.modules["torch"] = None  # any import of torch, even a lazy one, fails loudly
        import sslbench.analysis.report as report, sslbench.analysis.claims as claims
        for m in pkgutil.iter_modules(claims.__path__):
            importlib.import_module("sslbench.analysis.claims." + m.name)
        assert len(report.verdicts(None)) > 0
        from sslbench.cli import main
        try:
            code = main(["report", *sys.argv[2:], "--results", sys.argv[1]])
        except SystemExit as e:  # --help
            code = e.code
        loaded = [m for m in sys.modules if m.startswith(("sslbench.execution", "sslbench.training",
                                                          "sslbench.regularizers", "sslbench.probe"))]
        assert not loaded, loaded
        sys.exit(code)
    """)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path), *argv], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == (2 if "--run" in argv else 0), r.stderr
    assert "Traceback" not in r.stderr and "error" not in r.stderr.replace("sslbench report: error: the report only", "")
    if "--run" in argv:
        assert len(r.stderr.strip().splitlines()) == 1 and "sslbench sweep --study" in r.stderr


# ---- rules of each claims module on small known grids ----------------------------------------------------------
def _check(path: Path, study: str, check: str, metrics: dict, created: str = "2026-11-29T00:00:00+00:00") -> None:
    rec = make_record(report.CHECK_KIND, {"study": study, "check": check}, metrics, env=ENV)
    rec["created"] = created
    append_record(path, rec)


@pytest.mark.parametrize("rp, rn, expected", [(0.95, 0.1, "supported"), (0.3, 0.1, "not supported"),
                                              (0.95, 0.95, "not supported"), (0.7, 0.3, "inconclusive")])
def test_fft_mechanism_rule(tmp_path, rp, rn, expected):
    _check(tmp_path / "c.jsonl", "fft", "permutation", {
        "r_permute_structured": rp, "r_no_permute_structured": rn, "r_permute_random": 0.99,
        "r_no_permute_random": 0.98, "batches": 16, "dim": 128, "batch": 512, "draws": 8})
    [row] = _rows(_load(tmp_path), "fft", "the permutation trick helps (accuracy with vs without it) [mechanism")
    assert row.verdict == expected and row.setting == "exact check"
    assert f"r = {rp:g} with, {rn:g} without permutation" in row.figures and "8 draws" in row.figures
    assert fft.PERM_R_MIN > fft.NOPERM_R_MAX


def _sfrik_bench(path: Path, axis: str, values, time_mem) -> None:
    for v in values:
        shape = {"dim": 1000, "batch": 100, **{axis: v}}  # the fixed axis: a size the other sweep does not use
        t, m = time_mem(v)
        append_record(path, make_record("regularizer_bench", {"regularizer": "sfrik", **shape, "views": 2,
                                                              "device": "cpu", "dtype": "float32"},
                                        {"time_median_s": t, "peak_rss_delta_bytes": m}, env=ENV))


def test_sfrik_cost_rules_on_known_exponents(tmp_path):
    _sfrik_bench(tmp_path / "d.jsonl", "dim", DIMS, lambda d: (C * 256 * 256 * d, 8 * 256 * d))  # linear in D
    _sfrik_bench(tmp_path / "n.jsonl", "batch", (256, 512, 1024, 2048), lambda n: (C * n * n * 1000, 4 * n * n))
    df = _load(tmp_path)
    [lin] = _rows(df, "sfrik", "cost linear in D")
    assert lin.verdict == "supported" and "α_D = 1 " in lin.figures
    [mem] = _rows(df, "sfrik", "memory O(N²)")
    assert mem.verdict == "supported" and "memory α_N = 2 " in mem.figures and "time α_N = 2 " in mem.figures
    q = tmp_path / "quad"
    q.mkdir()
    _sfrik_bench(q / "d.jsonl", "dim", DIMS, lambda d: (C * 256 * d * d, 4 * d * d))
    _sfrik_bench(q / "n.jsonl", "batch", (256, 512, 1024, 2048), lambda n: (C * n * 1000, 4 * n * 1000))
    df = _load(q)
    assert _rows(df, "sfrik", "cost linear in D")[0].verdict == "not supported"
    assert _rows(df, "sfrik", "memory O(N²)")[0].verdict == "not supported"


def test_sfrik_accuracy_and_degree2_rules(tmp_path):
    p = tmp_path / "s.jsonl"
    for s in range(2):
        _train(p, "sfrik", s, 80.0 + 0.1 * s)
        _train(p, "vicreg", s, 80.5 + 0.1 * s)
        _train(p, "uniformity", s, 79.5 + 0.1 * s)
    derived = 40.0 * 64 / 63
    _check(p, "sfrik", "degree2", {"r2": 0.999999, "slope": derived * (1 + 1e-5), "slope_derived": derived,
                                   "intercept": 0.0, "batches": 24, "dim": 64, "batch": 256})
    df = _load(tmp_path)
    [acc] = _lin(_rows(df, "sfrik", "accuracy comparable"))
    assert acc.verdict == "supported" and "vicreg 80.55" in acc.figures and "uniformity 79.55" in acc.figures
    [deg] = _rows(df, "sfrik", "the degree-2 truncation")
    assert deg.verdict == "supported" and "24 batches, D=64, N=256" in deg.figures
    off = tmp_path / "off"
    off.mkdir()
    _check(off / "c.jsonl", "sfrik", "degree2", {"r2": 0.999999, "slope": derived * (1 + 10 * sfrik.SLOPE_REL_TOL),
                                                  "slope_derived": derived, "intercept": 0.0, "batches": 24, "dim": 64,
                                                  "batch": 256})
    assert _rows(_load(off), "sfrik", "the degree-2 truncation")[0].verdict == "not supported"


def test_gram_curves_and_speedup_rules(tmp_path):
    p = tmp_path / "g.jsonl"
    _check(p, "gram", "curves", {"loss_rel_diff": gram.GRAM_CURVE_TOL / 10, "steps": 8, "runs": 2, "dim": 64,
                                 "batch": 64})
    for reg in ("barlow_twins", "vicreg"):  # gram costs N²·D, cross_correlation N·D²: gram is faster where N < D
        for n, d in ((256, 1024), (256, 4096), (4096, 256)):
            for algo, t in (("gram", C * n * n * d), ("cross_correlation", C * n * d * d)):
                append_record(p, make_record("regularizer_bench", {"regularizer": reg, "algorithm": algo, "dim": d,
                                                                   "batch": n, "views": 2, "device": "cpu",
                                                                   "dtype": "float32"},
                                             {"time_median_s": t}, env=ENV))
    df = _load(tmp_path)
    assert _rows(df, "gram", "the Gram form gives the same training curves")[0].verdict == "supported"
    [sp] = _rows(df, "gram", "the Gram form is faster")
    assert sp.verdict == "supported" and "best ×16" in sp.figures and "N > D: down to ×0.0625" in sp.figures
    worse = tmp_path / "worse"
    worse.mkdir()
    _check(worse / "g.jsonl", "gram", "curves", {"loss_rel_diff": 0.5, "steps": 8, "runs": 2, "dim": 64, "batch": 64})
    assert _rows(_load(worse), "gram", "the Gram form gives the same training curves")[0].verdict == "not supported"


def test_grouping_keeps_runs_without_a_setting_field_together():
    runs = pd.DataFrame({k: [math.nan, math.nan] for k in common.SETTING})
    runs["dataset"] = "fashion_mnist"
    [(key, g)] = common.groups(runs)  # NaN != NaN would have made two groups
    assert len(g) == 2 and key[common.SETTING.index("dim")] is None


# ---- records a rule cannot read (issue 12 #4) ------------------------------------------------------------------
def _raw(path: Path, rec: dict) -> None:
    """A record written as it stands (NaN and strings included), as a foreign or damaged writer would leave it."""
    with open(path, "a") as f:
        f.write(json.dumps({"schema": 1, "created": "2026-11-29T00:00:00+00:00", "status": "ok", "env": ENV,
                            **rec}) + "\n")


def test_last_check_skips_a_later_unusable_record_with_a_warning(tmp_path):
    good = {"loss_rel_diff": 1e-6, "steps": 8, "runs": 2, "dim": 64, "batch": 64}
    _check(tmp_path / "c.jsonl", "gram", "curves", good, created="2026-11-28T00:00:00+00:00")
    _raw(tmp_path / "c.jsonl", {"kind": report.CHECK_KIND, "id": "later-nan", "case": {"study": "gram", "check": "curves"},
                                "metrics": {**good, "loss_rel_diff": math.nan}})
    df = _load(tmp_path)
    with pytest.warns(RuntimeWarning, match=r"c\.jsonl: record later-nan \(claim_check\).*no finite loss_rel_diff"):
        m = common.last_check(df, "gram", "curves", gram.CURVES_NEEDS)
    assert m["loss_rel_diff"] == 1e-6
    with pytest.warns(RuntimeWarning):
        assert common.last_check(df, "gram", "curves", ("absent_metric",)) is None


def test_one_bad_record_does_not_take_the_report_down(tmp_path, capsys):
    _bench(tmp_path / "b.jsonl", {("barlow_twins", "cross_correlation"): _quadratic, ("barlow_twins_fft", None): _loglinear,
                                  ("vicreg", "cross_correlation"): _quadratic, ("vicreg_fft", None): _loglinear})
    for s in range(2):
        _train(tmp_path / "t.jsonl", "vicreg", s, 80.0, hparams={"std_coeff": 25.0}, eff_rank=20.0, std=0.08)
        _train(tmp_path / "t.jsonl", "vicreg", s, 60.0, hparams={"std_coeff": 0.0}, eff_rank=1.5, std=0.005)
    good = {"loss_rel_diff": 1e-6, "steps": 8, "runs": 2, "dim": 64, "batch": 64}
    _check(tmp_path / "c.jsonl", "gram", "curves", good, created="2026-11-28T00:00:00+00:00")
    bad = tmp_path / "bad.jsonl"
    train_case = {"regularizer": "vicreg", "dataset": "fashion_mnist", "fraction": 0.1, "dim": 128, "views": 2,
                  "batch": 256, "epochs": 1, "seed": 9, "hparams": {"std_coeff": 25.0}}
    _raw(bad, {"kind": "train", "id": "str-metric", "case": train_case, "metrics": {"linear_top1": "high"}})
    _raw(bad, {"kind": "train", "id": "str-dim", "case": {**train_case, "dim": "wide"}, "metrics": {"linear_top1": 70}})
    _raw(bad, {"kind": "train", "id": "str-hparam", "case": {**train_case, "hparams": {"std_coeff": "a lot"}},
               "metrics": {"linear_top1": 70}})
    _raw(bad, {"kind": "regularizer_bench", "id": "str-time", "metrics": {"time_median_s": "slow"},
               "case": {"regularizer": "vicreg_fft", "dim": 4096, "batch": 256, "views": 2, "dtype": "float32"}})
    for rid, v in (("nan-check", math.nan), ("none-check", None), ("str-check", "tiny")):
        _raw(bad, {"kind": report.CHECK_KIND, "id": rid, "case": {"study": "gram", "check": "curves"},
                   "metrics": {**good, "loss_rel_diff": v}})
    assert main(["report", "--results", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "could not evaluate" not in cap.out
    for rid, what in (("str-metric", "metrics.linear_top1 = 'high'"), ("str-dim", "case.dim = 'wide'"),
                      ("str-hparam", "hyper-parameter std_coeff = 'a lot'"), ("str-time", "metrics.time_median_s"),
                      ("str-check", "metrics.loss_rel_diff = 'tiny'")):
        assert f"warning: bad.jsonl: record {rid} (" in cap.err and what in cap.err, (rid, cap.err)
    assert "record nan-check (claim_check): the exact check gram/curves has no finite loss_rel_diff" in cap.err
    assert "record none-check (claim_check)" in cap.err
    # the good records still decide their claims
    assert "[SUPPORTED] loss time grows" in cap.out
    assert "[SUPPORTED] the variance term prevents collapse" in cap.out and "(2 seeds)" in cap.out
    assert "[SUPPORTED] the Gram form gives the same training curves" in cap.out


@pytest.mark.slow
def test_sweep_study_without_pandas_names_the_extra_in_one_line(tmp_path):
    """--study reads the study registry of the analysis side (pandas): without it, one line naming the extra."""
    code = ("import sys; sys.modules['pandas'] = None\n"
            "from sslbench.cli import main\n"
            "sys.exit(main(['sweep', '--study', 'gram', '--dry-run']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "'pandas'" in err[0] and "sslbench[dashboard]" in err[0], r.stderr


# ---- the statistics of the accuracy rows (issue 22) -------------------------------------------------------------
def test_every_accuracy_row_carries_its_interval_and_the_knn_rows_their_own_verdict(tmp_path):
    """Linear: Δ = -0.2 inside the 1-point margin (equivalent); kNN: Δ = -5 beyond its 2-point margin."""
    p = tmp_path / "t.jsonl"
    for s in range(3):
        _train(p, "barlow_twins_fft", s, 80.0 + 0.1 * s, hparams={"permute": True}, knn=65.0 + 0.1 * s)
        _train(p, "barlow_twins", s, 80.2 + 0.1 * s, knn=70.0 + 0.1 * s)
    lin, knn = _rows(_load(tmp_path), "fft", "downstream accuracy")
    assert knn.claim.endswith("[kNN]") and lin.verdict == "supported" and knn.verdict == "not supported"
    assert re.search(r"Δ = -0\.20 \[-0\.\d\d, [+-]0\.\d\d\] \(Welch 95 %, n = 3/3\), margin 1, TOST p = ", lin.figures)
    assert "Δ = -5.00 [" in knn.figures and "margin 2" in knn.figures and "worse beyond the margin" in knn.figures
    assert "TOST" in lin.rule and "±1 points" in lin.rule and "±2 points" in knn.rule and "kNN" in knn.rule


def test_better_needs_its_interval_above_the_margin_and_says_how_many_seeds_would_settle_it(tmp_path):
    p = tmp_path / "t.jsonl"
    for s, (on, off) in enumerate([(82.0, 80.0), (83.6, 79.7), (81.0, 80.3)]):  # Δ = +2.2, a wide spread
        _train(p, "barlow_twins_fft", s, on, hparams={"permute": True})
        _train(p, "barlow_twins_fft", s, off, hparams={"permute": False})
    [row] = _lin(_rows(_load(tmp_path), "fft", "the permutation trick helps (accuracy with vs without it) [training]"))
    c = common.stats.welch([82.0, 83.6, 81.0], [80.0, 79.7, 80.3])
    n = common.stats.seeds_to_settle(c, 1.0)
    assert row.verdict == "inconclusive" and c.lo < 1.0 < c.hi and n is not None and n > 3
    assert f"to settle: {n} seeds per arm would settle it" in row.figures
    assert row.command.startswith(f'STUDIES=fft SEEDS="{" ".join(str(i) for i in range(3, n))}" bash '
                                  "results/studies/run-cpu2.sh   # ")
    q = tmp_path / "clear"
    q.mkdir()
    for s in range(3):
        _train(q / "t.jsonl", "barlow_twins_fft", s, 84.0 + 0.1 * s, hparams={"permute": True})
        _train(q / "t.jsonl", "barlow_twins_fft", s, 80.0 + 0.1 * s, hparams={"permute": False})
        _train(q / "t.jsonl", "vicreg_fft", s, 80.3 + 0.1 * s, hparams={"permute": True})
        _train(q / "t.jsonl", "vicreg_fft", s, 80.0 + 0.1 * s, hparams={"permute": False})
    bt, vic = sorted(_lin(_rows(_load(q), "fft", "the permutation trick helps (accuracy with vs without it) [tr")),
                     key=lambda v: "vicreg" in v.figures)
    assert (bt.verdict, vic.verdict) == ("supported", "not supported")  # +4 clears it; +0.3 is below the margin
    assert bt.command == vic.command == ""


def test_the_earlier_sgd_setting_is_shown_apart_and_its_claims_are_pending(tmp_path):
    p = tmp_path / "t.jsonl"
    for s in range(3):
        _train(p, "barlow_twins_fft", s, 80.0 + 0.1 * s, hparams={"permute": True}, optimizer="sgd")
        _train(p, "barlow_twins", s, 80.2 + 0.1 * s, optimizer="sgd")
    rows = _lin(_rows(_load(tmp_path), "fft", "downstream accuracy"))
    old, pending = rows
    assert report.is_earlier(old) and old.setting.endswith("sgd CPU" + common.EARLIER)
    assert old.verdict == "supported"  # the same rules; shown, not counted
    assert pending.verdict == "no data" and "pending" in pending.figures and not report.is_earlier(pending)
    assert "(0 run(s) of the study's grid recorded)" in pending.figures
    _train(tmp_path / "cpu-fixture-fft-cpu2.jsonl", "barlow_twins", 0, 89.0)  # one arm of the new grid: still pending
    [pending] = [r for r in _lin(_rows(_load(tmp_path), "fft", "downstream accuracy")) if r.verdict == "no data"]
    assert "(1 run(s) of the study's grid recorded)" in pending.figures
    assert pending.command == "STUDIES=fft bash results/studies/run-cpu2.sh"
    text = report.format_verdicts(report.verdicts(_load(tmp_path), ["fft"]))
    last = text.splitlines()[-1]
    assert last.startswith("verdicts: supported 0, not supported 0, inconclusive 0, no data ")
    assert last.endswith("; the earlier setting (the SGD recipe, superseded): supported 2, not supported 0, "
                         "inconclusive 0, no data 0")
    assert report.format_verdicts(report.verdicts(_load(tmp_path), ["fft"]), "markdown").endswith(last)
    q = tmp_path / "sub" / "wide"
    q.mkdir(parents=True)
    for s, (a, b) in enumerate([(79.0, 80.2), (81.0, 80.3), (80.0, 80.1)]):  # an inconclusive row of the SGD recipe
        _train(q / "t.jsonl", "barlow_twins_fft", s, a, hparams={"permute": True}, optimizer="sgd")
        _train(q / "t.jsonl", "barlow_twins", s, b, optimizer="sgd")
    wide = _lin(_rows(_load(q), "fft", "downstream accuracy"))[0]
    assert wide.verdict == "inconclusive" and wide.command.startswith(
        "superseded by the AdamW-recipe grid: STUDIES=fft bash results/studies/run-cpu2.sh   # 21 runs of ~2.4 min")


def test_isoloss_drops_are_read_from_intervals(tmp_path):
    """IsoLoss keeps its accuracy (interval above −1), BYOL drops (interval below −1): supported; with IsoLoss's
    interval across −1 the row is inconclusive and says how many seeds would settle it."""
    p = tmp_path / "i.jsonl"
    for s in range(3):
        for tau in (0.99, 0.0):
            _train(p, "isoloss", s, 80.0 + 0.1 * s, ema_tau=tau)
            _train(p, "byol", s, (80.0 if tau else 70.0) + 0.1 * s, ema_tau=tau)
    row = _rows(_load(tmp_path), "isoloss", "IsoLoss")[0]
    assert row.verdict == "supported" and "isoloss: no EMA" in row.figures and ": kept;" in row.figures
    assert "byol: no EMA" in row.figures and ": dropped;" in row.figures and "Welch 95 %" in row.figures
    q = tmp_path / "wide"
    q.mkdir()
    for s, drop in enumerate((-0.5, 1.5, 0.0)):  # Δ ≈ -0.33 ± 2.6
        for tau in (0.99, 0.0):
            _train(q / "i.jsonl", "isoloss", s, 80.0 + 0.1 * s - (0 if tau else drop), ema_tau=tau)
            _train(q / "i.jsonl", "byol", s, (80.0 if tau else 70.0) + 0.1 * s, ema_tau=tau)
    row = _rows(_load(q), "isoloss", "IsoLoss")[0]
    assert row.verdict == "inconclusive" and ": unknown;" in row.figures and "seeds per arm would settle" in row.figures
    assert row.command.startswith('STUDIES=isoloss SEEDS="3')


def test_the_adamw_grids_write_new_stores_that_run_cpu2_sh_and_sweep_study_share(tmp_path, monkeypatch, capsys):
    """`sslbench sweep --study NAME` (cpu) writes the AdamW-recipe grids into <device>-<study>-cpu2.jsonl, the store
    results/studies/run-cpu2.sh resumes; a study of exact checks only keeps <device>-<study>.jsonl."""
    assert common.store_name("cpu-x", "sfrik", "cpu") == "cpu-x-sfrik-cpu2.jsonl"
    assert common.store_name("cpu-x", "sfrik", "gpu-1h") == "cpu-x-sfrik.jsonl"
    assert common.store_name("cpu-x", "gram", "cpu", grids=False) == "cpu-x-gram.jsonl"
    script = (ROOT / "results" / "studies" / "run-cpu2.sh").read_text()
    assert '--out "results/studies/cpu-intel-xeon-$study-cpu2.jsonl"' in script
    assert report.STUDIES["sfrik"].sweep_commands("cpu", "cpu-intel-xeon") == [
        "sslbench sweep --config results/studies/configs/sfrik-cpu2.toml --out "
        "results/studies/cpu-intel-xeon-sfrik-cpu2.jsonl"]
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--study", "sfrik", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"--config \S*sfrik-cpu2\.toml --out results/studies/cpu-[\w-]+-sfrik-cpu2\.jsonl", out), out


def test_comparable_and_better_on_known_arms():
    """The decision of each rule at its boundaries: equivalent, better beyond the margin (no loss), worse beyond it,
    straddling the margin (inconclusive with a seed count above the seeds it has), below the floor (no count)."""
    def arm(values, init=math.nan):
        return common.Arm(sum(values) / len(values), math.nan, len(values), len(values), init, tuple(values))

    ref = arm([80.0, 80.1, 80.2])
    assert common.comparable(arm([80.1, 80.2, 80.3]), ref).verdict == "supported"
    better = common.comparable(arm([83.0, 83.1, 83.2]), ref)
    assert better.verdict == "supported" and "no loss" in better.figures
    worse = common.comparable(arm([77.0, 77.1, 77.2]), ref)
    assert worse.verdict == "not supported" and "worse beyond the margin" in worse.figures
    wide = common.comparable(arm([79.3, 80.9, 80.1]), ref)  # Δ = 0, s = 0.8: the 90 % interval beyond ±1
    assert wide.verdict == "inconclusive" and wide.seeds is not None and wide.seeds > 3 and wide.have == 3
    assert common.better(arm([83.0, 83.1, 83.2]), ref).verdict == "supported"
    assert common.better(arm([80.3, 80.4, 80.5]), ref).verdict == "not supported"  # +0.3: below the 1-point margin
    floor = common.better(arm([70.0, 70.1, 70.2], init=75.0), arm([65.0, 65.1, 65.2], init=75.0))
    assert floor.verdict == "inconclusive" and floor.seeds is None and "more seeds do not help" in floor.why


def test_run_cpu2_sh_runs_every_study_with_a_cpu_grid_seed_by_seed():
    script = (ROOT / "results" / "studies" / "run-cpu2.sh").read_text()
    default = re.search(r'STUDIES=\$\{STUDIES:-"([^"]*)"\}', script).group(1).split()
    assert sorted(default) == sorted(n for n, st in report.STUDIES.items() if st.configs("cpu"))
    assert 'SEEDS=${SEEDS:-"0 1 2"}' in script and "--seeds \"$seed\"" in script
    for st in report.STUDIES.values():  # the script's glob is the study's CPU scale
        assert sorted(st.configs("cpu")) == sorted(p.name for p in report.CONFIG_DIR.glob(f"{st.name}-cpu2*.toml"))
        for name in st.configs("cpu"):
            assert "seeds = [0, 1, 2]" in (report.CONFIG_DIR / name).read_text(), name


def test_the_cpu_settle_hint_uses_the_measured_pace_of_the_study_grid(tmp_path):
    """Once the study's AdamW-recipe store holds runs, the "to settle" cost is measured, not estimated: the sum over
    its arms of each arm's median wall time (training + evaluation), times the seeds to add."""
    p = tmp_path / "cpu-intel-xeon-fft-cpu2.jsonl"
    walls = {"barlow_twins_fft": [(100, 20), (300, 20)], "barlow_twins": [(50, 10), (70, 10)]}  # medians 220, 70 s
    for reg, runs in walls.items():
        for seed, (train, ev) in enumerate(runs):
            case = {"regularizer": reg, "hparams": {"permute": True} if reg.endswith("fft") else {},
                    "dataset": "fashion_mnist", "fraction": 0.5, "dim": 512, "projector": "512-512", "views": 2,
                    "batch": 256, "epochs": 4, "seed": seed, "backbone": "convnet_pool_2x2", "optimizer": "adamw",
                    "lr": 2e-3, "device": "cpu", "ema_tau": 0.0, "warmup_epochs": 1.0}
            lin = 85.0 + seed * 0.6 if reg.endswith("fft") else 85.6 + seed * 0.4  # Δ -0.3, 2 seeds: inconclusive
            metrics = {"linear_top1": lin, "knn_top1": lin - 8, "init_linear_top1": 80.0, "init_knn_top1": 70.0,
                       "train_time_s": float(train), "eval_time_s": float(ev)}
            append_record(p, make_record("train", case, metrics, "ok", env=ENV))
    df = _load(tmp_path)
    minutes, runs = report.measured_seed_min(df, "fft")
    assert minutes == pytest.approx((220 + 70) / 60) and runs == 4
    minutes, runs = report.measured_seed_min(df, "views")
    assert math.isnan(minutes) and runs == 0
    [bt] = _lin(_rows(df, "fft", "downstream accuracy"))
    assert bt.verdict == "inconclusive", bt.figures
    cpu = bt.command.split("   | GPU: ")[0]
    more = int(cpu.split("# ")[1].split(" seeds per arm")[0]) - 2
    # the two compared arms only (tests/test_targeted_settle.py), each at its own median pace
    assert cpu.startswith("sslbench sweep --config results/studies/configs/fft-cpu2-permute-true.toml "
                          "--regularizers barlow_twins_fft --seeds 2"), cpu
    assert "; sslbench sweep --config results/studies/configs/fft-cpu2-exact.toml --regularizers barlow_twins " in cpu
    assert cpu.endswith(f"~{more * (220 + 70) / 60:.0f} min at the median pace of each arm's recorded runs on this CPU")
    # arms that cannot be matched to the study's configs: the whole grid, at the grid's measured pace
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sslbench.analysis.claims.targeted.read_configs", lambda names, *a: None)
        [bt] = _lin(_rows(df, "fft", "downstream accuracy"))
    cpu = bt.command.split("   | GPU: ")[0]
    assert cpu.startswith(f'STUDIES=fft SEEDS="{" ".join(map(str, range(2, 2 + more)))}" bash '), cpu
    assert cpu.endswith(f"~{more * (220 + 70) / 60:.0f} min at the median pace of its 4 recorded run(s) on this CPU")


def test_a_relaxed_and_exact_pair_never_at_equal_coefficients_is_said_so(tmp_path):
    """The AdamW fft grid first ran Barlow Twins at its lambd = 1/D and the FFT relaxation at 0.0051: the rule
    compares them only at equal coefficients, so the pair was left out in silence. It is now a "no data" row naming
    the coefficients; once the exact loss runs at the relaxed one's, the comparison is made."""
    p = tmp_path / "t.jsonl"
    for s in range(2):
        _train(p, "barlow_twins_fft", s, 80.0 + s, hparams={"permute": True, "lambd": 0.0051})
        _train(p, "barlow_twins", s, 80.5 + s, hparams={"lambd": 1 / 512})
    rows = _lin(_rows(_load(tmp_path), "fft", "downstream accuracy"))
    assert [v.verdict for v in rows] == ["no data"]
    assert "barlow_twins_fft ran at lambd 0.0051" in rows[0].figures and "never at equal coefficients" in rows[0].figures
    for s in range(2):
        _train(p, "barlow_twins", s, 80.2 + s, hparams={"lambd": 0.0051})
    rows = _lin(_rows(_load(tmp_path), "fft", "downstream accuracy"))
    assert [v.verdict for v in rows] == ["inconclusive"] and "(both lambd 0.0051)" in rows[0].figures
