"""sslbench.execution.runner: the one child-process runner (time-outs, "killed" vs "oom", signal forwarding, the
case folders of a killed parent). Fakes for the decisions; real processes (marked slow) for the whole path."""

import os
import signal
import subprocess
import sys

import pytest

from sslbench.execution import runner as R
from tests.fork_signal import run_with_a_signal_during_fork

KILL = -int(signal.SIGKILL)


@pytest.mark.parametrize("returncode, output, before, after, status, words", [
    (KILL, "", 3, 3, "killed", "SIGKILL from outside (no sign of the out-of-memory killer)"),
    (KILL, "", None, None, "killed", "no sign of the out-of-memory killer"),  # no cgroup to read: no evidence
    (KILL, "", 3, 4, "oom", "out-of-memory killer (SIGKILL; the cgroup's oom_kill count rose from 3 to 4)"),
    (KILL, "Traceback ...\nMemoryError\n", 0, 0, "oom", "after reporting that it ran out of memory"),
    (-int(signal.SIGTERM), "", 0, 1, "killed", "SIGTERM from outside"),  # only SIGKILL can be the OOM killer
    (-int(signal.SIGSEGV), "", 0, 0, None, None),  # a crash: the caller records an error
    (0, "", 0, 1, None, None),
    (3, "MemoryError", 0, 0, None, None),
])
def test_a_child_killed_from_outside_is_oom_only_with_evidence(returncode, output, before, after, status, words):
    got, message = R.classify_signal(returncode, output, before, after)
    assert got == status
    if words is not None:
        assert words in message


class FakeProc:
    """A Popen whose first wait() is cut by a Ctrl-C (or by ``first``), and which records the signals it gets."""

    def __init__(self, first=KeyboardInterrupt, then_exits=True):
        self.first, self.then_exits = first, then_exits
        self.pid, self.signals, self.killed, self.waits = 10**7, [], False, 0

    def wait(self, timeout=None):
        self.waits += 1
        if self.waits == 1 and self.first is not None:
            raise self.first() if isinstance(self.first, type) else self.first
        if not self.then_exits and not self.killed:
            raise subprocess.TimeoutExpired("child", timeout)
        return 0

    def send_signal(self, sig):
        self.signals.append(sig)

    def kill(self):
        self.killed = True


def test_an_interrupt_is_forwarded_once_as_sigint_and_kept_for_the_caller():
    proc = FakeProc(first=R.Interrupted(signal.SIGTERM))
    status, message, interrupt = R._wait(proc, 10.0, 5.0, "the limit")
    assert status == "interrupted" and message == "interrupted by the user (SIGTERM)"
    assert isinstance(interrupt, KeyboardInterrupt) and R.signal_of(interrupt) == signal.SIGTERM
    assert proc.signals == [signal.SIGINT] and not proc.killed  # it stopped within its grace time
    proc = FakeProc(then_exits=False)  # a child that ignores the forwarded Ctrl-C is killed after the grace
    status, message, interrupt = R._wait(proc, 10.0, 5.0, "the limit")
    assert status == "interrupted" and "Ctrl-C" in message and proc.killed


def test_a_time_out_kills_the_child():
    proc = FakeProc(first=None, then_exits=False)  # never ends by itself
    status, message, interrupt = R._wait(proc, 0.6, 5.0, "--timeout 2 s")
    assert status == "timeout" and message == "the case ran past --timeout 2 s and was killed"
    assert proc.killed and interrupt is None
    assert proc.waits >= 2  # it waited in steps, looking for a swallowed stop signal in between


def test_a_stop_signal_whose_exception_python_swallowed_still_stops_the_case():
    """Python drops an exception raised in an at-fork hook or a __del__; the handler also notes the signal, and a
    waiting case that finds it noted stops as if the exception had reached it."""
    with R.sigterm_as_interrupt():
        handler = signal.getsignal(signal.SIGTERM)
        try:
            handler(signal.SIGTERM, None)  # what runs inside logging's at-fork hook...
        except KeyboardInterrupt:
            pass  # ...which swallows the exception
        proc = FakeProc(first=None, then_exits=False)
        status, message, interrupt = R._wait(proc, 600.0, 0.1, "the limit")
        assert status == "interrupted" and message == "interrupted by the user (SIGTERM)"
        assert R.signal_of(interrupt) == signal.SIGTERM and proc.signals == [signal.SIGINT]
    assert R._caught == []  # nothing carries over to a later block
    proc = FakeProc(first=None)
    assert R._wait(proc, 600.0, 0.1, "the limit") == (None, None, None)


