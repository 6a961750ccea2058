"""Claims: at most one writer runs a case at a time, and a case whose runner died can be taken over.

A claim is a small file ``<store>.sweep/claims/<case id>.claim`` made with ``O_CREAT | O_EXCL`` (atomic on a local
disk and on NFSv3+: exactly one of several writers creates it). It holds its owner (host, pid, the process's
start time, the scheduler's job id) and its ``mtime`` is a heartbeat: a thread of the owner touches it every
``heartbeat_s`` seconds while the case runs. The owner removes it once the case's record is in the store.

A claim is *stale*, and can be taken over, when

* its owner ran on this host and is gone (no such pid, or a pid reused by a process that started later), or
* its heartbeat is older than ``stale_after_s`` (any host; the age is measured against the file server's clock,
  read from a probe file touched just before, so clocks that disagree between hosts do not matter), or
* it cannot be read as an owner (empty: its owner died between creating and writing it; not JSON; a folder; a pid
  that is no number or out of range) and is older than :data:`UNREADABLE_STALE_S` (a live writer fills its claim
  within microseconds of creating it).

A heartbeat in the future (a clock far off, a planted ``mtime``) is not believed: the age is then taken from the
claim's own ``claimed_at``, and ages are never negative. Anything in the folder may be hostile: a claim that is
not a regular file is moved aside (never followed), and a pid is only ever probed with signal 0.

Where the claims live: ``<real path of the store>.sweep/claims``, so a store reached through a symbolic link
shares its claims with the store itself. A store with several hard links (two names, one file) is refused by
:func:`check_sidecar`: its names' sidecars could not see one another's claims. Folders and claims follow the
umask (``umask 002`` in a results folder shared by a group makes them group-writable, so that the group's
writers can take over one another's stale claims); :func:`check_sidecar` checks them before any work.

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
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sslbench.records.store import locked

__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "UNREADABLE_STALE_S", "Claim", "SidecarError", "sidecar", "claims_dir",
           "check_sidecar", "owner", "try_claim", "read_claims", "stale_reason", "tidy", "pid_start", "valid_pid"]

HEARTBEAT_S = 30.0
#: a claim whose heartbeat is older than this is taken over (from any host): 10 heartbeats
STALE_AFTER_S = 300.0
#: a claim that cannot be read as an owner is stale once this old (see the module's docstring)
UNREADABLE_STALE_S = 10.0
#: the largest pid Linux hands out (``/proc/sys/kernel/pid_max`` is at most 2**22)
PID_MAX = 1 << 22
_SUFFIX = ".claim"
_MASKS = hasattr(signal, "pthread_sigmask")


class SidecarError(ValueError):
    """A sidecar folder that cannot be used (a file in its place, not writable, a hard-linked store): one line
    naming the path, the problem and the fix."""


def sidecar(store: str | os.PathLike) -> Path:
    """The folder beside a store that holds its claims and its cluster jobs: ``<store>.sweep``, named after the
    store's real path (a symbolic link to the store, or a path through a linked folder, gives the same one)."""
    return Path(os.path.realpath(store) + ".sweep")


def claims_dir(store: str | os.PathLike) -> Path:
    return sidecar(store) / "claims"


def _owner_name(st: os.stat_result) -> str:
    try:
        import pwd

        return pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        return f"uid {st.st_uid}"


def check_folder(folder: Path, what: str, flag: str, store, *, write: bool = True) -> bool:
    """Whether ``folder`` exists; raises :class:`SidecarError` (one line) when something else is in its place (a
    file, a link: never followed) or, with ``write``, when it cannot be written and searched by this user."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SidecarError(f"{flag} {store}: cannot read {what} {folder} ({exc.strerror or exc}); "
                           "choose another store path") from None
    if not stat.S_ISDIR(st.st_mode):
        kind = "a link" if stat.S_ISLNK(st.st_mode) else "a file"
        raise SidecarError(f"{flag} {store}: {what} {folder} is {kind}, not a folder; move it away (sslbench "
                           "keeps the store's claims and jobs there) or choose another store path")
    if write and not os.access(folder, os.W_OK | os.X_OK):
        raise SidecarError(f"{flag} {store}: {what} {folder} is not writable by you (owner {_owner_name(st)}, mode "
                           f"{stat.S_IMODE(st.st_mode):o}); ask its owner to make it group-writable "
                           f"(chmod -R g+w {sidecar(store)}, and umask 002 for the group's runs), or choose another "
                           "store path")
    return True


def check_sidecar(store: str | os.PathLike, flag: str = "--out") -> Path:
    """Check before any work that this process can claim cases of ``store``: the store has one name (not several
    hard links), ``<store>.sweep`` and its ``claims`` are folders (or absent, with a writable folder to make them
    in) that this user can write. Creates nothing; returns the sidecar. Raises :class:`SidecarError`."""
    try:
        st = os.stat(store)
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise SidecarError(f"{flag} {store}: the store has {st.st_nlink} hard links (names); sweeps and runs "
                           "through different names would not see one another's claims and would run the same "
                           "cases twice. Use a single name (remove the other links, or make them symbolic links)")
    folder = sidecar(store)
    if check_folder(folder, "the sweep folder", flag, store):
        check_folder(folder / "claims", "the claims folder", flag, store)
    elif not os.access(folder.parent, os.W_OK | os.X_OK):
        raise SidecarError(f"{flag} {store}: cannot create the sweep folder {folder} (its folder is not writable "
                           "by you); choose a store in a folder you can write to")
    return folder


def valid_pid(pid) -> bool:
    """Whether ``pid`` (read from disk) can name a process: an int (not a bool) in 1..PID_MAX."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 1 <= pid <= PID_MAX


