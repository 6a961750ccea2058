"""Claims: at most one writer runs a case at a time, and a case whose runner died can be taken over.

A claim is a small file ``<store>.sweep/claims/<case id>.claim`` made with ``O_CREAT | O_EXCL`` (atomic on a local
disk and on NFSv3+: exactly one of several writers creates it). It holds its owner (host, pid, the process's
start time, the scheduler's job id) and its ``mtime`` is a heartbeat: a thread of the owner touches it every
``heartbeat_s`` seconds while the case runs. The owner removes it once the case's record is in the store.

A claim is *stale*, and can be taken over, when

* its owner ran on this host and is gone (no such pid, or a pid reused by a process that started later), or
* its heartbeat is older than ``stale_after_s`` (any host; the age is measured against the file server's clock,
  read from a probe file touched just before, so clocks that disagree between hosts do not matter).

Taking over and releasing happen under the store's own exclusive lock
(:func:`sslbench.records.store.locked`): the stale file is checked again, removed, and the new claim made with
``O_EXCL``. Only locked code removes a claim file, so two writers that both saw the same stale claim cannot both
win, and a release never removes a claim that replaced its own. Torch-free, standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sslbench.records.store import locked

__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "Claim", "sidecar", "claims_dir", "owner", "try_claim", "read_claims",
           "stale_reason", "tidy"]

HEARTBEAT_S = 30.0
#: a claim whose heartbeat is older than this is taken over (from any host): 10 heartbeats
STALE_AFTER_S = 300.0
_SUFFIX = ".claim"
_MASKS = hasattr(signal, "pthread_sigmask")


def sidecar(store: str | os.PathLike) -> Path:
    """The folder beside a store that holds its claims and its cluster jobs: ``<store>.sweep``."""
    return Path(str(store) + ".sweep")


def claims_dir(store: str | os.PathLike) -> Path:
    return sidecar(store) / "claims"


def _pid_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux), or None where it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def owner(job: str | None = None) -> dict:
    """Who claims: this host and process, and the scheduler's job (SLURM array task or job, or ``job``)."""
    if job is None:
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = (f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array
               else os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_JOB_ID"))
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _pid_start(pid), "job": job,
            "claimed_at": time.time()}


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = _pid_start(pid)
    return start is None or now is None or now == start


def _server_now(folder: Path) -> float:
    """The file server's clock: the mtime of a probe file touched now (falls back to this host's clock)."""
    probe = folder / f".clock-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.touch()
        os.utime(probe, None)
        return probe.stat().st_mtime
    except OSError:
        return time.time()
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def stale_reason(info: dict, age_s: float, stale_after_s: float = STALE_AFTER_S) -> str | None:
    """Why the claim ``info`` (heartbeat ``age_s`` seconds old) is stale, or None when its owner may be running."""
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        if not _alive(info["pid"], info.get("pid_start")):
            return f"its process {info['pid']} on {info['host']} is gone"
        return None
    if age_s > stale_after_s:
        return f"no heartbeat from {info.get('host', '?')} for {age_s:.0f} s (> {stale_after_s:g} s)"
    return None


def _read(path: Path) -> tuple[dict, float] | None:
    """(owner, mtime) of a claim file, or None when it is gone. A file cut short reads as an empty owner."""
    try:
        text = path.read_text(encoding="utf-8")
        mtime = path.stat().st_mtime
    except (FileNotFoundError, OSError):
        return None
    try:
        info = json.loads(text)
    except ValueError:
        info = {}
    return (info if isinstance(info, dict) else {}), mtime


@dataclass
class Claim:
    """A case held by this process; :meth:`release` (or the end of a ``with`` block) gives it back."""

    path: Path
    store: Path
    owner: dict
    heartbeat_s: float = HEARTBEAT_S
    taken_over: str | None = None  # why the previous claim was stale, when this one replaced it
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def start_heartbeat(self) -> "Claim":
        def beat():
            while not self._stop.wait(self.heartbeat_s):
                with contextlib.suppress(OSError):
                    os.utime(self.path, None)

        # the thread starts with every signal blocked (it inherits the mask in force here), so that a Ctrl-C, a
        # SIGTERM or a scheduler's SIGUSR2 always reaches the main thread and interrupts what it waits on
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals()) if _MASKS else None
        try:
            threading.Thread(target=beat, name=f"claim-{self.path.stem}", daemon=True).start()
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return self

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file, if it is still this claim's (under the folder's lock, as
        a takeover: only locked code ever removes a claim file)."""
        self._stop.set()
        with _store_lock(self.store):
            current = _read(self.path)
            if current is not None and current[0].get("nonce") == self.owner.get("nonce"):
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def _store_lock(store: Path):
    """The store's own exclusive lock (the file every writer shares anyway; created empty if need be)."""
    with open(store, "a+b") as f, locked(f, exclusive=True):
        yield


def _create(path: Path, info: dict) -> bool:
    for _ in range(3):  # a finishing sweep may remove the empty folder between mkdir and open (see tidy)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            return False
        except FileNotFoundError:
            continue
    else:
        raise FileNotFoundError(f"cannot create {path}: its folder keeps disappearing")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(info))
        f.flush()
        os.fsync(f.fileno())
    return True


def try_claim(store: str | os.PathLike, case_id: str, *, job: str | None = None, heartbeat_s: float = HEARTBEAT_S,
              stale_after_s: float = STALE_AFTER_S) -> Claim | None:
    """Claim case ``case_id`` of ``store`` for this process: a :class:`Claim` (its heartbeat running), or None
    when another live owner holds it. A stale claim is taken over (``Claim.taken_over`` says why)."""
    store, folder = Path(store), claims_dir(store)
    path = folder / f"{case_id}{_SUFFIX}"
    info = {**owner(job), "nonce": os.urandom(8).hex()}
    if _create(path, info):
        return Claim(path, store, info, heartbeat_s).start_heartbeat()
    with _store_lock(store):
        current = _read(path)
        if current is None:  # released meanwhile
            return Claim(path, store, info, heartbeat_s).start_heartbeat() if _create(path, info) else None
        reason = stale_reason(current[0], _server_now(folder) - current[1], stale_after_s)
        if reason is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if not _create(path, info):
            return None
    return Claim(path, store, info, heartbeat_s, taken_over=reason).start_heartbeat()


def tidy(store: str | os.PathLike) -> None:
    """Remove the claims folder and the ``.sweep`` folder beside the store when they are empty (an inline sweep
    that ended leaves nothing beside its store)."""
    for folder in (claims_dir(store), sidecar(store)):
        with contextlib.suppress(OSError):
            folder.rmdir()


def read_claims(store: str | os.PathLike, stale_after_s: float = STALE_AFTER_S) -> dict[str, dict]:
    """``{case id: owner}`` of the claims now held on ``store``, each with ``age_s`` (of its heartbeat) and
    ``stale`` (the reason, or None)."""
    folder = claims_dir(store)
    if not folder.is_dir():
        return {}
    now = _server_now(folder)
    out = {}
    for path in sorted(folder.glob(f"*{_SUFFIX}")):
        current = _read(path)
        if current is None:
            continue
        info, mtime = current
        out[path.name[:-len(_SUFFIX)]] = {**info, "age_s": now - mtime,
                                          "stale": stale_reason(info, now - mtime, stale_after_s)}
    return out