DURING_FORK_BODY = """
from sslbench.execution import runner as R
try:
    with R.sigterm_as_interrupt(), R.case_folder({tmp!r}) as folder:
        r = R.run_child("tests.runner_child", "--sleep", {{"seconds": 600}}, folder, timeout_s=600, grace_s=30)
    print(r.status, r.message, r.returncode)
except KeyboardInterrupt as exc:
    print("raised", R.signal_of(exc))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_during_the_childs_start_stops_it_without_a_traceback(tmp_path, sig):
    """A SIGTERM (or Ctrl-C) that arrives while subprocess.Popen forks used to run its handler inside logging's
    at-fork hook, where Python printed and dropped the exception: the sweep then waited on its endless case for
    ever. The signals are now held back while the child starts; the case ends "interrupted" at once, the child
    (whose mask is restored) stops on the forwarded SIGINT, and nothing is printed as a traceback."""
    proc = run_with_a_signal_during_fork(sig, DURING_FORK_BODY.format(tmp=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    status, *rest = proc.stdout.split()
    assert status == "interrupted", proc.stdout
    how = "Ctrl-C" if sig == "SIGINT" else "SIGTERM"
    assert f"interrupted by the user ({how})" in proc.stdout
    # the child's own exit status says what ended it: the forwarded SIGINT (a child that missed it, its mask still
    # blocking, would be killed after the 30 s grace: -SIGKILL); a hang is bounded by the helper's time-out
    assert int(rest[-1]) == -signal.SIGINT != KILL, proc.stdout


@pytest.mark.slow
def test_a_child_started_by_a_launcher_that_ignores_sigint_still_stops_on_the_forwarded_sigint(tmp_path):
    """A sweep run in the background (`nohup sslbench sweep ... &`) starts with SIGINT ignored, and an ignored
    signal survives fork and exec: its child ignored the SIGINT forwarded to stop it and was killed after the 30 s
    grace (-SIGKILL), losing what it had not saved. The child now starts with SIGINT at its default."""
    proc = run_with_a_signal_during_fork("SIGTERM", DURING_FORK_BODY.format(tmp=str(tmp_path)), sigint_ignored=True)
    assert proc.returncode == 0, proc.stderr
    status, *rest = proc.stdout.split()
    assert status == "interrupted" and "interrupted by the user (SIGTERM)" in proc.stdout, proc.stdout
    assert int(rest[-1]) == -signal.SIGINT != KILL, proc.stdout


def test_sigterm_raises_an_interrupt_inside_the_block_only():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(R.Interrupted) as info:
        with R.sigterm_as_interrupt():
            signal.raise_signal(signal.SIGTERM)
    assert info.value.signum == signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is previous
    assert R.signal_of(KeyboardInterrupt()) == signal.SIGINT


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_only_the_case_folders_of_a_parent_that_is_gone_are_removed(tmp_path):
    dead = tmp_path / f"{R.CASE_PREFIX}{_dead_pid()}-abc"
    mine = tmp_path / f"{R.CASE_PREFIX}{os.getpid()}-abc"
    alive = tmp_path / f"{R.CASE_PREFIX}{os.getppid()}-abc"
    other = tmp_path / "sslbench-notes-1-abc"
    for folder in (dead, mine, alive, other):
        folder.mkdir()
        (folder / "spec.json").write_text("{}")
    assert R.clean_stale_case_folders(tmp_path) == [dead]
    assert not dead.exists() and mine.exists() and alive.exists() and other.exists()


def test_a_case_folder_is_named_by_its_parent_and_removed_at_the_end(tmp_path):
    with R.case_folder(tmp_path) as folder:
        assert folder.name.startswith(f"{R.CASE_PREFIX}{os.getpid()}-") and folder.parent == tmp_path
        (folder / "x").write_text("x")
    assert not folder.exists()


@pytest.mark.slow
def test_a_real_child_past_its_limit_is_killed_and_one_that_fails_gives_its_last_line(tmp_path):
    counts = iter([0, 0, 0, 0])
    with R.case_folder(tmp_path) as folder:
        r = R.run_child("tests.runner_child", "--sleep", {"seconds": 600}, folder, timeout_s=1.0,
                        oom_counter=lambda: next(counts))
    assert r.status == "timeout" and "its time limit of 1 s" in r.message and r.returncode == KILL
    with R.case_folder(tmp_path) as folder:
        r = R.run_child("tests.runner_child", "--fail", {"text": "the reason"}, folder, timeout_s=600,
                        oom_counter=lambda: next(counts))
    assert r.status is None and r.returncode == 3 and r.last_line == "ValueError: the reason"
    assert r.exit_text() == "exited with code 3"


@pytest.mark.slow
def test_a_real_child_killed_by_sigkill_is_killed_and_its_clock_is_the_one_given(tmp_path):
    ticks = iter([10.0, 12.5])
    with R.case_folder(tmp_path) as folder:
        r = R.run_child("tests.runner_child", "--sigkill", {}, folder, timeout_s=600, oom_counter=lambda: 7,
                        clock=lambda: next(ticks))
    assert r.status == "killed" and r.returncode == KILL and r.wall_s == 2.5
    assert r.exit_text() == "was killed by signal SIGKILL"
