"""The append-only JSON-lines store of records: :func:`append_record`, :func:`read_records`, :func:`completed_ids`.

One record per line, appended with a flush and an ``fsync`` so that a crash or a pulled plug loses at most the
line being written. Many writers may share one store, on one machine or on a shared file system (NFSv3 with
lockd, NFSv4): each append holds an exclusive POSIX record lock (``fcntl.lockf``) on the file while it finds the
end, writes its whole line and syncs it, and a reader holds a shared lock while it reads, so no line is ever
interleaved with another or seen half-written (docs/cluster.md says why this design). Where the file system
refuses locks (``ENOLCK``: NFS without lockd) the append goes on unlocked, with one warning. :func:`read_records` never raises on content: it skips, with one warning naming the file and
the lines, lines that are not JSON objects (the half-written tail of an interrupted run), records that do not say
what they measured or how it ended (no ``kind``, no or an unknown ``status``), and drops numbers out of a float's
range (``1e400``, a 400-digit integer) from the records that hold them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Iterable, Mapping

from sslbench.records.files import open_readable
from sslbench.records.schema import FINAL_STATUSES, clamp_numbers, unusable_reason, upgrade_record

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer at a time is the user's business
    fcntl = None

#: POSIX record locks belong to the process, not the thread: the threads of one process take turns here first
_THREAD_LOCK = threading.RLock()
_WARNED_NO_LOCK: set[str] = set()


@contextlib.contextmanager
def locked(f, exclusive: bool):
    """Hold a POSIX record lock (``fcntl.lockf``: exclusive for a writer, shared for a reader) on the whole open
    file ``f`` within the block. Record locks are what NFS carries to the server (NFSv4 natively, NFSv3 through
    lockd); where it refuses them (``ENOLCK``, ``EOPNOTSUPP``) a writer goes on unlocked after one warning, and a
    reader whose lock fails for any reason (a read-only mount) reads unlocked (its worst case: a partial last
    line, skipped with the usual warning)."""
    with _THREAD_LOCK:
        if fcntl is None:
            yield
            return
        try:
            fcntl.lockf(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as exc:
            if exclusive and exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF):
                raise
            if exclusive and f.name not in _WARNED_NO_LOCK:  # a reader reads on: the worst is a partial last line
                _WARNED_NO_LOCK.add(f.name)
                print(f"sslbench: warning: {f.name}: the file system refuses locks ({exc.strerror}); writers "
                      "sharing this store may interleave their lines (docs/cluster.md)", file=sys.stderr)
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.lockf(f, fcntl.LOCK_UN)


def store_size(path: str | os.PathLike) -> int:
    """The store's length in bytes (0 when it does not exist): an offset for :func:`read_records`'s ``start``
    that reads only what was appended since."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (created with its folders), then flush and ``fsync``.

    If the file's last line was cut short by a crash (no trailing newline), a newline is written first so that
    the new record starts on a line of its own and stays readable.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a dict (see make_record), got {type(record).__name__}")
    line = _canonical_line(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f, locked(f, exclusive=True):
        f.seek(0, os.SEEK_END)
        prefix = b""
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                prefix = b"\n"
            f.seek(0, os.SEEK_END)
        f.write(prefix + line)
        f.flush()
        os.fsync(f.fileno())


def _canonical_line(record: Mapping) -> bytes:
    try:
        text = json.dumps(record, sort_keys=False, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # NaN / Inf that did not go through make_record
        raise ValueError(f"record holds NaN or Inf ({exc}); build it with make_record, which stores them as null")
    return (text + "\n").encode("utf-8")


def _lines(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:10])) + (" ..." if len(numbers) > 10 else "")


class _Problems:
    """The lines of one file skipped or cleaned while reading it, grouped by reason, for one warning each."""

    def __init__(self, path: Path):
        self.path = path
        self.by_reason: dict[str, list[int]] = {}

    def add(self, reason: str, lineno: int) -> None:
        self.by_reason.setdefault(reason, []).append(lineno)

    def warn(self, stacklevel: int = 3) -> None:
        for reason, numbers in self.by_reason.items():
            warnings.warn(f"{self.path}: {reason} (line {_lines(numbers)})", RuntimeWarning, stacklevel=stacklevel)


_NOT_JSON = ("skipped {n} line(s) that are not JSON records; an interrupted run leaves a half-written last line, "
             "which is harmless")


