"""Output paths checked before any work starts, and a record that is never lost when its store cannot be written.

Every command that writes (``train --out/--log-dir/--checkpoint-dir``, ``bench --out``, ``sweep --out``) calls
:func:`check_store_path` / :func:`check_output_dir` first, so a bad path costs a second, not a finished run. If
writing still fails at the end (a full disk, a folder removed meanwhile), :func:`append_record_safely` saves the
record beside the log or in the working folder, or prints it whole: finished work is never thrown away.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sslbench.records import store
from sslbench.records.files import open_readable


class OutputPathError(ValueError):
    """An output path that cannot be used; the message names the path as given, the problem and the fix."""


def _first_blocking_file(path: Path) -> Path | None:
    """The first ancestor of ``path`` that exists and is not a folder (None if there is none)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _ensure_folder(folder: Path, flag: str, given: Path) -> None:
    """Create ``folder`` (the one ``given`` needs) if it can be, and check it is writable; the messages name
    ``given``, the path the user typed."""
    blocking = _first_blocking_file(folder / "x")
    if blocking is not None:
        raise OutputPathError(f"{flag} {given}: {blocking} is a file, not a folder; choose a path under a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{flag} {given}: cannot create the folder {folder} ({exc.strerror or exc}); "
                              "choose a folder you can write to") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        where = "the folder" if folder == given else f"its folder {folder}"
        raise OutputPathError(f"{flag} {given}: {where} is not writable; choose a folder you can write to")


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Make sure ``path`` is (or can become) a writable folder; creates it. Raises :class:`OutputPathError`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{flag} {p}: this is a file, not a folder; choose a folder path")
    _ensure_folder(p, flag, p)
    return p


def _looks_like_store(path: Path) -> bool:
    """True for an empty file or one whose first non-blank line is a JSON object (a JSON-lines store)."""
    try:
        with open_readable(path) as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                try:
                    return isinstance(json.loads(line), dict)
                except ValueError:
                    return False
    except OSError:
        return False
    return True


def check_store_path(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Make sure ``path`` can be a JSON-lines record store: its folder exists or can be made and is writable, it is
    not a folder, and an existing file is a store (not, say, a README). Raises :class:`OutputPathError`."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{flag} {p}: this is a folder; name a file such as {p / 'results.jsonl'}")
    _ensure_folder(p.parent if str(p.parent) else Path("."), flag, p)
    if p.exists():
        if not p.is_file():
            raise OutputPathError(f"{flag} {p}: this is not a regular file; name a new file or an existing store")
        if not _looks_like_store(p):
            raise OutputPathError(f"{flag} {p}: the file exists and is not a JSON-lines record store; "
                                  "name a new file or an existing store")
        if not os.access(p, os.W_OK):
            raise OutputPathError(f"{flag} {p}: the file is not writable; choose another path")
    return p


def _planted(path: Path) -> bool:
    """Whether ``path`` is a symlink, or a file with other hard links: not a file of our own to append to."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return os.path.islink(path) or st.st_nlink > 1


def append_record_safely(path: str | os.PathLike, record: dict, *, fallback_dirs=()) -> str:
    """Append ``record`` to the store ``path``; if that fails, write it to ``<dir>/unsaved-<id>.jsonl`` in the
    first of ``fallback_dirs`` (then the working folder) that takes it, or else print it whole on stdout.

    Returns where the record went (a path, or ``"stdout"``) and says so on stderr when it was not ``path``.
    """
    try:
        store.append_record(path, record)
        return str(path)
    except OSError as exc:
        reason = f"{exc.strerror or exc}"
    name = f"unsaved-{record.get('id', 'record')}.jsonl"
    for folder in [*fallback_dirs, "."]:
        if folder is None:
            continue
        target = Path(folder) / name
        if _planted(target):  # a guessable name (the record's id): never append through a link found there
            continue
        try:
            store.append_record(target, record)
        except OSError:
            continue
        print(f"sslbench: could not write the record to {path} ({reason}); it was saved to {target} "
              f"(append it to the store with: cat {target} >> {path})", file=sys.stderr)
        return str(target)
    print(f"sslbench: could not write the record to {path} ({reason}) nor to a fallback file; here it is whole:",
          file=sys.stderr)
    print(json.dumps(record, sort_keys=True), flush=True)
    return "stdout"
