"""Tests of ``sslbench sweep --executor local|slurm``, ``--status`` / ``--cancel`` and of many writers on one store
(sslbench/execution/cluster.py, the claims in the sweep's loop, sslbench/execution/plan.py).

With real processes: local workers give the records of the inline loop; a worker killed with SIGKILL mid-case
loses nothing and duplicates nothing; two sweeps started at once record each case once; the SLURM path runs
against a fake sbatch/srun/sacct/scancel/scontrol (tests/fake_slurm.py) that runs the array's tasks on this
machine: the submission file is submitit's own, a time-out signal requeues the task and its training case
resumes from its checkpoint."""

from __future__ import annotations

import argparse
import contextlib
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

from processes import alive, measuring
from sslbench.execution import plan, sweep
from sslbench.records import append_record, read_records

pytest.importorskip("submitit")
from sslbench.execution import cluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAKE = Path(__file__).resolve().parent / "fake_slurm.py"

BENCH = ["--kind", "bench", "--regularizers", "barlow_twins", "vicreg", "--dims", "4", "8", "--batches", "8",
         "--device", "cpu", "--warmup", "0", "--repeats", "2", "--min-time", "0.01", "--no-progress"]
TRAIN = ["--kind", "train", "--datasets", "synthetic", "--device", "cpu", "--dims", "8", "--epochs", "1",
         "--batches", "16", "--data-option", "num_samples=48", "--data-option", "channels=1",
         "--data-option", "height=12", "--data-option", "width=12", "--data-option", "num_classes=4",
         "--train-option", "backbone=convnet", "--train-option", "projector=16", "--train-option", "augment=none",
         "--train-option", "max_steps=2", "--train-option", "eval=false", "--train-option", "eval_init=false",
         "--train-option", "log_dir=none", "--no-progress"]


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    env.pop("PYTHONWARNINGS", None)
    env.update(extra)
    return env


def _sweep(argv: list[str], cwd, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sslbench", "sweep", *argv], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def _records(path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return read_records(path)


def _by_case(path) -> dict[str, list[str]]:
    """{sweep case id: [statuses of its records, in order]}"""
    out: dict[str, list[str]] = {}
    for r in _records(path):
        out.setdefault(plan.sweep_id_of(r), []).append(r["status"])
    return out


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sweep.add_arguments(p)
    return p.parse_args(argv)


# ==============================================================================================================
# Settings
# ==============================================================================================================
@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 2), ("4:00:00", 240), ("0:30:00", 30),
                                           ("1-00:00:00", 1440), ("2-06", 3240), ("1-0:10", 1450)])
def test_slurm_time_reads_every_slurm_format(text, minutes):
    assert cluster.slurm_minutes(text) == minutes


def test_executor_settings_come_from_the_config_under_the_option_names(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('kind = "bench"\nexecutor = "slurm"\nslurm_partition = "gpu"\nslurm_time = "2:00:00"\n'
                   'slurm_array_parallelism = 8\ngpus_per_case = 1\n[slurm_options]\naccount = "abc"\n')
    s = sweep.resolve_settings(sweep._dict_args(_parse(["--slurm-option", "qos=high"])), sweep.load_config(cfg))
    assert (s["executor"], s["slurm_partition"], s["slurm_time"], s["slurm_array_parallelism"]) == \
        ("slurm", "gpu", "2:00:00", 8)
    assert s["slurm_options"] == {"account": "abc", "qos": "high"} and s["gpus_per_case"] == 1
    inline = sweep.resolve_settings(_parse([]), {})
    assert inline["executor"] == "inline" and inline["workers"] is None


@pytest.mark.parametrize("argv, expected", [
    (["--executor", "slurm", "--slurm-time", "soon"], "--slurm-time soon: write [D-]HH:MM:SS or minutes"),
    (["--executor", "slurm"], "sbatch is not on PATH"),
    (["--workers", "0"], "--workers=0 must be >= 1"),
])
def test_bad_executor_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, expected):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code = sweep.run(_parse(BENCH[:-1] + ["--isolate", "never", "--out", str(tmp_path / "s.jsonl")] + argv))
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_checkpointed_worker_is_resubmitted_with_the_same_case(tmp_path):
    worker = cluster.CaseWorker("sweep", {"kind": "bench"}, [{"a": 1}, {"a": 2}], str(tmp_path / "s.jsonl"))
    delayed = worker.checkpoint([1])  # what submitit pickles for the requeued task
    assert delayed.function is worker and delayed.args == ([1],) and delayed.kwargs == {}


