"""Run one case in a child process: the one runner of :func:`sslbench.execution.measure.measure_in_subprocess`
(an isolated bench case) and of the sweep's training cases.

:func:`run_child` writes the case's spec (JSON) into the case's temporary folder (:func:`case_folder`), starts
``python -m MODULE FLAG SPEC`` there with the parent's ``sys.path`` reachable, the child's output (stdout and
stderr together) going to ``child.log`` in that folder, and waits for it:

* the child lives in a session of its own (a Ctrl-C at the terminal reaches the parent alone, which forwards
  exactly one SIGINT) and, on Linux, dies with its parent (``PR_SET_PDEATHSIG``): ``kill -9`` of a sweep leaves
  no orphan case running;
* past ``timeout_s`` it is killed (its whole process group) → status ``"timeout"``;
* a ``KeyboardInterrupt`` in the parent (Ctrl-C, or SIGTERM under :func:`sigterm_as_interrupt`) is forwarded to
  the child as SIGINT, which gets ``grace_s`` to finish its step and write its result, then is killed → status
  ``"interrupted"``; the exception is kept in :attr:`ChildResult.interrupt` for the caller to re-raise;
* a child that died by a signal from outside: SIGKILL is ``"oom"`` only with evidence of the kernel's
  out-of-memory killer (the ``oom_kill`` counter of this cgroup rose while the case ran, or the child's own last
  output reports running out of memory), else ``"killed"`` (retried on resume); SIGTERM, SIGINT or SIGHUP from
  outside are ``"killed"`` too. The exit status alone is never taken as evidence of an OOM;
* otherwise (the child exited by itself, or crashed) the status is None and the caller reads the result the child
  left, or records an ``"error"`` carrying :attr:`ChildResult.last_line` of its output.

Case folders are named ``sslbench-case-<parent pid>-*`` in the temporary folder and removed when the case ends;
:func:`clean_stale_case_folders` removes those of a parent that is gone (a sweep killed with ``kill -9``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from sslbench.records.process import die_with_parent

__all__ = [
    "CASE_PREFIX",
    "INTERRUPT_GRACE_S",
    "ChildResult",
    "Interrupted",
    "case_folder",
    "clean_stale_case_folders",
    "oom_kill_count",
    "run_child",
    "sigterm_as_interrupt",
    "noted_stop",
    "stop_name",
    "signal_of",
]

CASE_PREFIX = "sslbench-case-"
#: seconds a child gets after the forwarded SIGINT to finish its step and write its result
INTERRUPT_GRACE_S = 60.0
#: signals from outside that end a case as "killed" (SIGKILL: unless the OOM killer did it)
_KILL_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_OOM_WORDS = ("MemoryError", "out of memory", "Cannot allocate memory", "can't allocate memory")


class Interrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` that says which signal caused it (SIGINT: Ctrl-C, SIGTERM: a scheduler's stop)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def signal_of(exc: BaseException) -> int:
    """The signal behind a ``KeyboardInterrupt`` (SIGINT unless it is an :class:`Interrupted` saying otherwise)."""
    return getattr(exc, "signum", int(signal.SIGINT))


#: the stop signals whose handler ran inside the current :func:`sigterm_as_interrupt` block. Python swallows an
#: exception raised in an at-fork hook or a ``__del__`` ("Exception ignored in ..."): a SIGTERM or Ctrl-C that lands
#: while ``subprocess.Popen`` forks runs its handler inside logging's at-fork hook, and the :class:`Interrupted` it
#: raises is lost. :func:`run_child` looks here while it waits, so such a signal still stops the case.
_caught: list[int] = []
#: how often (s) a waiting :func:`run_child` looks for a stop signal whose exception was swallowed
_POLL_S = 0.25


def stop_name(signum: int) -> str:
    """How a stop signal is named to the user: "Ctrl-C" for SIGINT, else the signal's name ("SIGTERM")."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def noted_stop() -> int | None:
    """The last stop signal noted inside the current :func:`sigterm_as_interrupt` block (None: none), for a
    waiting loop to act on when Python swallowed its exception."""
    return _caught[-1] if _caught else None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Interrupted` (SIGTERM) like Ctrl-C raises ``KeyboardInterrupt``, so
    a stop from a scheduler or ``kill`` records the running case as "interrupted" and keeps the finished ones.
    Both are also noted in :data:`_caught`, for :func:`run_child` to act on when Python swallowed the exception.
    A SIGINT that is ignored (a background job of a shell) stays ignored. Only in the main thread (elsewhere
    signal handlers cannot be set: the block runs unchanged)."""
    def raise_interrupted(signum, frame):
        _caught.append(int(signum))
        raise Interrupted(signum)

    try:
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_interrupted)}
    except ValueError:  # not the main thread
        yield
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, raise_interrupted)
    _caught.clear()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _caught.clear()


# --------------------------------------------------------------------------------------------------------------
# Case folders
# --------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def case_folder(root: str | os.PathLike | None = None) -> Iterator[Path]:
    """A temporary folder for one case, ``<root or the temporary folder>/sslbench-case-<this pid>-*``, removed
    at the end of the block."""
    path = Path(tempfile.mkdtemp(prefix=f"{CASE_PREFIX}{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale_case_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the case folders (ours, in ``root`` or the temporary folder) whose parent process is gone: what a
    killed sweep or bench left behind. Returns the folders removed."""
    removed = []
    base = Path(root if root is not None else tempfile.gettempdir())
    for path in base.glob(f"{CASE_PREFIX}*-*"):
        pid_text = path.name[len(CASE_PREFIX):].split("-", 1)[0]
        try:
            mine = path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------------------------
# Evidence of the OOM killer
# --------------------------------------------------------------------------------------------------------------
def _cgroup_oom_file() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # cgroup v2
            return Path("/sys/fs/cgroup") / rel.lstrip("/") / "memory.events"
        if "memory" in controllers.split(","):  # cgroup v1
            return Path("/sys/fs/cgroup/memory") / rel.lstrip("/") / "memory.oom_control"
    return None


def oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has killed in this process's cgroup (``oom_kill`` of
    ``memory.events``, cgroup v2, or of ``memory.oom_control``, v1), or None when it cannot be read."""
    path = _cgroup_oom_file()
    try:
        text = path.read_text() if path is not None else ""
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


# --------------------------------------------------------------------------------------------------------------
# The child
# --------------------------------------------------------------------------------------------------------------
@dataclass
class ChildResult:
    """How a child ended: ``status`` is "timeout", "interrupted", "killed", "oom" or None (it exited by itself:
    the caller reads its result); ``message`` says why for a status; ``output`` is the end of its output."""

    returncode: int | None
    status: str | None
    message: str | None
    output: str
    wall_s: float
    interrupt: BaseException | None = None

    @property
    def last_line(self) -> str:
        lines = [ln for ln in self.output.strip().splitlines() if ln.strip()]
        return lines[-1].strip()[:500] if lines else "no output"

    def exit_text(self) -> str:
        """``exited with code 3`` or ``was killed by signal SIGSEGV``."""
        code = self.returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGKILL when its parent dies."""
    die_with_parent()


def _child_setup(mask: set | None) -> Callable[[], None]:
    """What the child runs between fork and exec on Linux: die with the parent, SIGINT and SIGTERM at their default
    actions (an ignored one survives exec), and take back the signal mask the parent had before it blocked
    SIGINT/SIGTERM to start it (a mask survives exec too)."""
    def setup() -> None:  # pragma: no cover - runs in the child
        _die_with_parent()
        # an ignored SIGINT survives exec (a launcher run in the background, e.g. `nohup ... &`, starts with it
        # ignored): the child would ignore the SIGINT forwarded to stop it and be killed after the grace, losing
        # what it had not saved. The stop signals start at their defaults; the child's Python installs its own.
        for s in _STOPS:
            with contextlib.suppress(ValueError, OSError):  # ValueError: not the main thread; left as inherited
                signal.signal(s, signal.SIG_DFL)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return setup


#: the stop signals held back while a child starts (see :func:`run_child`)
_STOPS = {signal.SIGINT, signal.SIGTERM}


def child_environment(env_vars: dict | None = None) -> dict:
    """The parent's environment, with this sslbench first on ``PYTHONPATH``, unbuffered output, and ``env_vars``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update({k: str(v) for k, v in (env_vars or {}).items()})
    return env


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def _tail(path: Path, n_chars: int = 3000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n_chars))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _wait(proc: subprocess.Popen, timeout_s: float, grace_s: float, limit: str,
          unmask: set | None = None) -> tuple[str | None, str | None, BaseException | None]:
    """Wait for the child: (status, message, interrupt) for a time-out or an interrupt, else (None, None, None).
    ``unmask``: the signal mask to restore first (a stop signal held back while the child started arrives here).
    It waits in steps of :data:`_POLL_S`, looking each time for a stop signal whose exception Python swallowed."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        if unmask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, unmask)
        while True:
            if noted_stop() is not None:
                raise Interrupted(noted_stop())
            step = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic()))
            try:
                proc.wait(timeout=step)
                return None, None, None
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    _kill(proc)
                    return "timeout", f"the case ran past {limit} and was killed", None
    except KeyboardInterrupt as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            _kill(proc)
        return "interrupted", f"interrupted by the user ({stop_name(signal_of(exc))})", exc
    except BaseException:
        _kill(proc)
        raise


def classify_signal(returncode: int | None, output: str, oom_before: int | None,
                    oom_after: int | None) -> tuple[str | None, str | None]:
    """(status, message) of a child that died by a signal from outside; (None, None) for anything else."""
    if returncode is None or returncode >= 0 or -returncode not in _KILL_SIGNALS:
        return None, None
    name = signal.Signals(-returncode).name
    if -returncode == signal.SIGKILL:
        if oom_before is not None and oom_after is not None and oom_after > oom_before:
            return "oom", (f"the case's process was killed by the kernel's out-of-memory killer (SIGKILL; the "
                           f"cgroup's oom_kill count rose from {oom_before} to {oom_after})")
        if any(word in output for word in _OOM_WORDS):
            return "oom", "the case's process was killed by SIGKILL after reporting that it ran out of memory"
    return "killed", (f"the case's process was killed by {name} from outside (no sign of the out-of-memory "
                      "killer); it runs again on resume")


def run_child(module: str, flag: str, spec: dict, folder: str | os.PathLike, *, timeout_s: float,
              limit: str | None = None, env_vars: dict | None = None, grace_s: float = INTERRUPT_GRACE_S,
              oom_counter: Callable[[], int | None] | None = None,
              clock: Callable[[], float] = time.perf_counter, launcher: Sequence[str] = ()) -> ChildResult:
    """Run ``python -m module flag folder/spec.json`` (``spec`` written there as JSON) and say how it ended; see
    the module docstring. ``limit`` names the time limit in the time-out message (default "its time limit of T
    s"); ``oom_counter`` and ``clock`` replace the cgroup reader and the wall clock (tests); ``launcher`` goes
    between the interpreter and ``-m module`` (``-m torch.distributed.run --nproc_per_node=G``: one rank per GPU)."""
    folder = Path(folder)
    spec_path, log_path = folder / "spec.json", folder / "child.log"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, *launcher, "-m", module, flag, str(spec_path)]
    oom_counter = oom_counter or oom_kill_count
    oom_before = oom_counter()
    t0 = clock()
    with open(log_path, "wb") as log:
        # SIGINT/SIGTERM are held back while the child starts: a handler that ran during the fork would run inside
        # an at-fork hook, where Python prints and drops its exception; they arrive once _wait can forward them
        linux = sys.platform.startswith("linux") and hasattr(signal, "pthread_sigmask")
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS) if linux else None
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=child_environment(env_vars), start_new_session=True,
                                    preexec_fn=_child_setup(mask) if linux else None)
        except BaseException:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        status, message, interrupt = _wait(proc, timeout_s, grace_s, limit or f"its time limit of {timeout_s:g} s",
                                           unmask=mask)
    wall = clock() - t0
    output = _tail(log_path)
    if status is None:
        status, message = classify_signal(proc.returncode, output, oom_before, oom_counter())
    return ChildResult(proc.returncode, status, message, output, wall, interrupt)
