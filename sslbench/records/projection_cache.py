"""A cache of a projection of a store's records: what ``sweep --status`` and resume read (case ids, statuses,
...), so that a later read parses only the lines appended since.

:func:`read_projected_cached` gives :func:`sslbench.records.store.read_projected`'s records and warnings. It keeps,
in the snapshot folder of :func:`sslbench.records.columnar.cache_dir` (``SSLBENCH_CACHE_DIR=off`` for none), one
JSON-lines file per store, projection and kind: a first line with the key (the store's real path, its identity
``st_dev``/``st_ino``, the byte offset read up to (the end of its last whole line), the number of lines, a hash of
the 4 KB before the offset, the lines skipped while reading), then one projected record a line (a few hundred
bytes, against 2.7 KB a stored record). A store that shrank, was replaced or rewritten before the offset is read
from the start; a cache file that is not a regular file, or whose key or records are not valid, is ignored with
one warning and rebuilt. No pyarrow or pandas needed: sweeps run on torch-side installs.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from sslbench.records.files import NotRegularFile, open_regular
from sslbench.records.schema import STATUSES
from sslbench.records.store import _Problems, projected_range, read_projected, warn_problems

_VERSION = 1
_SUFFIX = ".records.jsonl"


def read_projected_cached(path: str | os.PathLike, keep, *, name: str, kind: str | None = None,
                          folder: Path | None = None) -> list[dict]:
    """``read_projected(path, keep, kind=kind)`` (the same records and warnings) through a cache file: ``name``
    names the projection ``keep`` (change it whenever ``keep`` changes what it keeps)."""
    from sslbench.records import columnar  # its cache folder and offset helpers only: no pyarrow imported

    path = Path(path)
    folder = columnar.cache_dir() if folder is None else folder
    if folder is None or not path.is_file() or not columnar._own_folder(folder):
        return read_projected(path, keep, kind=kind)
    real = os.path.realpath(path)
    key = f"{real}\0{name}\0{kind}".encode("utf-8", "surrogateescape")
    cache = Path(folder) / (hashlib.sha256(key).hexdigest()[:32] + _SUFFIX)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            end = st.st_size
            cut = columnar._complete_end(f, end)
            cached = _load(cache, real, st, f, name, kind)
            tail = columnar._tail_hash(f, cut)
    except OSError:
        return read_projected(path, keep, kind=kind)
    problems, not_json = _Problems(path), []
    records, start, first = [], 0, 1
    if cached is not None:
        records, meta = cached
        problems.by_reason = {r: list(v) for r, v in meta["problems"].items()}
        not_json += meta["not_json"]
        start, first = meta["offset"], meta["lines"]
    new, lineno = projected_range(path, keep, problems, not_json, kind=kind, start=start, stop=cut, first_line=first)
    records += new
    if cached is None or cut != start:
        _save(cache, records, {"version": _VERSION, "path": real, "dev": st.st_dev, "ino": st.st_ino, "name": name,
                               "kind": kind, "offset": cut, "lines": lineno, "tail": tail,
                               "problems": problems.by_reason, "not_json": not_json})
    if cut < end:  # a line being written: read now, never cached
        rest, _ = projected_range(path, keep, problems, not_json, kind=kind, start=cut, stop=end, first_line=lineno)
        records += rest
    warn_problems(problems, not_json)
    return records


def _load(cache: Path, real: str, st: os.stat_result, f, name: str, kind: str | None):
    """(records, key) of a valid cache file of this store, projection and kind, or None (none yet, another store
    at this path, the store rewritten; or not valid: then a warning)."""
    from sslbench.records import columnar

    try:
        g = open_regular(cache)
    except NotRegularFile:
        return _invalid(cache, "is not a regular file")
    except OSError as exc:
        return _invalid(cache, f"cannot be opened ({exc.strerror or exc})")
    if g is None:
        return None
    try:
        with g:
            lines = g.read().split(b"\n")
        meta = json.loads(lines[0])
        problem = _bad_key(meta, real, st, name, kind)
        if problem == "other store":
            return None
        if problem is None:
            f.seek(0)
            if meta["offset"] > st.st_size or columnar._tail_hash(f, meta["offset"]) != meta["tail"]:
                return None  # the store shrank or was rewritten: read from the start (not the cache's fault)
            records = [json.loads(raw) for raw in lines[1:] if raw]
            if all(_plausible(r, kind) for r in records):
                return records, meta
            problem = "holds lines that are not records of this store"
    except (ValueError, UnicodeDecodeError, OSError, TypeError, KeyError) as exc:
        problem = f"cannot be read ({type(exc).__name__}: {exc})"
    return _invalid(cache, problem)


def _bad_key(meta, real: str, st, name: str, kind) -> str | None:
    if not isinstance(meta, dict) or meta.get("version") != _VERSION:
        return "has no key of this version"
    if (meta.get("path"), meta.get("dev"), meta.get("ino"), meta.get("name"), meta.get("kind")) != (
            real, st.st_dev, st.st_ino, name, kind):
        return "other store"  # another store or projection (a hash collision), or the path's file replaced
    if not all(isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool) and meta[k] >= 0
               for k in ("offset", "lines")):
        return "has a key with a bad offset"
    if not isinstance(meta.get("tail"), str) or not isinstance(meta.get("not_json"), list) or not isinstance(
            meta.get("problems"), dict):
        return "has a key with bad fields"
    lists = [meta["not_json"], *meta["problems"].values()]
    if not all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in lists):
        return "has a key with bad line numbers"
    return None


def _plausible(rec, kind) -> bool:
    """A projected record as :func:`read_projected` gives it: a dict with a kind (``kind`` when one was asked
    for) and a known status."""
    return (isinstance(rec, dict) and isinstance(rec.get("kind"), str) and rec.get("status") in STATUSES
            and (kind is None or rec["kind"] == kind))


def _invalid(cache: Path, problem: str):
    warnings.warn(f"{cache}: the cached records of the store {problem}; ignored and rebuilt", RuntimeWarning,
                  stacklevel=4)
    return None


def _save(cache: Path, records: list[dict], meta: dict) -> None:
    """Write the cache file (temporary file + rename); a record JSON cannot hold, or a folder that cannot be
    written, leaves none: the store is then read in full each time."""
    from sslbench.records import columnar
    from sslbench.records.files import write_atomically

    try:
        text = "\n".join([json.dumps(meta)] + [json.dumps(r) for r in records]) + "\n"
        write_atomically(cache, lambda f: f.write(text.encode("utf-8", "surrogateescape")))
    except (OSError, TypeError, ValueError):
        return
    columnar.prune_once(cache.parent)
