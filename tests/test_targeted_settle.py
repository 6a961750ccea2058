"""The targeted "to settle" command of an inconclusive AdamW-recipe row (sslbench.analysis.claims.targeted): only
the compared arms' runs, only the seeds each lacks, each run matched to the one config that trains it. The
matching is checked on the studies' real CPU configs, the command by running it through ``sslbench sweep
--dry-run``, which must list exactly the runs the plan asked for."""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sslbench.analysis.claims import common, targeted
from sslbench.analysis.claims.common import ArmTable, comparable
from sslbench.analysis.report import STUDIES

ROOT = Path(__file__).resolve().parents[1]
BT = {"lambd": 0.001953125, "scale": 1.0, "eps": 1e-05, "algorithm": "auto", "multiview": "pairs"}
VIC = {"sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0, "eps": 0.0001, "algorithm": "auto"}
FFT = {"sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0, "block_size": None, "power": 2}


def run(reg, hp, seed=0, status="ok", linear=88.0, wall=(100.0, 20.0), source="s/cpu-x-fft-cpu2.jsonl", **case):
    row = dict(regularizer=reg, dataset="fashion_mnist", fraction=0.5, dim=512.0, views=2.0, batch=256.0,
               epochs=4.0, ema_tau=0.0, predictor_hidden=math.nan, hp=dict(hp), seed=float(seed), status=status,
               ok=status == "ok" and math.isfinite(linear), linear_top1=linear, init_linear_top1=80.0,
               train_time_s=wall[0], eval_time_s=wall[1], source=source)
    row.update(case)
    return row


def configs(study):
    got = targeted.read_configs(STUDIES[study].cpu)
    assert got is not None and set(got) == set(STUDIES[study].cpu)
    return got


# ---- matching a run to its config, on the committed configs ---------------------------------------------------
@pytest.mark.parametrize("reg, hp, want", [
    ("vicreg", VIC, "fft-cpu2-exact.toml"),
    ("barlow_twins", BT, "fft-cpu2-exact.toml"),  # the default lambd: the config that sets none
    ("barlow_twins", {**BT, "lambd": 0.0051}, "fft-cpu2-bt-lambd.toml"),  # the one that sets it
    ("vicreg_fft", {**FFT, "permute": True}, "fft-cpu2-permute-true.toml"),
    ("vicreg_fft", {**FFT, "permute": False}, "fft-cpu2-permute-false.toml"),
    ("barlow_twins_fft", {"lambd": 0.0051, "permute": True}, "fft-cpu2-permute-true.toml"),
    ("vicreg", {**VIC, "std_coeff": 0.0}, "fft-cpu2-exact.toml"),  # any vicreg: the exact grid sets nothing
    ("sfrik", {}, None),  # no config of the study trains it
])
def test_config_of_fft(reg, hp, want):
    assert targeted.config_of(run(reg, hp), configs("fft")) == want


def test_config_of_variance_and_isoloss_options():
    """The add-on arms differ by a hyper-parameter the run lacks when off (variance_coeff) and by train options
    (predictor_hidden, ema_tau): each run goes to its own config."""
    var = configs("variance")
    byol = {"check_finite": False}
    on = {**byol, "variance_coeff": 1.0, "variance_eps": 1e-4}
    assert targeted.config_of(run("byol", byol, predictor_hidden=0.0), var) == "variance-cpu2-addon-nopred.toml"
    assert targeted.config_of(run("byol", on, predictor_hidden=0.0), var) == "variance-cpu2-addon-nopred-var.toml"
    assert targeted.config_of(run("byol", byol, predictor_hidden=512.0), var) == "variance-cpu2-addon-pred.toml"
    assert targeted.config_of(run("byol", on, predictor_hidden=512.0), var) == "variance-cpu2-addon-pred-var.toml"
    assert targeted.config_of(run("vicreg", {**VIC, "std_coeff": 0.0}), var) == "variance-cpu2-std0.toml"
    assert targeted.config_of(run("vicreg", VIC), var) == "variance-cpu2-std25.toml"
    assert targeted.config_of(run("byol", byol, predictor_hidden=0.0, ema_tau=0.99), var) is None  # no such arm
    iso = configs("isoloss")
    assert targeted.config_of(run("isoloss", {}, ema_tau=0.99), iso) == "isoloss-cpu2-ema.toml"
    assert targeted.config_of(run("directpred", {}, ema_tau=0.0), iso) == "isoloss-cpu2-noema.toml"
    assert targeted.config_of(run("isoloss", {}, ema_tau=0.5), iso) is None


def test_config_of_axes_and_ties():
    cfgs = {"a.toml": {"regularizers": ["x"], "dims": [128, 512], "views": [2]},
            "b.toml": {"regularizers": ["x"], "dims": [2048]}}
    assert targeted.config_of(run("x", {}, dim=512.0), cfgs) == "a.toml"
    assert targeted.config_of(run("x", {}, dim=2048.0), cfgs) == "b.toml"
    assert targeted.config_of(run("x", {}, dim=1024.0), cfgs) is None
    assert targeted.config_of(run("x", {}, dim=512.0, views=4.0), cfgs) is None
    # two configs that train the same run equally: no guess
    tie = {"a.toml": {"regularizers": ["x"]}, "b.toml": {"regularizers": ["x", "y"]}}
    assert targeted.config_of(run("x", {}), tie) is None


# ---- the seeds each arm lacks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ok, pending, recorded, need, want", [
    ([0, 1, 2], [], [0, 1, 2], 2, [3, 4]),
    ([0, 1], [2], [0, 1, 2], 1, [2]),  # the interrupted seed resumes first
    ([0, 2], [], [0, 1, 2], 1, [3]),  # seed 1 failed: its record stays, so a new seed
    ([0], [3], [0, 1, 3], 3, [3, 2, 4]),
    ([0, 1, 2], [], [0, 1, 2], 0, []),
])
def test_seeds_to_run(ok, pending, recorded, need, want):
    assert targeted.seeds_to_run(ok, pending, recorded, need) == want


