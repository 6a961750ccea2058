"""The sidecar folder beside a store (``<store>.sweep``: claims, jobs.txt) read as hostile input (issue 18).

``--cancel`` signals only the controllers the sweep started (real processes: an unrelated ``sleep`` survives), the
sidecar of a store reached through a link is the store's own, claims that cannot be read still go stale, odd
sidecar states are one line (or a warning and a skipped line), and ``--status`` / ``--cancel`` write nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processes import alive
from sslbench import cli
from sslbench.records import claims, read_records

pytest.importorskip("submitit")
from sslbench.execution import cluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["sweep", "--kind", "bench", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32",
         "--isolate", "never", "--warmup", "0", "--repeats", "1", "--no-progress"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("PYTHONWARNINGS", None)
    return env


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err, out.err
    return code, out.out, out.err


def _fake_controller(store: Path) -> subprocess.Popen:
    """A process whose command line is that of a submitit controller of ``store``'s jobs folder (python ends its
    options at -c, so the rest is only argv): what --cancel may signal."""
    folder = cluster.jobs_folder(str(store)) / "%j"
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-m", "submitit.local._local",
                             str(folder)])


def _jobs_line(pid, start="absent", executor="local", host=None) -> str:
    job = {"id": str(pid), "cases": []}
    if start != "absent":
        job["pid_start"] = start
    return json.dumps({"executor": executor, "host": host or socket.gethostname(), "submitted": 0.0,
                       "folder": "/elsewhere", "jobs": [job]})


def _write_jobs(store: Path, *lines: str) -> Path:
    path = cluster._jobs_file(str(store))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ln + "\n" for ln in lines))
    return path


def _wait_gone(proc: subprocess.Popen, timeout: float = 30.0) -> bool:
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


# ==============================================================================================================
# 1. --cancel signals only the controllers the sweep started; --status calls nothing else RUNNING
# ==============================================================================================================
def test_cancel_leaves_an_unrelated_process_alone_and_status_does_not_call_it_running(tmp_path):
    store = tmp_path / "s.jsonl"
    store.touch()
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        _write_jobs(store, _jobs_line(bystander.pid), _jobs_line(bystander.pid, claims._pid_start(bystander.pid)))
        status = subprocess.run([sys.executable, "-m", "sslbench", *SWEEP, "--out", str(store), "--status"],
                                cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
        assert status.returncode == 0, status.stderr
        assert "RUNNING" not in status.stdout and "jobs: 2 FINISHED" in status.stdout, status.stdout
        cancel = subprocess.run([sys.executable, "-m", "sslbench", *SWEEP, "--out", str(store), "--cancel"],
                                cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
        assert cancel.returncode == 0 and "no job of" in cancel.stdout, cancel.stdout + cancel.stderr
        time.sleep(0.2)
        assert alive(bystander.pid)  # its pid was listed (even with its own start time): not a controller
    finally:
        bystander.kill()
        bystander.wait()


def test_cancel_signals_its_controller_and_refuses_pids_that_are_not_it(tmp_path, capsys, monkeypatch):
    store = tmp_path / "s.jsonl"
    store.touch()
    ours, reused = _fake_controller(store), _fake_controller(store)
    try:
        deadline = time.time() + 30
        while (not cluster._cmdline(ours.pid)[1:] or not cluster._cmdline(reused.pid)[1:]) and time.time() < deadline:
            time.sleep(0.05)
        _write_jobs(store, _jobs_line(ours.pid, claims._pid_start(ours.pid)),
                    _jobs_line(reused.pid, "1"),  # the pid now names a later process than the one started
                    _jobs_line(-1), _jobs_line(0), _jobs_line(1), _jobs_line(10**30),
                    _jobs_line(ours.pid, claims._pid_start(ours.pid), host="node-elsewhere"))
        sent = []
        real_kill = os.kill

        def kill(pid, sig):
            if sig != 0:
                sent.append(pid)
                if pid != ours.pid:  # never pass on a signal this test does not expect (-1 would hit everything)
                    return None
            return real_kill(pid, sig)

        with monkeypatch.context() as m:
            m.setattr(os, "kill", kill)
            code, out, err = _cli([*SWEEP, "--out", str(store), "--cancel"], capsys)
        assert code == 0 and "cancelled 1 job(s)" in out, out + err
        assert sent == [ours.pid]
        assert "skipped 2 line(s)" in err  # -1 and 10**30 are no local job ids; 0 and 1 are refused (pid <= 1)
        assert _wait_gone(ours) and ours.returncode == -signal.SIGTERM
        assert alive(reused.pid)
    finally:
        for p in (ours, reused):
            p.kill()
            p.wait()


def test_a_new_submission_prunes_the_gone_controllers_and_unreadable_lines_from_jobs_txt(tmp_path):
    store = tmp_path / "s.jsonl"
    store.touch()
    bystander = subprocess.Popen(["sleep", "120"])
    ours = _fake_controller(store)
    try:
        slurm = _jobs_line("123_4", executor="slurm")
        _write_jobs(store, _jobs_line(bystander.pid), slurm, "{cut short", _jobs_line(ours.pid, "1"))

        class Job:
            job_id = str(ours.pid)

        time.sleep(0.3)  # the fake controller has exec'd python
        cluster._save_jobs(str(store), "local", [Job()], [["abc"]])
        subs = cluster.saved_jobs(str(store))
        assert [s["executor"] for s in subs] == ["slurm", "local"]
        assert subs[1]["jobs"] == [{"id": str(ours.pid), "pid_start": claims._pid_start(ours.pid), "cases": ["abc"]}]
        assert cluster._controller(str(store), subs[1], subs[1]["jobs"][0]) == ours.pid
    finally:
        for p in (bystander, ours):
            p.kill()
            p.wait()


ENDLESS = ["sweep", "--kind", "bench", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32",
           "--device", "cpu", "--isolate", "always", "--warmup", "0", "--max-repeats", "1000000", "--min-time", "1e6",
           "--no-progress"]


@pytest.mark.slow
def test_cancel_stops_a_real_local_sweep_and_spares_a_bystander_listed_beside_it(tmp_path):
    store = tmp_path / "s.jsonl"
    launcher = subprocess.Popen([sys.executable, "-m", "sslbench", *ENDLESS, "--out", str(store), "--executor",
                                 "local", "--workers", "1"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        deadline = time.time() + 300
        while not claims.read_claims(store) and time.time() < deadline and launcher.poll() is None:
            time.sleep(0.5)
        assert claims.read_claims(store), launcher.communicate(timeout=60)
        jobs = cluster._jobs_file(str(store))
        with open(jobs, "a") as f:  # someone's line naming an unrelated process, with its own start time
            f.write(_jobs_line(bystander.pid, claims._pid_start(bystander.pid)) + "\n")
        argv = [sys.executable, "-m", "sslbench", *ENDLESS, "--out", str(store)]
        status = subprocess.run([*argv, "--status"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                                timeout=300)
        assert "1 running" in status.stdout and "jobs: 1 FINISHED, 1 RUNNING" in status.stdout, status.stdout
        cancel = subprocess.run([*argv, "--cancel"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                                timeout=300)
        assert "cancelled 1 job(s)" in cancel.stdout, cancel.stdout + cancel.stderr
        out, err = launcher.communicate(timeout=300)
        assert "Traceback" not in err, err
        assert [r["status"] for r in read_records(store)] == ["interrupted"]
        assert alive(bystander.pid)
    finally:
        for p in (launcher, bystander):
            if p.poll() is None:
                p.kill()
            p.wait()


# ==============================================================================================================
# 3. one sidecar for a store however it is reached
# ==============================================================================================================
def test_a_store_reached_through_a_symbolic_link_shares_its_claims(tmp_path):
    real = tmp_path / "real.jsonl"
    real.touch()
    (tmp_path / "link.jsonl").symlink_to(real)
    (tmp_path / "dirlink").symlink_to(tmp_path)
    first = claims.try_claim(real, "case", heartbeat_s=3600)
    try:
        assert claims.try_claim(tmp_path / "link.jsonl", "case") is None
        assert claims.try_claim(tmp_path / "dirlink" / "real.jsonl", "case") is None
        assert claims.sidecar(tmp_path / "link.jsonl") == claims.sidecar(real)
    finally:
        first.release()


def test_a_hard_linked_store_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    real = tmp_path / "real.jsonl"
    real.touch()
    os.link(real, tmp_path / "other.jsonl")
    code, out, err = _cli([*SWEEP, "--out", str(tmp_path / "other.jsonl")], capsys)
    assert code == 2 and "2 hard links" in err and len(err.strip().splitlines()) == 1, err
    assert real.stat().st_size == 0 and not claims.sidecar(real).exists()


# ==============================================================================================================
# 7. a claims folder this user cannot write: one line before any work; claims follow the umask
# ==============================================================================================================
def _unwritable(folder: Path, monkeypatch) -> None:
    """``folder`` is not writable by this process: chmod for a plain user; root writes anywhere, so for root the
    permission check (os.access) is told so."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    real_access = os.access

    def access(path, mode, **kw):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("command", ["sweep", "train"])