# ==============================================================================================================
# Local workers
# ==============================================================================================================
@pytest.mark.slow
@pytest.mark.parametrize("grid", ["bench", "train"])
def test_local_workers_give_the_records_of_the_inline_loop(tmp_path, grid):
    argv = BENCH + ["--isolate", "never"] if grid == "bench" else TRAIN + ["--regularizers", "barlow_twins", "vicreg",
                                                  "--train-option", f"checkpoint_dir={tmp_path / 'ckpt'}"]
    inline = _sweep(argv + ["--out", "inline.jsonl"], tmp_path)
    assert inline.returncode == 0, inline.stdout + inline.stderr
    local = _sweep(argv + ["--out", "local.jsonl", "--executor", "local", "--workers", "2"], tmp_path)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "2 local worker(s), 1 thread(s) per case" in local.stdout  # 2 cores // 2 workers, or 1 core
    want = _by_case(tmp_path / "inline.jsonl")
    assert len(want) == 4 if grid == "bench" else 2
    assert _by_case(tmp_path / "local.jsonl") == want  # each case once, same ids, same statuses
    assert all(v == ["ok"] for v in want.values())
    assert f"{len(want)} done, 0 running, 0 failed, 0 pending" in local.stdout
    # two workers shared the list: between them each case ran once (who ran which depends on the scheduler)
    outs = [p.read_text() for p in (tmp_path / "local.jsonl.sweep" / "jobs").glob("*/*_log.out")]
    ran = [ln for o in outs for ln in o.splitlines() if re.match(rf"\[\d+/{len(want)}\] ", ln)]
    assert len(outs) == 2 and len(ran) == len(want)
    status = _sweep(argv + ["--out", "local.jsonl", "--status"], tmp_path)
    assert f"{len(want)} done" in status.stdout and "jobs: 2 FINISHED" in status.stdout