# ---- the plan, the command, and the command run through sweep --dry-run ----------------------------------------
def _fft_rows():
    rows = [run("vicreg_fft", {**FFT, "permute": True}, s, linear=87.7 + 0.05 * s, wall=(200.0 + s, 40.0))
            for s in range(3)]
    rows += [run("vicreg_fft", {**FFT, "permute": False}, s, linear=87.0) for s in range(3)]  # not compared
    rows += [run("vicreg", VIC, 0, linear=88.4, wall=(100.0, 20.0)),
             run("vicreg", VIC, 1, linear=88.2, wall=(300.0, 20.0), source="s/cpu-x-variance-cpu2.jsonl"),
             run("vicreg", VIC, 2, status="interrupted", linear=math.nan)]
    return pd.DataFrame(rows)


def test_plan_and_summary():
    rows = _fft_rows()
    steps = targeted.plan(rows.iloc[[0, 1, 2, 6, 7, 8]], 4, configs("fft"))
    assert [(s.config, s.narrow, s.seeds) for s in steps] == [
        ("fft-cpu2-permute-true.toml", (("regularizers", ("vicreg_fft",)),), (3,)),
        ("fft-cpu2-exact.toml", (("regularizers", ("vicreg",)),), (2, 3)),  # the interrupted seed 2 resumes
    ]
    assert steps[0].minutes == pytest.approx((201.0 + 40.0) / 60)  # median of 240, 241, 242 s
    assert steps[1].minutes == pytest.approx(((120.0 + 320.0) / 2) / 60)  # the ok runs only
    text = targeted.summary(steps, 4)
    assert text.startswith("4 seeds per arm: 3 run(s) of the compared arms only")
    assert "~11 min" in text  # 1 × 4.02 + 2 × 3.67 = 11.35 min
    # a seed that errored is run again (not final); one that diverged is not (final): a new seed
    err = pd.DataFrame([run("vicreg", VIC, 0), run("vicreg", VIC, 1, status="error", linear=math.nan),
                        run("vicreg", VIC, 2, status="diverged", linear=math.nan)])
    assert [s.seeds for s in targeted.plan(err, 3, configs("fft"))] == [(1, 3)]
    # a run no config trains, or without a finished run to time: no plan (the hint gives the grid)
    assert targeted.plan(pd.DataFrame([run("sfrik", {})]), 3, configs("fft")) is None
    assert targeted.plan(pd.DataFrame([run("vicreg", VIC, status="error", linear=math.nan)]), 3,
                         configs("fft")) is None


