"""Tests of sslbench/sweep.py: settings (config files, command line over file, errors), the grid, the ETA, and the
store's guarantees with real processes: a sweep killed with SIGKILL loses nothing it measured and resumes where it
stopped, a half-written line is reported and skipped, Ctrl-C records the running case as "interrupted" (retried
on resume) and exits 130, and OOM / errors / time-outs become records."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from sslbench.execution import bench, bench_command, plan, sweep
from sslbench.records import FINAL_STATUSES, case_id, read_records

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    sweep.add_arguments(p)
    return p


def _run(argv: list[str]) -> int:
    return sweep.run(_parser().parse_args(argv))


def _bench(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    bench_command.add_arguments(p)
    return bench_command.run(p.parse_args(argv))


def _records(path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return read_records(path)


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONWARNINGS", None)
    return env


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sslbench", "sweep", *args]


# fast in-process bench cases (no fresh process per case, a couple of calls each)
FAST = ["--kind", "bench", "--device", "cpu", "--batches", "8", "--isolate", "never", "--warmup", "0",
        "--repeats", "2", "--no-progress"]

# tiny training runs on synthetic data (a few steps, a quick probe)
TINY_TRAIN = ["--kind", "train", "--datasets", "synthetic", "--device", "cpu", "--dims", "8", "--epochs", "1",
              "--data-option", "num_samples=48", "--data-option", "channels=1", "--data-option", "height=12",
              "--data-option", "width=12", "--data-option", "num_classes=4",
              "--train-option", "backbone=convnet", "--train-option", "projector=16",
              "--train-option", "augment=none", "--train-option", "max_steps=2", "--train-option", "knn_k=5",
              "--train-option", "probe_epochs=2", "--train-option", "eval_init=false", "--no-progress"]


# ==============================================================================================================
# Settings
# ==============================================================================================================
TOML = """
kind = "bench"
regularizers = ["barlow_twins", "vicreg"]
algorithms = ["cross_correlation", "gram"]
dims = [16, 32]
batches = 8
views = [2, 3]
device = ["cpu"]
min_time = 0.05