def pid_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux), or None where it cannot be read."""
    if not valid_pid(pid):
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


_pid_start = pid_start  # the name the tests and older callers use


def owner(job: str | None = None) -> dict:
    """Who claims: this host and process, and the scheduler's job (SLURM array task or job, or ``job``)."""
    if job is None:
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = (f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array
               else os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_JOB_ID"))
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": pid_start(pid), "job": job,
            "claimed_at": time.time()}


def _alive(pid: int, start: str | None) -> bool:
    if not valid_pid(pid):
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass
    now = pid_start(pid)
    return start is None or now is None or now == start


def _server_now(folder: Path) -> float:
    """The file server's clock: the mtime of a probe file touched now (falls back to this host's clock, and uses
    it directly where the folder cannot be written: ``sweep --status`` on a read-only store creates nothing)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return time.time()
    probe = folder / f".clock-{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except OSError:
        return time.time()
    try:
        return os.lstat(probe).st_mtime
    except OSError:
        return time.time()
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def readable(info) -> bool:
    """Whether a claim's content names an owner: a dict with a host (a string) and a pid in range."""
    return isinstance(info, dict) and isinstance(info.get("host"), str) and valid_pid(info.get("pid"))


def stale_reason(info: dict, age_s: float, stale_after_s: float = STALE_AFTER_S) -> str | None:
    """Why the claim ``info`` (heartbeat ``age_s`` seconds old) is stale, or None when its owner may be running."""
    if not readable(info):
        if age_s > UNREADABLE_STALE_S:
            return f"it names no owner (unreadable for {age_s:.0f} s > {UNREADABLE_STALE_S:g} s)"
        return None
    if info["host"] == socket.gethostname():
        if not _alive(info["pid"], info.get("pid_start")):
            return f"its process {info['pid']} on {info['host']} is gone"
        return None
    if age_s > stale_after_s:
        return f"no heartbeat from {info.get('host', '?')} for {age_s:.0f} s (> {stale_after_s:g} s)"
    return None


def _read(path: Path) -> tuple[dict, float] | None:
    """(owner, mtime) of a claim, or None when it is gone. A file cut short, one that is not JSON, and anything
    that is not a regular file (a folder, a link: never followed) read as an empty owner."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return {}, st.st_mtime
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return {}, st.st_mtime
    try:
        with os.fdopen(fd, "rb") as f:
            text = f.read(1 << 16).decode("utf-8", errors="replace")
    except OSError:
        return {}, st.st_mtime
    try:
        info = json.loads(text)
    except ValueError:
        info = {}
    return (info if isinstance(info, dict) else {}), st.st_mtime


def _age(info: dict, mtime: float, now: float) -> float:
    """Seconds since the claim's heartbeat, never negative. A heartbeat more than a beat in the future (a clock
    far off, a planted mtime) is not believed: the claim's own ``claimed_at`` is used, or, when that is in the
    future too or missing, the heartbeat counts as infinitely old (a live owner's next beat resets it)."""
    if mtime <= now + HEARTBEAT_S:
        return max(0.0, now - mtime)
    claimed = info.get("claimed_at")
    if isinstance(claimed, (int, float)) and not isinstance(claimed, bool) and claimed <= now + HEARTBEAT_S:
        return max(0.0, now - claimed)
    return float("inf")


def _remove(path: Path, folder: Path) -> None:
    """Remove a stale claim: a regular file (or a link: the link itself, never what it names) is unlinked, anything
    else (a folder) is moved aside as ``.stale-*`` so that the case's claim can be made again."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, folder / f".stale-{path.name}-{os.urandom(4).hex()}")


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
                with contextlib.suppress(OSError, NotImplementedError):
                    os.utime(self.path, None, follow_symlinks=False)

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
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the umask decides (see above)
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
        reason = stale_reason(current[0], _age(*current, _server_now(folder)), stale_after_s)
        if reason is None:
            return None
        _remove(path, folder)
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
        age = _age(info, mtime, now)
        out[path.name[:-len(_SUFFIX)]] = {**info, "age_s": age, "stale": stale_reason(info, age, stale_after_s)}
    return out