def test_settle_row_names_the_compared_arms_only():
    """An inconclusive comparison of the AdamW recipe: the hint runs the two compared arms' missing seeds into the
    study's own store, not the whole grid."""
    rows = _fft_rows()
    table = ArmTable(rows)
    relaxed = (rows["regularizer"] == "vicreg_fft").to_numpy() & rows["hp"].map(lambda h: h.get("permute") is True).to_numpy()
    exact = (rows["regularizer"] == "vicreg").to_numpy()
    d = comparable(table.arm(relaxed), table.arm(exact), 1.0)
    assert d.verdict == "inconclusive" and d.seeds is not None
    st = STUDIES["fft"]
    line = st.settle_cpu(d)
    cmd, _, note = line.partition("   # ")
    assert "run-cpu2.sh" not in cmd and "barlow_twins" not in cmd and "permute-false" not in cmd
    n = max(d.seeds, d.have + 1)
    want = []  # vicreg_fft has seeds 0-2; vicreg has 0-1 and an interrupted 2 (resumed first)
    if n > 3:
        want.append(f"sslbench sweep --config results/studies/configs/fft-cpu2-permute-true.toml --regularizers "
                    f"vicreg_fft --seeds {' '.join(map(str, range(3, n)))}")
    want.append(f"sslbench sweep --config results/studies/configs/fft-cpu2-exact.toml --regularizers vicreg "
                f"--seeds {' '.join(map(str, range(2, n)))}")
    assert cmd.split("; ") == [f"{w} --out results/studies/cpu-x-fft-cpu2.jsonl" for w in want]
    assert note.startswith(f"{n} seeds per arm:")
    # without the arms' rows (a decision built by hand), or arms from another study's store only: the grid
    assert "run-cpu2.sh" in st.settle_cpu(common.Decision(d.verdict, "", d.comparison, d.seeds, d.have))
    other = ArmTable(rows.assign(source="s/cpu-x-views-cpu2.jsonl"))
    d2 = comparable(other.arm(relaxed), other.arm(exact), 1.0)
    assert "run-cpu2.sh" in st.settle_cpu(d2)


def test_command_runs_exactly_the_planned_cases(tmp_path):
    """The command line, run with --dry-run on an empty store, lists exactly the planned (regularizer, seed, D, V,
    fraction) cases: the narrowing options are ones sweep takes, and narrow a grid that spans more (views-cpu2
    trains V = 2 and 4 at three fractions)."""
    views = configs("views")
    rows = pd.DataFrame([run("barlow_twins", BT, s, fraction=0.25, views=4.0) for s in (0, 1)]
                        + [run("barlow_twins", {**BT, "lambd": 0.0078125}, s, dim=128.0) for s in (0, 1, 2)])
    steps = targeted.plan(rows, 3, views)
    assert [(s.config, s.seeds) for s in steps] == [("views-cpu2.toml", (2,))]  # D = 128 has its 3 seeds
    assert dict(steps[0].narrow) == {"regularizers": ("barlow_twins",), "fractions": ("0.25",), "views": ("4",)}
    store = tmp_path / "store.jsonl"
    line = targeted.command(steps, str(store))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for part in line.split("; "):
        argv = shlex.split(part)
        assert argv[:2] == ["sslbench", "sweep"]
        out = subprocess.run([sys.executable, "-m", "sslbench", *argv[1:], "--dry-run"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        todo = [ln for ln in out.stdout.splitlines() if ln.startswith("todo")]
        assert len(todo) == 1, out.stdout
        assert re.search(r"barlow_twins .*D=512 V=4 frac=0\.25 seed=2 ", todo[0]), todo[0]


def test_the_isoloss_row_runs_the_undecided_methods_seeds_only(tmp_path):
    """IsoLoss's drop without EMA undecided (its interval straddles -1) while the other methods are decided: the
    hint runs IsoLoss without EMA (the arm short of seeds), not the study's 6-arm grid."""
    from sslbench.analysis import load_results
    from sslbench.records import append_record, make_record

    store = tmp_path / "cpu-intel-xeon-isoloss-cpu2.jsonl"
    vals = {("isoloss", 0.0): [88.0, 88.6], ("isoloss", 0.99): [88.5, 88.4, 88.6],
            ("directpred", 0.0): [80.0, 80.2, 80.1], ("directpred", 0.99): [88.5, 88.4, 88.6],
            ("byol", 0.0): [88.4, 88.5, 88.3], ("byol", 0.99): [88.2, 88.1, 88.3]}
    for (reg, tau), lins in vals.items():
        for seed, lin in enumerate(lins):
            case = {"regularizer": reg, "dataset": "fashion_mnist", "fraction": 0.5, "dim": 512, "views": 2,
                    "batch": 256, "epochs": 4, "seed": seed, "device": "cpu", "optimizer": "adamw", "lr": 2e-3,
                    "ema_tau": tau, "warmup_epochs": 1.0, "backbone": "convnet_pool_2x2", "projector": "512-512",
                    "hparams": {"alpha": 0.5}}
            metrics = {"linear_top1": lin, "init_linear_top1": 80.0, "effective_rank": 5.0,
                       "train_time_s": 100.0, "eval_time_s": 20.0}
            append_record(store, make_record("train", case, metrics, "ok", env={"device_name": "Intel Xeon"}))
    [row] = [v for v in STUDIES["isoloss"].verdict(load_results(tmp_path, asv=[]), STUDIES["isoloss"])]
    assert row.verdict == "inconclusive", row.figures
    cpu = row.command.split("   | GPU: ")[0]
    assert cpu.startswith("sslbench sweep --config results/studies/configs/isoloss-cpu2-noema.toml --regularizers "
                          "isoloss --seeds 2"), cpu
    assert "directpred" not in cpu.split("   # ")[0] and "run-cpu2.sh" not in cpu
