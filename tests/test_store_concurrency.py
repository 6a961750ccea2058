"""The store shared by many writers (sslbench/records/store.py) and the claims per case (sslbench/records/claims.py):
concurrent appends from several processes give intact lines, none lost; a claim is exclusive; a stale claim (dead
process on this host, or no heartbeat from another host) is taken over, a live one is not; a release never removes
a claim that replaced its own."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time

import pytest

from sslbench.records import append_record, make_record, read_records
from sslbench.records import claims
from sslbench.records.store import store_size


def _writer(path: str, writer: int, n: int, pad: int) -> None:
    for i in range(n):
        append_record(path, make_record("t", {"writer": writer, "i": i}, {"pad": "x" * pad}, "ok", env={}))


@pytest.mark.slow
def test_concurrent_appends_from_several_processes_give_every_line_intact(tmp_path):
    path = str(tmp_path / "store.jsonl")
    # lines of ~64 KiB: far above PIPE_BUF / one write() call, so interleaving would show without the lock
    writers, n, pad = 4, 25, 64 * 1024
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, w, n, pad)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b"" and len(lines) == writers * n + 1
    parsed = [json.loads(line) for line in lines[:-1]]  # every line is one whole JSON record
    assert sorted((r["case"]["writer"], r["case"]["i"]) for r in parsed) == [(w, i) for w in range(writers)
                                                                              for i in range(n)]
    assert all(len(r["metrics"]["pad"]) == pad for r in parsed)


def _append_when_told(path: str, started) -> None:
    started.set()
    append_record(path, make_record("t", {"i": 1}, {}, "ok", env={}))


@pytest.mark.slow
def test_an_append_waits_for_the_lock_another_process_holds(tmp_path):
    import fcntl

    path = tmp_path / "s.jsonl"
    append_record(path, make_record("t", {"i": 0}, {}, "ok", env={}))
    size = store_size(path)
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    with open(path, "rb+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)  # a writer of another process, half-way through its line
        writer = ctx.Process(target=_append_when_told, args=(str(path), started))
        writer.start()
        assert started.wait(300)
        writer.join(0.5)
        assert writer.is_alive() and store_size(path) == size  # it waits: nothing written under the lock
        fcntl.lockf(f, fcntl.LOCK_UN)
    writer.join(300)
    assert writer.exitcode == 0 and [r["case"]["i"] for r in read_records(path)] == [0, 1]


def test_read_from_an_offset_sees_only_the_records_appended_since(tmp_path):
    path = tmp_path / "s.jsonl"
    append_record(path, make_record("t", {"i": 0}, {}, "ok", env={}))
    offset = store_size(path)
    append_record(path, make_record("t", {"i": 1}, {}, "ok", env={}))
    assert [r["case"]["i"] for r in read_records(path, start=offset)] == [1]
    assert [r["case"]["i"] for r in read_records(path)] == [0, 1]
    assert store_size(tmp_path / "none.jsonl") == 0


def test_a_claim_is_exclusive_and_released_after_use(tmp_path):
    store = tmp_path / "s.jsonl"
    first = claims.try_claim(store, "abc", heartbeat_s=3600)
    assert first is not None and first.taken_over is None
    assert claims.try_claim(store, "abc") is None  # this very process is alive: not stale
    held = claims.read_claims(store)["abc"]
    assert held["host"] == socket.gethostname() and held["pid"] == os.getpid() and held["stale"] is None
    first.release()
    assert claims.read_claims(store) == {}
    again = claims.try_claim(store, "abc")
    assert again is not None
    again.release()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_claim(store, case: str, info: dict, age_s: float = 0.0) -> None:
    folder = claims.claims_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case}.claim"
    path.write_text(json.dumps(info))
    now = path.stat().st_mtime
    os.utime(path, (now - age_s, now - age_s))


@pytest.mark.slow
def test_the_claim_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    store = tmp_path / "s.jsonl"
    pid = _dead_pid()
    _write_claim(store, "abc", {"host": socket.gethostname(), "pid": pid, "pid_start": None, "nonce": "old"})
    assert "is gone" in claims.read_claims(store)["abc"]["stale"]
    claim = claims.try_claim(store, "abc")
    assert claim is not None and f"process {pid}" in claim.taken_over
    assert claims.read_claims(store)["abc"]["pid"] == os.getpid()
    claim.release()


def test_a_reused_pid_does_not_keep_a_claim_alive(tmp_path):
    store = tmp_path / "s.jsonl"
    # this process's pid, but a start time that is not this process's: the claimant was an earlier process
    _write_claim(store, "abc", {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": "-1",
                                "nonce": "old"})
    if claims._pid_start(os.getpid()) is None:
        pytest.skip("no /proc here: process start times cannot be read")
    claim = claims.try_claim(store, "abc")
    assert claim is not None and claim.taken_over
    claim.release()


def test_a_claim_from_another_host_is_stale_only_without_a_recent_heartbeat(tmp_path):
    store = tmp_path / "s.jsonl"
    other = {"host": "node-elsewhere", "pid": 1, "pid_start": None, "nonce": "old"}
    _write_claim(store, "fresh", other, age_s=10)
    _write_claim(store, "silent", other, age_s=1000)
    assert claims.try_claim(store, "fresh", stale_after_s=300) is None
    claim = claims.try_claim(store, "silent", stale_after_s=300)
    assert claim is not None and "no heartbeat from node-elsewhere" in claim.taken_over
    claim.release()
    assert set(claims.read_claims(store)) == {"fresh"}


def test_the_heartbeat_refreshes_the_claim_and_a_release_keeps_a_claim_that_replaced_it(tmp_path):
    store = tmp_path / "s.jsonl"
    claim = claims.try_claim(store, "abc", heartbeat_s=0.01)
    old = claim.path.stat().st_mtime - 100
    os.utime(claim.path, (old, old))
    deadline = time.time() + 60
    while claim.path.stat().st_mtime <= old and time.time() < deadline:
        time.sleep(0.01)
    assert claim.path.stat().st_mtime > old  # the heartbeat thread touched it
    # someone took the case over (this claim was judged stale): our release must not remove their claim
    claim.path.write_text(json.dumps({"host": "node-b", "pid": 7, "nonce": "theirs"}))
    claim.release()
    assert claims.read_claims(store)["abc"]["nonce"] == "theirs"


def _claimer(store: str, case: str, queue, all_tried) -> None:
    claim = claims.try_claim(store, case, heartbeat_s=3600)
    queue.put(claim is not None)
    all_tried.wait(300)  # hold it until every process has tried (the parent says so; 300 s only bounds a hang)


@pytest.mark.slow
def test_among_processes_racing_for_a_stale_claim_exactly_one_wins(tmp_path):
    store = tmp_path / "s.jsonl"
    _write_claim(store, "abc", {"host": "node-gone", "pid": 1, "pid_start": None, "nonce": "old"}, age_s=10_000)
    ctx = mp.get_context("spawn")
    queue, all_tried = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_claimer, args=(str(store), "abc", queue, all_tried)) for _ in range(4)]
    for p in procs:
        p.start()
    wins = [queue.get(timeout=300) for _ in procs]
    all_tried.set()  # every process has tried while the winner still held the claim
    for p in procs:
        p.join(300)
    assert sum(wins) == 1
