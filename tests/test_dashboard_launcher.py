"""``sslbench dashboard`` as a real process: a stop signal to the launcher stops its server too, and results the
pages could not read are reported in one line before anything is served. The server is a stand-in ``streamlit``
package (first on the path) that records its pid and waits, so no real server starts."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fork_signal import run_with_a_signal_during_fork

ROOT = Path(__file__).resolve().parent.parent

FAKE_MAIN = """
import os, sys, time
with open(os.environ["FAKE_STREAMLIT_PID"] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(os.environ["FAKE_STREAMLIT_PID"] + ".tmp", os.environ["FAKE_STREAMLIT_PID"])
while True:
    time.sleep(1)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_for(predicate, what: str, limit_s: float = 120.0):
    """Poll until ``predicate()`` holds; a generous limit only so that a broken launcher fails instead of hanging."""
    end = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _launcher(tmp_path, results: Path) -> tuple[subprocess.Popen, Path]:
    fake = tmp_path / "fake"
    (fake / "streamlit").mkdir(parents=True)
    (fake / "streamlit" / "__init__.py").write_text("")
    (fake / "streamlit" / "__main__.py").write_text(FAKE_MAIN)
    pid_file = tmp_path / "server.pid"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)]), "FAKE_STREAMLIT_PID": str(pid_file)}
    proc = subprocess.Popen([sys.executable, "-m", "sslbench", "dashboard", "--results", str(results), "--port",
                             "8765"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, pid_file


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_to_the_launcher_stops_its_server(tmp_path, sig):
    pytest.importorskip("plotly")
    proc, pid_file = _launcher(tmp_path, tmp_path / "no-results-yet")
    try:
        _wait_for(pid_file.exists, "the server to start")
        server = int(pid_file.read_text())
        assert _alive(server)
        proc.send_signal(sig)
        assert proc.wait(timeout=120) == 0
        _wait_for(lambda: not _alive(server), "the server to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


DURING_FORK_BODY = """
from sslbench import dashboard
ended = []  # the server's exit status, seen where the launcher stops it
stop_process = dashboard.stop_process
dashboard.stop_process = lambda proc, *a, **kw: (stop_process(proc, *a, **kw), ended.append(proc.returncode))
code = dashboard.serve([sys.executable, "-c", "import time; time.sleep(600)"], dict(os.environ))
print(code, *ended)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_while_the_server_starts_stops_it_without_a_traceback(tmp_path, sig):
    """A stop signal that lands while the server is forked used to run its handler inside logging's at-fork hook,
    where Python prints and drops the exception: the launcher then waited on its server for ever."""
    proc = run_with_a_signal_during_fork(sig, DURING_FORK_BODY)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    # the launcher stopped its server with SIGTERM (a launcher that lost the signal waits on the 600 s server
    # instead: the helper's 120 s time-out bounds that hang)
    assert proc.stdout.split() == ["0", str(-signal.SIGTERM)], proc.stdout


def test_results_the_pages_cannot_read_are_reported_before_serving(tmp_path, monkeypatch):
    pytest.importorskip("plotly")
    import sslbench.analysis as A
    from sslbench import dashboard

    def broken(*args, **kwargs):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(A, "load_results", broken)
    results = tmp_path / "results"
    results.mkdir()
    problem = dashboard.check_results(str(results), None)
    assert problem == (f"cannot read the results in {results} (OverflowError: int too large to convert to "
                       "float); fix or move that file")
    monkeypatch.undo()
    assert dashboard.check_results(str(results), None) is None


@pytest.mark.slow
def test_kill_9_of_the_launcher_stops_its_server(tmp_path):
    """``kill -9`` of the launcher runs none of its handlers: its server used to keep serving the old folder on the
    port. The server now dies with it (PR_SET_PDEATHSIG, as the runner's cases)."""
    pytest.importorskip("plotly")
    proc, pid_file = _launcher(tmp_path, tmp_path / "no-results-yet")
    server = None
    try:
        _wait_for(pid_file.exists, "the server to start")
        server = int(pid_file.read_text())
        assert _alive(server)
        proc.kill()
        proc.wait(timeout=60)
        _wait_for(lambda: not _alive(server), "the server to die with its launcher", limit_s=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None and _alive(server):
            os.kill(server, signal.SIGKILL)


def test_the_launcher_reads_the_store_in_a_child_it_does_not_hold_while_serving(tmp_path, monkeypatch):
    """issue 21: the launcher waits on its server for hours; the check's read of the whole store happens in a
    forked child (which exits), not in the launcher, whose memory would keep the store's footprint."""
    pytest.importorskip("plotly")
    import os

    import sslbench.analysis as A
    from sslbench import dashboard

    readers = tmp_path / "readers"

    def spy(*args, **kwargs):
        readers.write_text(str(os.getpid()))
        raise MemoryError("the store is large")

    monkeypatch.setattr(A, "load_results", spy)
    results = tmp_path / "results"
    results.mkdir()
    problem = dashboard.check_results(str(results), None)
    assert int(readers.read_text()) != os.getpid()
    assert problem == (f"cannot read the results in {results} (MemoryError: the store is large); "
                       "fix or move that file")

    def killed(*args, **kwargs):
        os._exit(137)  # the child killed by the kernel: one line, not a hang or a traceback

    monkeypatch.setattr(A, "load_results", killed)
    problem = dashboard.check_results(str(results), None)
    assert problem.startswith(f"cannot read the results in {results} (the reading process ended with code 137")