[hparams]
lambd = 0.0078125
eps = 1e-5
"""


def test_toml_and_json_configs_give_the_same_settings_and_the_command_line_overrides_them(tmp_path):
    (tmp_path / "s.toml").write_text(TOML)
    as_json = {"kind": "bench", "regularizers": ["barlow_twins", "vicreg"],
               "algorithms": ["cross_correlation", "gram"], "dims": [16, 32], "batches": 8, "views": [2, 3],
               "device": ["cpu"], "min_time": 0.05, "hparams": {"lambd": 0.0078125, "eps": 1e-5}}
    (tmp_path / "s.json").write_text(json.dumps(as_json))
    settings = []
    for name in ("s.toml", "s.json"):
        args = sweep._dict_args(_parser().parse_args(["--config", str(tmp_path / name)]))
        settings.append(sweep.resolve_settings(args, sweep.load_config(tmp_path / name)))
    assert settings[0] == settings[1]
    s = settings[0]
    assert s["dims"] == [16, 32] and s["batches"] == [8] and s["hparams"] == {"lambd": 0.0078125, "eps": 1e-5}
    assert s["min_time"] == 0.05 and s["warmup"] == 2 and s["resume"] is True  # unset keys: the defaults
    cases = sweep.build_cases(s)
    assert len(cases) == 2 * 2 * 2 * 2  # 2 regularizers × 2 algorithms × 2 D × 2 V
    # each hyper-parameter goes to the regularizers that have it (vicreg has eps, not lambd)
    assert all(c["hparams"] == ({"eps": 1e-5, "lambd": 0.0078125} if c["regularizer"] == "barlow_twins"
                                else {"eps": 1e-5}) for c in cases)
    # the command line wins over the file, key by key
    args = sweep._dict_args(_parser().parse_args(["--config", str(tmp_path / "s.toml"), "--dims", "64",
                                                  "--hparam", "lambd=1/64", "--no-resume"]))
    s = sweep.resolve_settings(args, sweep.load_config(tmp_path / "s.toml"))
    assert s["dims"] == [64] and s["resume"] is False
    assert s["hparams"] == {"lambd": 1 / 64, "eps": 1e-5}  # tables merge entry by entry
    assert s["views"] == [2, 3] and s["regularizers"] == ["barlow_twins", "vicreg"]
    # the bench cases are sslbench bench's, key for key
    assert cases[0] == bench.bench_case("barlow_twins", 16, 8, 2, "cpu", "float32", "cross_correlation",
                                        {"lambd": 0.0078125, "eps": 1e-5})


def test_unknown_config_key_is_an_error_that_lists_the_allowed_keys(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('kind = "bench"\ndimz = [16]\n')
    assert _run(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'dimz'" in err and "allowed keys:" in err
    for key in ("regularizers", "dims", "batches", "views", "fractions", "seeds", "hparams", "timeout"):
        assert key in err.split("allowed keys:")[1]


@pytest.mark.parametrize("argv, config, expected", [
    (["--regularizers", "barlow_twins", "nope"], None, "unknown regularizer(s) nope"),
    ([], {"dims": []}, "config key dims is empty"),
    ([], {"dims": [16, "32"]}, "config key dims[1]='32' must be an integer"),
    (["--dims", "1"], None, "--dims=1 must be >= 2"),
    (["--hp", "lambdd=0.1", "--regularizers", "barlow_twins"], None, "--hp lambdd: none of the regularizers"),
    (["--hparam", "lambdd=0.1", "--regularizers", "barlow_twins"], None, "--hp lambdd: none of the regularizers"),
    (["--kind", "train", "--fractions", "0.5", "1.5", "--datasets", "synthetic"], None, "outside (0, 1]"),
    (["--kind", "train", "--fractions", "0"], None, "outside (0, 1]"),
    (["--fractions", "0.5"], None, "--fractions applies to --kind train only"),
    (["--kind", "train", "--datasets", "mnist"], None, "unknown data set(s) mnist"),
    (["--kind", "train", "--datasets", "synthetic", "--train-option", "dim=8"], None, "use --dims"),
    (["--kind", "train", "--datasets", "synthetic", "--train-option", "lr_=1"], None, "not a field of"),
    (["--kind", "train", "--datasets", "synthetic", "--train-option", "optimizer=adam"], None, "optimizer='adam'"),
    (["--device", "tpu"], None, "--device tpu:"),
])
def test_bad_input_is_a_clear_error_with_exit_status_2(tmp_path, capsys, argv, config, expected):
    if config is not None:
        (tmp_path / "c.json").write_text(json.dumps(config))
        argv = argv + ["--config", str(tmp_path / "c.json")]
    assert _run(argv + ["--out", str(tmp_path / "s.jsonl"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sslbench sweep: error:") and expected in err, err
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("make_out", ["folder", "below_a_file", "readme"])
@pytest.mark.parametrize("command", ["sweep", "bench"])
def test_a_bad_out_is_refused_in_one_line_before_any_work(tmp_path, capsys, monkeypatch, command, make_out):
    readme = tmp_path / "README.md"
    readme.write_text("# notes\nnot a store\n")
    out = {"folder": tmp_path, "below_a_file": readme / "s.jsonl", "readme": readme}[make_out]
    ran = []
    monkeypatch.setattr(plan, "_run_bench_case", lambda *a, **k: ran.append(a))
    argv = ["--regularizers", "simclr", "--dims", "4", "--batches", "8", "--device", "cpu", "--out", str(out)]
    rc = _run(["--kind", "bench"] + argv) if command == "sweep" else _bench(argv)
    err = capsys.readouterr().err
    assert rc == 2 and not ran
    assert err.startswith(f"sslbench {command}: error: --out ") and str(readme if make_out != "folder" else out) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert readme.read_text() == "# notes\nnot a store\n"  # never appended to


def test_a_record_that_cannot_be_written_is_saved_elsewhere(tmp_path, capsys, monkeypatch):
    import sslbench.records.store as records  # the writer that append_record_safely calls

    store = tmp_path / "s.jsonl"
    real_append = records.append_record

    def full_disk(path, record):
        if Path(path) == store:
            raise OSError(28, "No space left on device")
        real_append(path, record)

    monkeypatch.setattr(records, "append_record", full_disk)
    monkeypatch.chdir(tmp_path)
    assert _run(FAST + ["--regularizers", "simclr", "--dims", "4", "--out", str(store)]) == 0
    (saved,) = tmp_path.glob("unsaved-*.jsonl")
    (rec,) = _records(saved)
    assert rec["status"] == "ok" and rec["case"]["dim"] == 4
    assert "No space left on device" in capsys.readouterr().err


def test_default_store_is_under_results_sweeps_named_by_device_and_config(tmp_path):
    s = sweep.resolve_settings(sweep._dict_args(_parser().parse_args(["--device", "cpu"])), {})
    out = Path(sweep.default_out(s, None))
    assert out.parent == Path(sweep.DEFAULT_DIR) and out.name.startswith("cpu-") and out.name.endswith("-bench.jsonl")
    assert Path(sweep.default_out(s, str(tmp_path / "scaling-dim.toml"))).name.endswith("-scaling-dim.jsonl")
    assert sweep.device_slug("cpu") == out.name[: -len("-bench.jsonl")]
    assert all(ch.isalnum() or ch == "-" for ch in sweep.device_slug("cpu"))


def test_eta_fits_start_up_plus_work_per_group_from_the_measured_durations():
    eta = sweep.EtaEstimator("train")
    a = {"dataset": "d", "device": "cpu", "epochs": 2, "fraction": 0.5, "views": 2}  # work 2
    assert eta.remaining([a]) is None  # nothing measured yet
    eta.add(a, 10.0)
    b = dict(a, epochs=4, views=4)  # work 8
    other = dict(a, dataset="e")  # no group yet: all the finished cases
    # one distinct work: proportional to the work
    assert eta.predict(b) == pytest.approx(40.0) and eta.predict(other) == pytest.approx(10.0)
    eta.add(dict(a, fraction=1.0), 14.0)  # work 4: seconds = 6 + 2 * work
    assert eta.predict(b) == pytest.approx(6 + 2 * 8) and eta.predict(a) == pytest.approx(10.0)
    eta.add(dict(other, fraction=1.0), 60.0)  # group e: 60 s for 4 units of work
    assert eta.predict(other) == pytest.approx(30.0)
    assert eta.remaining([a, b, other]) == pytest.approx(10 + 22 + 30)
    # a fit with a negative start-up falls back to the ratio
    c = sweep.EtaEstimator("train")
    c.add(a, 1.0)
    c.add(dict(a, fraction=1.0), 10.0)  # 1 s at work 2, 10 s at work 4: a = -8
    assert c.predict(b) == pytest.approx(8 * 11 / 6)
    bench_eta = sweep.EtaEstimator("bench")
    bench_eta.add({"regularizer": "x", "device": "cpu"}, 1.0)
    bench_eta.add({"regularizer": "x", "device": "cpu"}, 3.0)
    assert bench_eta.predict({"regularizer": "x", "device": "cpu", "dim": 4096}) == pytest.approx(2.0)


# ==============================================================================================================
# In-process sweeps: resume counts, dry run, OOM, interchangeability with sslbench bench
# ==============================================================================================================
def test_dry_run_counts_the_cases_already_done(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    assert _run(FAST + ["--regularizers", "vicreg", "--dims", "4", "6", "--out", str(store)]) == 0
    capsys.readouterr()
    grid = FAST + ["--regularizers", "vicreg", "uniformity", "--dims", "4", "6", "8", "--out", str(store)]
    assert _run(grid + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 case(s): 2 already done in" in out and "4 to run" in out
    assert out.count("done  vicreg") == 2 and out.count("todo  ") == 4
    assert len(_records(store)) == 2  # a dry run measures nothing
    assert _run(grid + ["--dry-run", "--no-resume"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("2 already done in " + str(store)
                                                             + ", 6 to run (--no-resume: all of them)")
    assert _run(grid) == 0
    out = capsys.readouterr().out
    assert "2 already done, skipped" in out and "4 to run" in out
    assert sorted(r["case"]["dim"] for r in _records(store)) == [4, 4, 6, 6, 8, 8]


@pytest.mark.parametrize("grid", [
    ["--kind", "bench", "--regularizers", "vicreg", "--dims", "4", "6", "--batches", "8"],
    ["--kind", "train", "--datasets", "synthetic", "--regularizers", "vicreg", "--dims", "8", "--epochs", "1", "2"],
])
def test_a_dry_run_plans_a_cuda_grid_without_cuda_and_a_real_run_refuses_it(tmp_path, capsys, monkeypatch, grid):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine, or any, without CUDA
    monkeypatch.chdir(tmp_path)  # the default store would be under results/sweeps here
    grid = grid + ["--device", "cuda", "--no-progress"]
    for out in ([], ["--out", str(tmp_path / "s.jsonl")]):
        assert _run(grid + out + ["--dry-run"]) == 0
        cap = capsys.readouterr()
        lines = cap.out.splitlines()
        assert [line.startswith("todo  ") and " cuda" in line for line in lines[:2]] == [True, True]
        assert lines[2].startswith("2 case(s): 0 already done in ") and lines[2].endswith(", 2 to run")
        assert lines[3:] == ["note: this machine has no CUDA device: the plan only; running these cases needs CUDA"]
        assert ("GPU_NAME-" in lines[2]) == (not out) and cap.err == ""
        store = lines[2].removeprefix("2 case(s): 0 already done in ").removesuffix(", 2 to run")
        assert re.fullmatch(r"[\w./-]+", store), store  # pasted, the store stays one shell word (no < or >)
        # the real run keeps its one-line refusal, before any work
        assert _run(grid + out) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("sslbench sweep: error: --device cuda:") and "CUDA" in err[0]
    assert not any(tmp_path.iterdir())
    # a bad device name is still refused by a dry run
    assert _run(grid[:-3] + ["--device", "tpu", "--dry-run"]) == 2
    assert "--device tpu" in capsys.readouterr().err


def test_out_of_memory_is_a_record_and_the_sweep_goes_on(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    # D = 2**18 features × 8 samples fit, but their D×D cross-correlation (256 GiB) cannot be allocated: the CPU
    # allocator's error is an "oom" result. (A case whose inputs alone exceed the memory, such as D = 2**40, is
    # refused before any work: tests/test_cli_bad_input.py.)
    grid = ["--regularizers", "barlow_twins", "--algorithms", "cross_correlation", "--dims", str(2**18), "4"]
    assert _run(FAST + grid + ["--out", str(store)]) == 0
    by_dim = {r["case"]["dim"]: r for r in _records(store)}
    assert by_dim[2**18]["status"] == "oom" and "allocate" in by_dim[2**18]["message"]
    assert by_dim[4]["status"] == "ok" and by_dim[4]["metrics"]["repeats"] == 2
    assert "oom" in FINAL_STATUSES  # a property of the case: not measured again
    capsys.readouterr()
    assert _run(FAST + grid + ["--out", str(store), "--dry-run"]) == 0
    assert "2 already done" in capsys.readouterr().out


def test_a_store_of_sslbench_bench_resumes_under_sweep_and_records_are_the_same(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    bargs = argparse.ArgumentParser()
    bench_command.add_arguments(bargs)
    assert bench_command.run(bargs.parse_args(["--regularizers", "simclr", "--dims", "4", "--batches", "8", "--device", "cpu",
                                       "--isolate", "never", "--warmup", "0", "--repeats", "2", "--out",
                                       str(store)])) == 0
    capsys.readouterr()
    assert _run(FAST + ["--regularizers", "simclr", "--dims", "4", "6", "--out", str(store)]) == 0
    assert "1 already done, skipped" in capsys.readouterr().out
    a, b = _records(store)
    assert a["kind"] == b["kind"] == bench.KIND
    assert set(a["case"]) == set(b["case"]) and set(a["metrics"]) == set(b["metrics"])
    assert set(a["extra"]) == set(b["extra"]) and b["id"] == case_id(bench.KIND, b["case"])


# ==============================================================================================================
# Real processes: kill -9, a half-written line, Ctrl-C
# ==============================================================================================================
# six cases of at least 0.3 s each (min-time, no repeat cap), so that a kill lands in the middle of the sweep
SLOW_GRID = ["--kind", "bench", "--regularizers", "barlow_twins", "vicreg", "uniformity", "--dims", "16", "32",
             "--batches", "32", "--device", "cpu", "--isolate", "never", "--warmup", "1", "--min-time", "0.3",
             "--max-repeats", "1000000", "--no-progress"]
N_SLOW = 6


def _interactive_sigint() -> None:
    # A process started in the background by a non-interactive shell (`.ci/run &`, nohup ... &) inherits SIGINT
    # *ignored*, and Python then installs no KeyboardInterrupt handler: restore the default in the child, as a
    # terminal's Ctrl-C would find it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(argv: list[str], cwd) -> subprocess.Popen:
    return subprocess.Popen(_cmd(*argv), cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_interactive_sigint)


def _wait_for_records(store: Path, proc: subprocess.Popen, k: int = 1, timeout: float = 600.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:  # a liveness limit, not a measurement
        if store.exists() and len(_records(store)) >= k:
            return
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (rc {proc.returncode}) before {k} record(s): {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no record in {store} after {timeout} s")


def _every_case_once_ok(store: Path) -> dict[str, dict]:
    ok = [r for r in _records(store) if r["status"] == "ok"]
    ids = [r["id"] for r in ok]
    assert len(ids) == len(set(ids)) == N_SLOW, f"duplicated or missing cases: {sorted(ids)}"
    return {r["id"]: r for r in ok}


@pytest.mark.slow
def test_killed_sweep_loses_nothing_skips_a_half_written_line_and_resumes(tmp_path):
    store = tmp_path / "store.jsonl"
    proc = _start(SLOW_GRID + ["--out", str(store)], tmp_path)
    _wait_for_records(store, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = _records(store)
    k = len(before)
    assert 1 <= k <= N_SLOW and all(r["status"] == "ok" for r in before)
    # a crash in the middle of a write leaves a line without its end
    with open(store, "ab") as f:
        f.write(b'{"schema": 1, "kind": "regularizer_bench", "id": "0123456789abcdef", "case": {"regu')
    bad_line = len(store.read_bytes().splitlines())

    rerun = subprocess.run(_cmd(*SLOW_GRID, "--out", str(store)), cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    # the half-written line is reported (how many, where) and skipped, the finished cases are skipped and counted
    assert "skipped 1 line(s)" in rerun.stderr and f"line {bad_line}" in rerun.stderr and str(store) in rerun.stderr
    assert f"{k} already done, skipped" in rerun.stdout and f"{N_SLOW - k} to run" in rerun.stdout
    assert sum(line.startswith("[") and ": ok " in line for line in rerun.stdout.splitlines()) == N_SLOW - k
    ok = _every_case_once_ok(store)
    after = _records(store)
    assert len(after) == N_SLOW and after[:k] == before  # what was measured before the kill is untouched
    expected = {case_id(bench.KIND, c) for c in bench.iter_cases(["barlow_twins", "vicreg", "uniformity"], [16, 32],
                                                                 [32], [2], ["cpu"])}
    assert set(ok) == expected
    lines = store.read_bytes().splitlines()
    assert len(lines) == N_SLOW + 1 and lines[bad_line - 1].startswith(b'{"schema": 1, "kind": "regularizer_bench", '
                                                                       b'"id": "0123456789abcdef"')


# a case that never ends by itself (at least 1e6 s of timed calls), run in a child process: while its case folder
# exists, the sweep is inside that case, so a signal sent then lands in it (no timing involved)
ENDLESS = ["--kind", "bench", "--regularizers", "barlow_twins", "--batches", "32", "--device", "cpu",
           "--isolate", "always", "--warmup", "0", "--max-repeats", "1000000", "--no-progress"]


def _case_folder_of(proc: subprocess.Popen, tmpdir: Path, timeout: float = 600.0) -> Path:
    """The case folder (with its spec written) of the sweep ``proc``, once it exists."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:  # a liveness limit, not a measurement
        found = [p for p in tmpdir.glob(f"sslbench-case-{proc.pid}-*") if (p / "spec.json").exists()]
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (rc {proc.returncode}) before its case started: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no case folder in {tmpdir} after {timeout} s")