def test_a_claims_folder_owned_by_another_user_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, command):
    store = tmp_path / "s.jsonl"
    store.touch()
    folder = claims.claims_dir(store)
    folder.mkdir(parents=True)
    _unwritable(folder, monkeypatch)
    try:
        argv = SWEEP if command == "sweep" else [
            "train", "--dataset", "digits", "--epochs", "1", "--max-steps", "1", "--no-eval", "--quiet",
            "--no-progress", "--log-dir", "none"]
        code, out, err = _cli([*argv, "--out", str(store)], capsys)
        assert code == 2 and "not writable by you" in err and str(folder) in err, out + err
        assert len(err.strip().splitlines()) == 1 and store.stat().st_size == 0
    finally:
        folder.chmod(0o755)


def test_claims_and_their_folders_follow_the_umask(tmp_path):
    old = os.umask(0o002)  # a group's shared results folder
    try:
        claim = claims.try_claim(tmp_path / "s.jsonl", "case", heartbeat_s=3600)
    finally:
        os.umask(old)
    try:
        assert claim.path.stat().st_mode & 0o777 == 0o664
        assert claims.claims_dir(tmp_path / "s.jsonl").stat().st_mode & 0o777 == 0o775
    finally:
        claim.release()


# ==============================================================================================================
# 8. odd sidecar states: unreadable jobs.txt lines are skipped with a warning, the rest is one line
# ==============================================================================================================
def test_unreadable_jobs_txt_lines_are_skipped_with_one_warning(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    store.touch()
    _write_jobs(store, _jobs_line("abc"), '{"executor": "local", "host": "x", "jobs": [{"id": "12', "[1, 2]",
                json.dumps({"executor": "local", "host": socket.gethostname()}), json.dumps({"jobs": "x"}),
                _jobs_line("123_4", executor="slurm"))
    code, out, err = _cli([*SWEEP, "--out", str(store), "--status"], capsys)
    assert code == 0 and "1 case(s) in" in out, out + err
    warnings = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "skipped 5 line(s)" in warnings[0], err


def test_a_claim_holding_a_huge_pid_is_no_traceback_and_goes_stale(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    _write_claim(store, "huge", {"host": socket.gethostname(), "pid": 10**30}, age_s=60)
    held = claims.read_claims(store)["huge"]
    assert held["stale"] and "no owner" in held["stale"]
    claim = claims.try_claim(store, "huge")
    assert claim is not None and claim.taken_over
    claim.release()


# ==============================================================================================================
# 9. claims that cannot be read still go stale; ages are never negative
# ==============================================================================================================
def _write_claim(store, case: str, info, age_s: float = 0.0) -> Path:
    folder = claims.claims_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case}.claim"
    path.write_text(info if isinstance(info, str) else json.dumps(info))
    now = time.time()
    os.utime(path, (now - age_s, now - age_s))
    return path


@pytest.mark.parametrize("content", ["", "{not json", '"a string"',
                                     {"host": socket.gethostname(), "pid": "12345"},
                                     {"host": socket.gethostname(), "pid": True},
                                     {"host": socket.gethostname(), "pid": -1},
                                     {"pid": 12345}])
def test_an_unreadable_claim_is_stale_after_a_few_seconds_only(tmp_path, content):
    store = tmp_path / "s.jsonl"
    _write_claim(store, "young", content, age_s=0)
    _write_claim(store, "old", content, age_s=60)  # > UNREADABLE_STALE_S, < STALE_AFTER_S
    assert claims.try_claim(store, "young") is None  # its owner may be writing it right now
    claim = claims.try_claim(store, "old")
    assert claim is not None and "no owner" in claim.taken_over
    claim.release()


def test_a_claim_that_is_a_folder_is_moved_aside_and_taken_over(tmp_path):
    store = tmp_path / "s.jsonl"
    path = claims.claims_dir(store) / "case.claim"
    (path / "inside").mkdir(parents=True)
    old = time.time() - 60
    os.utime(path, (old, old))
    claim = claims.try_claim(store, "case")
    assert claim is not None and claim.path.is_file()
    claim.release()


def test_a_heartbeat_in_the_future_is_not_believed(tmp_path):
    store = tmp_path / "s.jsonl"
    far = time.time() + 10**9
    for case, claimed in (("dated", time.time() - 1000), ("undated", None)):
        path = _write_claim(store, case, {"host": "node-elsewhere", "pid": 7, "claimed_at": claimed})
        os.utime(path, (far, far))
    held = claims.read_claims(store)
    assert held["dated"]["age_s"] >= 999 and held["dated"]["stale"]
    assert held["undated"]["age_s"] > 0 and held["undated"]["stale"]
    for case in ("dated", "undated"):
        claim = claims.try_claim(store, case)
        assert claim is not None
        claim.release()


# ==============================================================================================================
# 10. --status and --cancel write nothing: a read-only store works, a mistyped path creates no folder
# ==============================================================================================================
def test_status_of_a_mistyped_path_creates_nothing(tmp_path, capsys):
    for action in ("--status", "--cancel"):
        code, out, err = _cli([*SWEEP, "--out", str(tmp_path / "typo" / "s.jsonl"), action], capsys)
        assert code == 2 and "no such store" in err, err
    assert list(tmp_path.iterdir()) == []


def test_status_and_cancel_of_a_read_only_store(tmp_path, capsys, monkeypatch):
    store = tmp_path / "ro" / "s.jsonl"
    store.parent.mkdir()
    store.touch()
    _write_claim(store, "gone", {"host": "node-elsewhere", "pid": 7}, age_s=10**4)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    if os.geteuid() != 0:
        for p in (claims.claims_dir(store), claims.sidecar(store), store.parent):
            p.chmod(0o555)
    else:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (not mode & os.W_OK
                                                                    and real_access(path, mode, **kw)))
    try:
        for action in ("--status", "--cancel"):
            code, out, err = _cli([*SWEEP, "--out", str(store), action], capsys)
            assert code == 0, err
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    finally:
        for p in (claims.claims_dir(store), claims.sidecar(store), store.parent):
            p.chmod(0o755)


def test_status_of_an_unreadable_store_is_one_line(tmp_path, capsys, monkeypatch):
    store = tmp_path / "s.jsonl"
    store.write_text("{}\n")
    if os.geteuid() != 0:
        store.chmod(0o000)
    else:  # root reads anything: the permission check is told so
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (Path(path) != store or not mode & os.R_OK)
                            and real_access(path, mode, **kw))
    try:
        code, out, err = _cli([*SWEEP, "--out", str(store), "--status"], capsys)
        assert code == 2 and "cannot be read by you" in err and len(err.strip().splitlines()) == 1, err
    finally:
        store.chmod(0o644)