def _wait_for(predicate, timeout: float = 600.0, proc: subprocess.Popen | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended first: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def _claims(store: Path) -> list[dict]:
    out = []
    for p in (Path(str(store) + ".sweep") / "claims").glob("*.claim"):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            pass
    return out


@pytest.mark.slow
def test_a_worker_killed_mid_case_loses_nothing_and_duplicates_nothing(tmp_path):
    store = tmp_path / "s.jsonl"
    argv = TRAIN + ["--regularizers", "barlow_twins", "vicreg", "--seeds", "0", "1", "--out", str(store),
                    "--train-option", f"checkpoint_dir={tmp_path / 'ckpt'}"]
    proc = subprocess.Popen([sys.executable, "-m", "sslbench", "sweep", *argv, "--executor", "local", "--workers",
                             "2"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    victim = _wait_for(lambda: _claims(store), proc=proc)[0]
    os.kill(victim["pid"], signal.SIGKILL)  # a worker dies mid-case (its training child dies with it)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1 and "failed" in err, out + err
    # the other worker took the dead one's case over, or the next run does: resume
    again = _sweep(argv, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    cases = _by_case(store)
    assert len(cases) == 4 and all(v == ["ok"] for v in cases.values()), cases  # none lost, none twice
    assert _claims(store) == []


ENDLESS = ["--kind", "bench", "--regularizers", "barlow_twins", "--batches", "32", "--device", "cpu", "--isolate",
           "always", "--warmup", "0", "--max-repeats", "1000000", "--min-time", "1e6", "--no-progress"]


@pytest.mark.slow
def test_sigterm_to_a_local_sweep_stops_its_workers_and_records_their_cases_as_interrupted(tmp_path):
    """SIGTERM (a scheduler's stop) to ``--executor local`` used to kill the launcher alone: its workers ran on
    with nobody told. Now the workers are stopped, each records its running case as "interrupted", and the
    launcher says so and exits 143."""
    store = tmp_path / "s.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "sslbench", "sweep", *ENDLESS, "--dims", "16", "24", "--out",
                             str(store), "--executor", "local", "--workers", "2"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claims = _wait_for(lambda: len(_claims(store)) == 2 and _claims(store), proc=proc)  # both cases claimed
    workers = sorted({c["pid"] for c in claims})
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    # and both measuring, so that each worker has a running case to record as interrupted: waiting for the claims
    # alone let one worker be stopped before its case started (seen once at a load average of 12: one record)
    _wait_for(lambda: all(measuring(pid) for pid in workers), proc=proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, out + err
    assert "interrupted (SIGTERM); the workers were stopped" in err and "Traceback" not in err, err
    assert not any(alive(pid) for pid in workers)
    assert sorted(r["status"] for r in _records(store)) == ["interrupted", "interrupted"]
    assert _claims(store) == []


@pytest.mark.slow
def test_two_sweeps_started_at_once_on_one_store_record_each_case_once(tmp_path):
    store = tmp_path / "s.jsonl"
    argv = BENCH + ["--isolate", "always", "--out", str(store)]  # a process per case: the two runs overlap
    procs = [subprocess.Popen([sys.executable, "-m", "sslbench", "sweep", *argv], cwd=tmp_path, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    cases = _by_case(store)
    assert len(cases) == 4 and all(v == ["ok"] for v in cases.values()), cases
    assert sum(o.count("ok ") for o, _ in outs) >= 4  # between them they measured every case


@pytest.mark.slow
def test_the_summary_names_the_devices_and_warns_when_the_store_mixes_them(tmp_path):
    store = tmp_path / "s.jsonl"
    argv = BENCH + ["--isolate", "never", "--out", str(store)]
    first = _sweep(argv, tmp_path)
    assert first.returncode == 0 and "device: " in first.stdout and "mixes" not in first.stdout
    rec = _records(store)[0]
    rec["env"] = {**rec["env"], "device_name": "NVIDIA H200"}
    rec["id"] = rec["id"]
    append_record(store, rec)
    again = _sweep(argv, tmp_path)
    assert "the store mixes 2 devices" in again.stdout and "NVIDIA H200 (1 record(s))" in again.stdout


# ==============================================================================================================
# SLURM, faked
# ==============================================================================================================
@pytest.fixture()
def fake_slurm(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name in ("sbatch", "srun", "sacct", "scancel", "scontrol"):
        path = bin_dir / name
        path.write_text(f'#!/bin/bash\nexec "{sys.executable}" "{FAKE}" {name} "$@"\n')
        path.chmod(0o755)
    return _env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_SLURM_DIR=str(state)), state


def _state(state: Path, task: str) -> str:
    try:
        return (state / f"{task}.state").read_text().split("|")[1]
    except (OSError, IndexError):
        return ""


@pytest.mark.slow
def test_slurm_submits_one_array_of_submitits_script_and_status_reads_it_back(tmp_path, fake_slurm):
    env, state = fake_slurm
    store = tmp_path / "s.jsonl"
    argv = BENCH + ["--isolate", "never", "--out", str(store)]
    sub = _sweep(argv + ["--executor", "slurm", "--slurm-partition", "gpu", "--slurm-time", "0:30:00",
                         "--slurm-array-parallelism", "2", "--slurm-option", "account=abc"], tmp_path, env)
    assert sub.returncode == 0 and "submitted job array 1000 (4 task(s)" in sub.stdout, sub.stdout + sub.stderr
    script = (state / "1000.sh").read_text()  # submitit's own sbatch file
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --account=abc",
                 "#SBATCH --signal=USR2@90", "#SBATCH --job-name=sslbench-s", "#SBATCH --nodes=1"):
        assert line in script
    assert "gpus" not in script  # a CPU grid asks for no GPU
    assert "submitit.core._submit" in script and str(store) + ".sweep/jobs/%j" in script
    _wait_for(lambda: all(_state(state, f"1000_{t}") == "COMPLETED" for t in range(4)))
    cases = _by_case(store)
    assert len(cases) == 4 and all(v == ["ok"] for v in cases.values())
    status = _sweep(argv + ["--status"], tmp_path, env)
    assert "4 done, 0 running, 0 failed, 0 pending" in status.stdout and "jobs: 4 COMPLETED" in status.stdout
    # nothing left to do: a second submission submits nothing
    again = _sweep(argv + ["--executor", "slurm"], tmp_path, env)
    assert "nothing to submit" in again.stdout and not (state / "1001.sh").exists()
    cancel = _sweep(argv + ["--cancel"], tmp_path, env)
    assert cancel.returncode == 0 and "cancelled 4 job(s)" in cancel.stdout
    assert _state(state, "1000_0") == "CANCELLED"


@pytest.mark.slow
def test_status_shows_a_failed_case_with_the_end_of_its_output(tmp_path, fake_slurm):
    env, state = fake_slurm
    store = tmp_path / "t.jsonl"
    # 4096 > the 48 images: train refuses, the case is an "error" record carrying its output
    argv = TRAIN + ["--regularizers", "vicreg", "--batches", "4096", "--out", str(store)]
    assert _sweep(argv + ["--executor", "slurm"], tmp_path, env).returncode == 0
    _wait_for(lambda: _state(state, "1000") in ("COMPLETED", "FAILED"))  # one case: a job, not an array
    status = _sweep(argv + ["--status"], tmp_path, env)
    assert "0 done, 0 running, 1 failed, 0 pending" in status.stdout
    assert "failed   vicreg synthetic" in status.stdout and "larger than the 48 training images" in status.stdout
    assert "    | " in status.stdout  # the last lines of its output


@pytest.mark.slow
def test_a_timed_out_slurm_task_is_requeued_and_its_training_case_resumes_from_its_checkpoint(tmp_path, fake_slurm):
    env, state = fake_slurm
    store, ckpt = tmp_path / "t.jsonl", tmp_path / "ckpt"
    argv = TRAIN + ["--regularizers", "barlow_twins", "--out", str(store), "--train-option", "checkpoint_every=10",
                    "--train-option", f"checkpoint_dir={ckpt}"]
    argv[argv.index("max_steps=2")] = "max_steps=400"
    argv[argv.index("--epochs") + 1] = "1000"
    assert _sweep(argv + ["--executor", "slurm"], tmp_path, env).returncode == 0
    _wait_for(lambda: list(ckpt.glob("*.pt")))  # the case has checkpointed at least once
    (claim,) = _wait_for(lambda: _claims(store))
    assert claim["job"] == "1000" and claim["host"]  # one case: a job, not an array
    os.kill(claim["pid"], signal.SIGUSR2)  # what SLURM sends before the time limit (--signal=USR2@90)
    _wait_for(lambda: (state / "1000.requeued").exists() and _state(state, "1000") == "COMPLETED")
    (rec,) = _records(store)
    assert rec["status"] == "ok" and rec["metrics"]["steps"] == 400
    assert 0 < rec["extra"]["resumed_from_step"] < 400  # the requeued task resumed, it did not start over


@pytest.mark.slow
def test_kill_9_of_a_local_sweep_launcher_stops_its_controllers_and_workers(tmp_path):
    """``kill -9`` of ``--executor local``'s launcher runs none of its handlers: its submitit controllers used to
    run the rest of the grid unwatched. They now get SIGTERM when it dies (PR_SET_PDEATHSIG) and pass it to their
    workers, which record their running cases as interrupted; no process of the sweep is left."""
    import psutil

    store = tmp_path / "s.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "sslbench", "sweep", *ENDLESS, "--dims", "16", "24", "--out",
                             str(store), "--executor", "local", "--workers", "2"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: len(_claims(store)) == 2, proc=proc)  # both workers are running a case
        tree = psutil.Process(proc.pid).children(recursive=True)
        pids = [p.pid for p in tree]
        assert len(pids) >= 4, tree  # two controllers, two workers (and their cases' processes)
        proc.kill()
        proc.wait(timeout=60)
        _wait_for(lambda: not any(alive(pid) for pid in pids), timeout=120)
        _wait_for(lambda: sorted(r["status"] for r in _records(store)) == ["interrupted", "interrupted"], timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the sweep's session


@pytest.mark.slow
def test_a_local_worker_stops_when_its_controller_is_killed(tmp_path):
    """A submitit controller killed by ``kill -9`` cannot pass anything on: its worker, re-parented, used to run
    the rest of its cases unwatched. The worker now gets SIGTERM when its controller dies (PR_SET_PDEATHSIG)."""
    import psutil

    store = tmp_path / "s.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "sslbench", "sweep", *ENDLESS, "--dims", "16", "--out",
                             str(store), "--executor", "local", "--workers", "1"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        (claim,) = _wait_for(lambda: _claims(store), proc=proc)
        worker = psutil.Process(claim["pid"])
        controller = worker.parent()
        assert "submitit.local._local" in " ".join(controller.cmdline())
        controller.kill()
        _wait_for(lambda: not alive(worker.pid), timeout=120)
        try:
            _wait_for(lambda: [r["status"] for r in _records(store)] == ["interrupted"], timeout=300)
        except AssertionError:  # say what the store holds (a flake under load was silent)
            raise AssertionError(f"statuses {[r['status'] for r in _records(store)]}, not ['interrupted']") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_stop_right_after_the_claim_is_recorded_as_interrupted(tmp_path, monkeypatch):
    """A Ctrl-C / SIGTERM that lands just after a case is claimed (its claim file is visible at once) used to stop
    the case with no "interrupted" record: the run had no current case yet. The claim and the current case are
    now taken together, so the stop records the case, and the claim is released."""
    store = tmp_path / "s.jsonl"
    calls = []
    orig = plan._Progress.eta

    def stop_once(self, *args, **kwargs):  # the first thing a claimed case does: a stop arriving right then
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(plan._Progress, "eta", stop_once)
    code = sweep.run(_parse(BENCH + ["--isolate", "never", "--out", str(store)]))
    assert calls and code == 130
    assert [r["status"] for r in _records(store)] == ["interrupted"]
    assert not list((Path(str(store) + ".sweep") / "claims").glob("*.claim"))