def parse_json_line(raw: bytes):
    """The JSON value of one line (bytes), or raises ``ValueError`` (bad JSON or bad UTF-8)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from None


def read_records(path: str | os.PathLike, *, kind: str | None = None, start: int = 0) -> list[dict]:
    """All records in the JSON-lines file ``path`` (``[]`` if it does not exist), upgraded to the current layout.

    Never fails on content; each of these is skipped or cleaned with a ``RuntimeWarning`` naming the file and the
    line numbers: lines that are not JSON objects (a half-written line from an interrupted run, a stray edit),
    records without a ``kind`` or without a known ``status`` (they must not count as ``ok``), and numbers a float
    cannot hold (set to null). ``kind`` keeps only that kind; ``start`` (a :func:`store_size` taken earlier)
    reads only the lines appended since. The file is read under a shared lock (no writer is half-way through).
    """
    path = Path(path)
    if not path.exists():
        return []
    problems, not_json = _Problems(path), []
    with open_readable(path) as f, locked(f, exclusive=False):
        f.seek(start)
        data = f.read()
    records = parse_lines(data.split(b"\n"), 1, problems, not_json, kind)
    warn_problems(problems, not_json)
    return records


def parse_lines(lines: list[bytes], first: int, problems: _Problems, not_json: list[int],
                kind: str | None = None, keep=None) -> list[dict]:
    """The usable records of ``lines`` (line ``first`` onwards), cleaned and upgraded as :func:`read_records`
    says; the skipped and cleaned lines go to ``problems`` and ``not_json``. ``keep(rec) -> dict`` projects each
    raw record before it is cleaned (only what a caller needs is checked and kept: a projection)."""
    records = []
    for lineno, raw in enumerate(lines, start=first):
        if not raw.strip():
            continue
        try:
            rec = parse_json_line(raw.strip())
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            not_json.append(lineno)
            continue
        reason = unusable_reason(rec)
        if reason is not None:
            problems.add(f"skipped record(s) with {reason}", lineno)
            continue
        if keep is not None:  # a projection: only the kept part is checked
            if kind is not None and rec["kind"] != kind:
                continue
            rec = keep(rec)
        rec, bad = clamp_numbers(rec)
        if bad:
            problems.add(f"number(s) out of range set to null ({', '.join(bad[:5])})", lineno)
        if kind is None or rec["kind"] == kind:
            records.append(upgrade_record(rec))
    return records


def warn_problems(problems: _Problems, not_json: list[int]) -> None:
    """One warning per reason (the lines that are not JSON first), naming the file and the lines."""
    if not_json:
        problems.by_reason = {_NOT_JSON.format(n=len(not_json)): not_json, **problems.by_reason}
    problems.warn(stacklevel=5)


def read_projected(path: str | os.PathLike, keep, *, kind: str | None = None, start: int = 0) -> list[dict]:
    """:func:`read_records` keeping of each record only what ``keep(rec) -> dict`` picks (the case ids and
    statuses ``sweep --status`` and resume need, not whole records): the same lines are skipped with the same
    warnings, out-of-range numbers are nulled in what is kept, and the store is never held in memory whole
    record by record. Reads in blocks of lines, so its memory is the projection's, not the store's."""
    path = Path(path)
    if not path.exists():
        return []
    problems, not_json = _Problems(path), []
    records, _ = projected_range(path, keep, problems, not_json, kind=kind, start=start)
    warn_problems(problems, not_json)
    return records


def projected_range(path: Path, keep, problems: _Problems, not_json: list[int], *, kind: str | None = None,
                    start: int = 0, stop: int | None = None, first_line: int = 1) -> tuple[list[dict], int]:
    """(the projected records of the bytes ``start`` to ``stop`` (default: the end) of ``path``, the number of
    the line after them); lines counted from ``first_line`` at ``start``; problems collected, not warned."""
    records, lineno = [], first_line
    with open_readable(path) as f, locked(f, exclusive=False):
        end = os.fstat(f.fileno()).st_size if stop is None else stop
        f.seek(start)
        pos, tail = start, b""
        while pos < end:
            block = f.read(min(_BLOCK, end - pos))
            if not block:
                break
            pos += len(block)
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            records += parse_lines(lines, lineno, problems, not_json, kind, keep)
            lineno += len(lines)
        if tail:
            records += parse_lines([tail], lineno, problems, not_json, kind, keep)
            lineno += 1
    return records, lineno


#: the bytes read at a time by the block readers
_BLOCK = 16 << 20


def completed_ids(records: Iterable[dict], statuses: Iterable[str] = FINAL_STATUSES) -> set[str]:
    """The ids of the cases that already have a record with one of ``statuses`` (for resuming a grid)."""
    statuses = set(statuses)
    return {r["id"] for r in records if r.get("status") in statuses and r.get("id")}
