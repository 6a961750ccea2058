"""``sslbench dashboard``: launch the Streamlit dashboard (``dashboard/app.py`` of this repository) on localhost.

Runs ``python -m streamlit run <repo>/dashboard/app.py --server.address localhost --server.headless true
--server.port PORT`` with ``SSLBENCH_RESULTS`` set to the results folder, and waits for it (Ctrl-C, SIGTERM or
SIGHUP stop it and its server). Before it says the address, it reads the results once, so that a folder the pages
cannot read is reported here, in one line, rather than as a healthy server whose pages fail.
The server binds to ``localhost`` unless ``--address`` says otherwise: the dashboard reads files of this machine,
so think twice before serving it on other interfaces. Needs the ``dashboard`` extra (streamlit, plotly, pandas).

Examples::

    sslbench dashboard                           # results/ on http://localhost:8501
    sslbench dashboard --results results/sweeps --port 8600
    sslbench dashboard --asv .asv/results --dry-run   # print the command
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results)")
    parser.add_argument("--asv", action="append", default=None, metavar="DIR",
                        help="an asv results directory to show on the Regressions page (repeatable; default: "
                             ".asv/results beside --results)")
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    parser.add_argument("--address", default="localhost",
                        help="address to bind (default localhost; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--dry-run", action="store_true", help="print the command and exit")


def command(args: argparse.Namespace) -> tuple[list[str], dict]:
    """The streamlit command line and the environment for ``args``."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", args.address,
           "--server.port", str(args.port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "minimal"]
    env = dict(os.environ)
    env["SSLBENCH_RESULTS"] = str(Path(args.results).expanduser().resolve())
    if args.asv:
        env["SSLBENCH_ASV"] = os.pathsep.join(str(Path(p).expanduser().resolve()) for p in args.asv)
    else:
        env.pop("SSLBENCH_ASV", None)
    return cmd, env


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"sslbench dashboard: --port {args.port} is not a port number", file=sys.stderr)
        return 2
    if not APP.is_file():
        print(f"sslbench dashboard: {APP} not found; the dashboard runs from a checkout of the repository "
              "(pip install -e .)", file=sys.stderr)
        return 2
    if Path(args.results).exists() and not Path(args.results).is_dir():
        print(f"sslbench dashboard: --results {args.results} is a file, not a folder; pass the folder that holds "
              "the result files", file=sys.stderr)
        return 2
    cmd, env = command(args)
    if args.dry_run:
        extra = f"SSLBENCH_RESULTS={shlex.quote(env['SSLBENCH_RESULTS'])} "
        if "SSLBENCH_ASV" in env:
            extra += f"SSLBENCH_ASV={shlex.quote(env['SSLBENCH_ASV'])} "
        print(extra + shlex.join(cmd))
        return 0
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("plotly") is None:
        print("sslbench dashboard: streamlit and plotly are not installed; pip install -e '.[dashboard]'",
              file=sys.stderr)
        return 2
    if not Path(env["SSLBENCH_RESULTS"]).is_dir():
        print(f"sslbench dashboard: note: {args.results} does not exist yet; the dashboard will say how to "
              "produce results", file=sys.stderr)
    else:
        problem = check_results(env["SSLBENCH_RESULTS"], args.asv)
        if problem:
            print(f"sslbench dashboard: {problem}", file=sys.stderr)
            return 2
    print(f"sslbench dashboard: http://{args.address}:{args.port} (results: {env['SSLBENCH_RESULTS']}); "
          "Ctrl-C to stop", file=sys.stderr, flush=True)
    return serve(cmd, env)


def check_results(results: str, asv) -> str | None:
    """Read the results once as the pages will; a one-line problem when that fails (None when it works).

    The read runs in a forked child (where the platform forks): the launcher then waits on the server for
    hours, and a process that once held the whole store keeps most of that memory (the allocator rarely
    gives it back), so only the child holds it, and it exits."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return _check_results(results, asv)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_check_child, args=(send, results, asv), daemon=True)
    child.start()
    send.close()
    try:
        problem = receive.recv()
    except EOFError:  # the child died without a word (killed, out of memory)
        child.join()
        return (f"cannot read the results in {results} (the reading process ended with code {child.exitcode}, "
                "out of memory?); fix or move the file at fault")
    child.join()
    return problem


def _check_child(send, results: str, asv) -> None:
    send.send(_check_results(results, asv))
    send.close()


def _check_results(results: str, asv) -> str | None:
    import warnings

    from sslbench.analysis import load_results

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = load_results(results, asv=asv)
    except Exception as exc:  # noqa: BLE001 -- any failure here would be every page's failure
        return f"cannot read the results in {results} ({type(exc).__name__}: {exc}); fix or move that file"
    skipped = f", {len(caught)} warning(s) (shown in the sidebar)" if caught else ""
    print(f"sslbench dashboard: {len(df)} record(s) read from {results}{skipped}", file=sys.stderr, flush=True)
    return None


class _Stopped(Exception):
    """A stop signal (SIGTERM, SIGHUP) reached the launcher."""


def _raise_stopped(signum, frame):
    raise _Stopped(signum)


def serve(cmd: list[str], env: dict) -> int:
    """Run the server ``cmd`` and wait for it; Ctrl-C, SIGTERM and SIGHUP stop it (then kill it if it lingers)
    before the launcher exits, so no server is left listening without its parent."""
    stops = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, _raise_stopped) for s in stops}
    # the stop signals are held back while the server starts: a handler run during the fork would run inside an
    # at-fork hook, where Python prints and drops its exception (and the launcher would then wait for ever); the
    # server takes back the launcher's signal mask before it starts
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *stops}) if hasattr(signal, "pthread_sigmask") \
        else None
    proc = None
    try:
        try:
            proc = subprocess.Popen(cmd, env=env, preexec_fn=None if mask is None else _server_setup(mask))
        finally:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a stop held back arrives here
        return proc.wait()
    except (KeyboardInterrupt, _Stopped):
        if proc is not None:
            stop_process(proc)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _server_setup(mask: set):
    """What the server runs between fork and exec: die with the launcher (``PR_SET_PDEATHSIG``, the runner's
    mechanism: a ``kill -9`` of the launcher must not leave a server on the port serving the old folder), and take
    back the launcher's signal mask."""
    from sslbench.records.process import die_with_parent  # the standard library only: no torch

    launcher = os.getpid()

    def setup() -> None:  # pragma: no cover - runs in the child
        die_with_parent(signal.SIGTERM, parent=launcher)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return setup


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Ask ``proc`` to end (SIGTERM), and kill it if it has not within ``grace_s``; reaps it either way."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
