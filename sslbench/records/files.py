"""Files written at predictable paths, never through a link planted there.

Run ids are hashes of the configuration, so ``<log-dir>/<run id>.jsonl`` and ``<checkpoint-dir>/<run id>.pt`` can
be guessed by anyone who can write to those folders. Opening such a path with ``open(path, "w")`` follows a
symlink (or writes into a hard link) planted there, truncating the file it points to. Here a file is always a
fresh inode: created by :func:`tempfile.mkstemp` (``O_EXCL``, a random name, in the same folder) and renamed over
the path. Whatever was at the path (a symlink, a hard link, an old file) is replaced as a directory entry; the
file it pointed to is never opened, let alone written. Reads of a previous file use ``O_NOFOLLOW`` and ignore a
file with other hard links.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable

__all__ = ["fresh_file", "write_atomically", "read_own_text", "open_readable", "open_regular", "is_regular"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path`` (``O_EXCL``, unpredictable name) with the permissions ``open`` would give."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def fresh_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> IO:
    """A new, empty file at ``path``, open for writing: a fresh inode renamed over whatever ``path`` was (a planted
    link is replaced, never followed). The rename comes first, so the file is visible while it is written (a log);
    for an all-or-nothing file use :func:`write_atomically`."""
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)


def write_atomically(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = True) -> None:
    """Call ``write(f)`` on a fresh temporary file beside ``path``, fsync it, then rename it over ``path`` (a crash
    leaves the old file or the new one, never half a file; a planted link at ``path`` is replaced, and the
    temporary file's name cannot be guessed in advance, so no link can be planted there)."""
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class NotRegularFile(ValueError):
    """:func:`open_regular`: the path is a folder, a device, a FIFO (or larger than allowed), not a regular file."""


class NotRegularStore(OSError):
    """:func:`open_readable`: the path is a FIFO, a device or a socket (an OSError, as a file that cannot be read)."""


def is_regular(path: str | os.PathLike) -> bool:
    """Whether ``path`` (a link followed) is a regular file, without opening it: a FIFO planted where a store is
    looked for would block whoever opens it, waiting for a writer that never comes."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _open_nonblocking(path: str | os.PathLike, *, follow: bool) -> tuple[IO[bytes], os.stat_result]:
    """(``path`` opened for reading, its ``fstat``), opened with ``O_NONBLOCK`` (a FIFO opens at once instead of
    waiting for a writer) and set back to blocking when it is a regular file; ``follow`` False: ``O_NOFOLLOW`` (a
    symlink fails to open). Raises what ``os.open`` raises; the callers judge the file by its ``stat``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def open_readable(path: str | os.PathLike) -> IO[bytes]:
    """``open(path, "rb")`` of a store or a log that may have been planted: opened without blocking, then refused
    unless it is a regular file (:class:`NotRegularStore`, an OSError, so that callers treat it as a file they cannot
    read). A link is followed (a store may be a link to one); the file's bytes are read as any store's are."""
    f, st = _open_nonblocking(path, follow=True)
    if not stat.S_ISREG(st.st_mode):
        f.close()
        raise NotRegularStore(errno.EINVAL, "not a regular file (a FIFO, a device or a socket)", os.fspath(path))
    return f


def open_regular(path: str | os.PathLike, max_bytes: int | None = None) -> IO[bytes] | None:
    """``path`` opened for reading without following a link (``O_NOFOLLOW``: a planted symlink fails to open) or
    blocking on a FIFO, or None when there is none. Raises :class:`NotRegularFile` when it is not a regular file or
    holds more than ``max_bytes``, OSError when it cannot be opened. The caches beside a store (snapshots,
    projections, grids) read their files through it and turn each outcome into their own warning."""
    try:
        f, st = _open_nonblocking(path, follow=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or (max_bytes is not None and st.st_size > max_bytes):
        f.close()
        raise NotRegularFile(f"{os.fspath(path)}: not a regular file of at most {max_bytes} bytes")
    return f


def read_own_text(path: str | os.PathLike) -> str | None:
    """The text of the regular file ``path``, or None when there is none, it is a symlink (``O_NOFOLLOW``), not a
    regular file, or has other hard links (it may be someone else's file under a guessable name)."""
    try:
        f, st = _open_nonblocking(path, follow=False)
    except OSError:
        return None
    with f:
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            return None
        return f.read().decode("utf-8", errors="replace")