def _start_in(argv: list[str], cwd: Path, tmpdir: Path) -> subprocess.Popen:
    tmpdir.mkdir(exist_ok=True)
    return subprocess.Popen(_cmd(*argv), cwd=cwd, env=dict(_env(), TMPDIR=str(tmpdir)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_interactive_sigint)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_records_the_running_case_as_interrupted_and_resume_retries_it(tmp_path, signum, code):
    store, tmpdir = tmp_path / "store.jsonl", tmp_path / "tmp"
    # a finished case first (kept), then a sweep whose next case never ends, stopped by the signal inside it
    assert _run(FAST + ["--regularizers", "barlow_twins", "--dims", "16", "--batches", "32",
                        "--out", str(store)]) == 0
    proc = _start_in(ENDLESS + ["--dims", "16", "24", "--min-time", "1e6", "--out", str(store)], tmp_path, tmpdir)
    _case_folder_of(proc, tmpdir)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == code, err
    assert "To resume, run" in err and "interrupted during" in err and "Traceback" not in err
    finished, interrupted = _records(store)
    assert finished["status"] == "ok" and finished["case"]["dim"] == 16  # the finished case is kept
    assert interrupted["status"] == "interrupted" and interrupted["case"]["dim"] == 24
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert interrupted["message"] == f"interrupted by the user ({how})"
    assert not list(tmpdir.glob("sslbench-case-*"))  # the case folder went with the case

    rerun = subprocess.run(_cmd(*FAST, "--regularizers", "barlow_twins", "--dims", "16", "24", "--batches", "32",
                                "--out", str(store)), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 already done, skipped" in rerun.stdout and "1 to run" in rerun.stdout  # the interrupted one reruns
    assert [r["status"] for r in _records(store)] == ["ok", "interrupted", "ok"]


@pytest.mark.slow
def test_the_case_folder_of_a_killed_sweep_is_removed_by_the_next_run(tmp_path):
    store, tmpdir = tmp_path / "store.jsonl", tmp_path / "tmp"
    proc = _start_in(ENDLESS + ["--dims", "16", "--min-time", "1e6", "--out", str(store)], tmp_path, tmpdir)
    folder = _case_folder_of(proc, tmpdir)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=600)
    assert folder.is_dir()  # kill -9 gives the sweep no chance to remove it
    rerun = subprocess.run(_cmd(*FAST, "--regularizers", "vicreg", "--dims", "4", "--out", str(store)),
                           cwd=tmp_path, env=dict(_env(), TMPDIR=str(tmpdir)), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert not folder.exists()


# ==============================================================================================================
# Training cases, each in a child process
# ==============================================================================================================
@pytest.mark.slow
def test_train_cases_give_train_records_and_a_failing_case_is_an_error_record(tmp_path, capsys):
    store = tmp_path / "train.jsonl"
    argv = TINY_TRAIN + ["--regularizers", "vicreg", "--batches", "16", "4096", "--out", str(store),
                         "--threads", "1", "--train-option", f"log_dir={tmp_path / 'runs'}",
                         "--train-option", f"checkpoint_dir={tmp_path / 'ckpt'}"]
    proc = subprocess.run(_cmd(*argv), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr  # 1: a case ended in "error" (it is recorded, the sweep went on)
    ok, error = _records(store)
    # the child's own record of sslbench train, tagged with the sweep's case
    assert ok["kind"] == "train" and ok["status"] == "ok" and ok["case"]["batch"] == 16
    assert ok["metrics"]["steps"] == 2 and "linear_top1" in ok["metrics"] and ok["case"]["projector"] == "16-8"
    assert ok["extra"]["sweep"]["case"]["batch"] == 16 and ok["extra"]["sweep"]["wall_s"] > 0
    assert ok["extra"]["sweep"]["id"] == case_id("train", ok["extra"]["sweep"]["case"]) != ok["id"]
    assert os.path.exists(ok["extra"]["checkpoint"]) and str(tmp_path / "ckpt") in ok["extra"]["checkpoint"]
    assert ok["env"]["threads"] == 1  # --threads reaches the child
    # 4096 > the 48 images: train refuses before it has a record; the sweep writes one with the reason
    assert error["kind"] == "train" and error["status"] == "error" and error["case"]["batch"] == 4096
    assert "batch_size=4096 is larger than the 48 training images" in error["message"]
    assert error["id"] == error["extra"]["sweep"]["id"]
    assert "ok linear" in proc.stdout and "error:" in proc.stdout
    # resume: the ok case is done, the error is tried again
    assert _run(argv + ["--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "2 case(s): 1 already done" in dry and "1 to run" in dry


@pytest.mark.slow
def test_a_training_case_past_its_timeout_is_killed_and_recorded_as_timeout(tmp_path, capsys):
    store = tmp_path / "train.jsonl"
    argv = TINY_TRAIN + ["--regularizers", "barlow_twins", "--batches", "16", "--out", str(store),
                         "--train-option", "log_dir=none", "--train-option", "checkpoint_dir=none"]
    # a child cannot import torch, load data and train within 0.5 s: it is killed at the limit
    assert _run(argv + ["--timeout", "0.5"]) == 0
    (rec,) = _records(store)
    assert rec["kind"] == "train" and rec["status"] == "timeout" and rec["metrics"]["timeout_s"] == 0.5
    assert "--timeout 0.5 s" in rec["message"]
    assert "timeout" not in FINAL_STATUSES
    capsys.readouterr()
    assert _run(argv + ["--dry-run"]) == 0
    assert "1 case(s): 0 already done" in capsys.readouterr().out  # retried on the next run


@pytest.mark.parametrize("flag", ["--hp", "--hparam"])
def test_hp_is_the_flag_and_hparam_its_alias(flag):
    """One name for hyper-parameters in train, bench and sweep: --hp (the docs' spelling), --hparam kept as an alias."""
    args = sweep._dict_args(_parser().parse_args([flag, "lambd=1/64", flag, "eps=1e-5"]))
    assert sweep.resolve_settings(args)["hparams"] == {"lambd": 1 / 64, "eps": 1e-5}
    b = argparse.ArgumentParser()
    bench_command.add_arguments(b)
    assert b.parse_args([flag, "lambd=1/64"]).hparam == [("lambd", 1 / 64)]


def test_train_option_values_read_as_sslbench_train_reads_them():
    """``--train-option augment=none`` is the preset "none" (no augmentation), as ``sslbench train --augment none``;
    it used to become None, which trains with the data set's default augmentations. ``log_dir=none`` stays None
    (that option's own parser says so), ``projector=512-128`` stays text, numbers are numbers."""
    from sslbench.execution.sweep import _train_option_value

    assert _train_option_value("augment", "none") == "none"
    assert _train_option_value("log_dir", "none") is None and _train_option_value("checkpoint_dir", "off") is None
    assert _train_option_value("projector", "512-128") == "512-128"
    assert _train_option_value("max_steps", "2") == 2 and _train_option_value("ema_tau", "0.99") == 0.99
