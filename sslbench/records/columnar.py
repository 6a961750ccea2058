"""The columnar read path: a JSON-lines store straight into the flattened frame of :func:`to_dataframe`.

:func:`read_frame` gives ``to_dataframe(read_records(path, kind=..., start=...))`` (same rows, values, dtypes and
warnings; the order of the columns may differ where rows of one file have different keys) without building a
Python dict per record: ``pyarrow.json.read_json`` parses each block of the file (16 MB of whole lines)
multi-threaded into Arrow columns, and only the columns asked for (``columns``) become the frame. A record is
2.7 KB; the dict path costs about 20 KB of memory and 0.4 ms a record, this one about the record's own size.
docs/results-at-scale.md has the measurements and why pyarrow.

Today's guarantees are kept by checking each block and falling back, per block, to the line-by-line reader of
:mod:`sslbench.records.store` (whose rules are the definition) wherever Arrow cannot be exact:

- a block Arrow refuses (a line that is not JSON, a value whose type changes between lines, a number beyond a
  double): its lines are parsed one by one to find the lines that are not JSON objects (skipped, warned about);
  the rest is given to Arrow again, and only if that fails too is the block read the slow way;
- numbers a float cannot hold (``1e400``, a 400-digit integer: Arrow reads infinity or refuses), a value Arrow
  would read as a timestamp, a record without ``id`` or ``schema`` (the upgrade computes or defaults them): the
  block is read line by line, so the clean-up and its warnings are today's;
- records without a known kind or status are skipped with today's warning (its reason is read from those lines);
- a nested value (``case.hparams``, a list in ``env``) becomes the same ``json.dumps`` text as today: those cells
  are taken from their lines, parsed with :mod:`json` (Arrow would merge the keys of different lines).

Needs pyarrow and pandas (the ``dashboard`` extra); :func:`available` says whether they are installed.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Iterable

from sslbench.records.files import NotRegularFile, open_readable, open_regular
from sslbench.records.schema import STATUSES, unusable_reason
from sslbench.records.store import _BLOCK, _Problems, locked, parse_json_line, parse_lines, warn_problems

#: the top-level keys that become columns of their own, in :func:`to_dataframe`'s order
BASE = ("schema", "kind", "id", "created", "status", "message")
#: the sections flattened into ``<section>.<key>`` columns (``regularizer_source`` is ``extra.regularizer_source``)
SECTIONS = ("case", "metrics", "env")

#: called with the number of lines each :func:`read_frame` block parses (tests count lines parsed through it)
parse_hook = None


def available() -> bool:
    """Whether pyarrow and pandas are installed (the columnar path needs both)."""
    try:
        import pandas  # noqa: F401
        import pyarrow.json  # noqa: F401
    except ImportError:
        return False
    return True


def numbers_only(part, name: str) -> bool:
    """Whether column ``name`` of a part of :func:`frames_of_snapshots` (a :class:`Snapshot` or a frame) holds
    numbers only, so that it is a column of a numpy number dtype in the frame (or absent from this part): a float or
    integer column of the snapshot without NaN flags, or a frame's column of a numpy float or integer dtype (not
    bool: a bool column missing from another part becomes object)."""
    if isinstance(part, Snapshot) and part.frame is None:
        kind = part.types.get(name)
        return kind is None or (kind[0] in ("double", "int64") and name not in part.masks)
    frame = part.frame if isinstance(part, Snapshot) else part
    if name not in frame.columns:
        return True
    dtype = frame[name].dtype
    return getattr(dtype, "kind", "O") in "fi" and type(dtype).__module__.startswith("numpy")


def without(part, names: set):
    """A part of :func:`frames_of_snapshots` without the columns ``names`` (a snapshot's left in its file)."""
    if isinstance(part, Snapshot) and part.frame is None:
        part.names = [n for n in part.names if n not in names]
        for name in names:
            part.types.pop(name, None)
        return part
    if isinstance(part, Snapshot):
        part.frame = part.frame.drop(columns=[c for c in part.frame.columns if c in names])
        return part
    return part.drop(columns=[c for c in part.columns if c in names])


def release_memory() -> None:
    """Give the memory Arrow's pool holds free (the snapshots' tables, once converted) back to the system: the pool
    keeps freed memory for its next allocations, and a process that has converted its tables makes none."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    _trim_malloc()


def _trim_malloc() -> None:
    """glibc's ``malloc_trim(0)``: the C heap's free pages (the conversion's temporary columns, freed but kept by
    malloc: about 150 MiB of ``sslbench analyze`` at 10^6 records) given back to the system; nothing elsewhere."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)


def wanted(columns: Iterable[str] | None):
    """A test of column names from a projection: exact names, or ``"case."``-style prefixes (a whole section);
    ``None`` keeps everything. The base columns are always kept."""
    if columns is None:
        return lambda name: True
    exact = {c for c in columns if not c.endswith(".")}
    prefixes = tuple(c for c in columns if c.endswith("."))
    return lambda name: name in BASE or name in exact or name.startswith(prefixes)


def read_frame(path: str | os.PathLike, *, kind: str | None = None, start: int = 0,
               columns: Iterable[str] | None = None, stop: int | None = None, first_line: int = 1):
    """The records of the JSON-lines store ``path`` from byte ``start`` (to ``stop``, default its end now) as
    :func:`sslbench.records.to_dataframe` flattens them, keeping only ``columns`` (see :func:`wanted`) and the
    records of ``kind``. Warnings name the file and the lines (counted from ``first_line`` at ``start``)."""
    path = Path(path)
    problems, not_json = _Problems(path), []
    df, _ = _read(path, problems, not_json, kind=kind, start=start, columns=columns, stop=stop,
                  first_line=first_line)
    warn_problems(problems, not_json)
    return df


def _read(path: Path, problems, not_json, *, kind=None, start=0, columns=None, stop=None, first_line=1):
    """(frame, the next line's number) of ``path`` from ``start`` to ``stop``; problems collected, not warned."""
    import pandas as pd

    keep = wanted(columns)
    frames = []
    if not path.exists():
        return pd.DataFrame(), first_line
    with open_readable(path) as f, locked(f, exclusive=False):
        end = os.fstat(f.fileno()).st_size if stop is None else stop
        f.seek(start)
        pos, lineno, tail = start, first_line, b""
        while pos < end or tail:
            block = f.read(min(_BLOCK, end - pos)) if pos < end else b""
            pos += len(block)
            data = tail + block
            if pos < end and block:
                cut = data.rfind(b"\n") + 1
                data, tail = data[:cut], data[cut:]
            else:
                tail = b""
            if not data:
                continue
            frame, n = _block_frame(data, lineno, problems, not_json, kind, keep)
            lineno += n
            if frame is not None and len(frame):
                frames.append(frame)
    return _concat(frames), lineno


def _concat(frames: list):
    """The blocks' frames as one: a column of mixed blocks is inferred again, as pandas infers it from all the
    dicts at once."""
    import pandas as pd

    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0]
    df = pd.concat(frames, ignore_index=True, sort=False)
    for name in df.columns:  # only where the blocks disagree (a column missing from one, str in one, ...)
        kinds = {str(f[name].dtype) if name in f.columns else None for f in frames}
        if df[name].dtype == object and len(kinds) > 1:
            df[name] = pd.Series(df[name].tolist(), index=df.index)
    return df


def _block_frame(data: bytes, first: int, problems, not_json, kind, keep):
    """(frame, number of lines) of one block of whole lines."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if parse_hook is not None:
        parse_hook(len(lines))
    rows = [i for i, raw in enumerate(lines) if raw.strip()]
    table = _arrow(data)
    if table is None:  # find the lines that are not JSON objects, and try Arrow again on the others
        bad = [i for i in rows if not _is_object(lines[i])]
        if bad:
            not_json += [first + i for i in bad]
            bad_set = set(bad)
            rows = [i for i in rows if i not in bad_set]
            table = _arrow(b"\n".join(lines[i] for i in rows) + b"\n") if rows else None
    frame = _from_arrow(table, lines, rows, first, problems, kind, keep) if table is not None else None
    if frame is None:  # Arrow cannot be exact here: the block line by line (the bad lines were found already)
        from sslbench.records.readers import to_dataframe

        kept = set(rows)
        records = parse_lines([raw if i in kept else b"" for i, raw in enumerate(lines)], first, problems, not_json,
                              kind)
        df = to_dataframe(records)
        frame = df[[c for c in df.columns if keep(c)]]
    return frame, len(lines)


def _arrow(data: bytes):
    import pyarrow as pa
    import pyarrow.json as pj

    try:
        return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=4 << 20),
                            parse_options=pj.ParseOptions(explicit_schema=pa.schema([("created", pa.string())]),
                                                          unexpected_field_behavior="infer"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None


def _is_object(raw: bytes) -> bool:
    try:
        return isinstance(parse_json_line(raw.strip()), dict)
    except ValueError:
        return False


def _exact_type(t) -> bool:
    """Whether Arrow's values of type ``t`` are today's values: no timestamps (a date-like string), recursively."""
    import pyarrow as pa

    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return False
    if pa.types.is_struct(t):
        return all(_exact_type(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _exact_type(t.value_type)
    return True


def _has_inf(arr) -> bool:
    """Whether a (chunked) array holds an infinity anywhere, nested values included: a number a float cannot hold."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_floating(t):
        return bool(pc.any(pc.is_inf(arr)).as_py())
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    if pa.types.is_struct(t):
        return any(_has_inf(pa.chunked_array([c.field(i) for c in chunks], type=t.field(i).type))
                   for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return any(_has_inf(c.flatten()) for c in chunks)
    return False


def _from_arrow(table, lines, rows, first, problems, kind, keep):
    """The block's frame from Arrow's table (row ``j`` is line ``rows[j]``), or None where it would not be
    today's frame exactly (the caller then reads the block line by line)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if table.num_rows != len(rows) or any(_has_inf(c) for c in table.columns):
        return None
    names = table.column_names
    for name in ("schema", "id"):  # missing ones are filled in by upgrade_record (a default, a computed id)
        if name not in names or table.column(name).null_count:
            return None
    for name in ("kind", "status", "created", "message"):
        if name in names and not (pa.types.is_string(table.column(name).type)
                                  or pa.types.is_null(table.column(name).type)):
            return None
    if not pa.types.is_integer(table.column("schema").type):
        return None
    kinds = _strings(table, "kind")
    statuses = _strings(table, "status")
    usable = np.array([isinstance(k, str) and k != "" and s in STATUSES for k, s in zip(kinds, statuses)], bool)
    take = usable & (np.array([k == kind for k in kinds], bool) if kind is not None else True)
    idx = np.flatnonzero(take)
    cols: dict[str, object] = {}
    for name in BASE:
        if name in names:
            cols[name] = table.column(name).take(idx)
    nested: list[tuple[str, tuple[str, ...]]] = []
    for section, where in [(s, (s,)) for s in SECTIONS] + [("regularizer_source", ("extra", "regularizer_source"))]:
        arr = _child(table, where)
        if arr is None:
            continue
        if not pa.types.is_struct(arr.type):
            if pa.types.is_null(arr.type) or section == "regularizer_source":
                continue  # no such section in this block (or not a dict: today ignores it too)
            return None
        sub = arr.take(idx)
        for i in range(arr.type.num_fields):
            field = arr.type.field(i)
            name = f"{section}.{field.name}"
            if not keep(name) or name in cols:
                continue
            if not _exact_type(field.type):
                return None
            if pa.types.is_struct(field.type) or pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
                nested.append((name, where + (field.name,)))
                cols[name] = None
            else:
                cols[name] = pa.chunked_array([c.field(i) for c in sub.chunks], type=field.type)
    for j in np.flatnonzero(~usable):  # the reason, as the line-by-line reader gives it (checks all passed)
        problems.add(f"skipped record(s) with {unusable_reason(json.loads(lines[rows[j]]))}", first + rows[j])
    n = len(idx)
    parsed = _Parsed(lines, rows, idx, table)
    out, first_row = {}, {}
    for name, col in cols.items():
        if name in BASE:  # every record has them (upgrade_record): all null is None, object
            out[name] = pd.Series([None] * n, dtype=object) if n and col.null_count == n else col.to_pandas()
            continue
        arr = col if col is not None else _child(table, dict(nested)[name]).take(idx)
        first_row[name] = _first_present(arr, _where(name), parsed)  # pandas orders the columns by it
        if first_row[name] is None:
            continue  # only lines not taken have the key: today has no such column
        if arr.null_count and (arr.null_count == n or pa.types.is_boolean(arr.type)):
            out[name] = _object_cells(arr, _where(name), parsed)
        elif col is None:
            out[name] = _json_cells(arr, _where(name), parsed)
        else:
            out[name] = col.to_pandas()
    order = sorted(out, key=lambda c: _place(c, first_row, parsed))
    return pd.DataFrame({c: out[c] for c in order}, index=pd.RangeIndex(n))


_SECTION_ORDER = {name: i for i, name in enumerate(SECTIONS + ("regularizer_source",))}


def _place(name: str, first_row: dict, parsed) -> tuple:
    """Where pandas puts a column built from dicts: by the first row with the key, then by its place in that row
    (base keys first, then case, metrics, env, regularizer_source, each in the line's own order)."""
    if name in BASE:
        return (-1, BASE.index(name), 0)
    r = first_row[name]
    where = _where(name)
    section = parsed.section(r, where[:-1])
    keys = list(section) if isinstance(section, dict) else []
    return (r, _SECTION_ORDER[name.split(".", 1)[0]], keys.index(where[-1]) if where[-1] in keys else len(keys))


def _first_present(arr, where, parsed) -> int | None:
    """The first taken row whose line has the key at ``where`` (null or not), None if none has it."""
    import pyarrow.compute as pc

    n = len(arr)
    if not arr.null_count:
        return 0 if n else None
    valid = arr.is_valid()
    first_valid = pc.index(valid, True).as_py() if arr.null_count < n else -1
    upto = n if first_valid < 0 else first_valid
    step = 64
    for start in range(0, upto, step):  # in runs of rows: the first key is usually found early
        found = parsed.has_rows(range(start, min(upto, start + step)), where)
        if any(found):
            return start + found.index(True)
    return None if first_valid < 0 else first_valid


def _where(name: str) -> tuple[str, ...]:
    section, key = name.split(".", 1)
    return ("extra", "regularizer_source", key) if section == "regularizer_source" else (section, key)


class _Parsed:
    """The taken rows' records, read from their lines with :mod:`json` only where a cell needs it, each once: a
    section (``case``, ``extra.regularizer_source``, ...) from its own bytes where they are certain (see
    :meth:`section`), else the whole line."""

    def __init__(self, lines, rows, idx, table=None):
        self.lines, self.rows, self.idx, self.table = lines, rows, idx, table
        self.cache, self.names, self.sections, self.present = {}, {}, {}, {}

    def __call__(self, j: int) -> dict:
        if j not in self.cache:
            self.cache[j] = json.loads(self.lines[self.rows[self.idx[j]]])
        return self.cache[j]

    def _quoted(self, key: str) -> bytes:
        name = self.names.get(key)
        if name is None:
            name = self.names[key] = json.dumps(key, ensure_ascii=False).encode()
        return name

    def section(self, j: int, path: tuple[str, ...]):
        """The value at ``path`` in row ``j``'s record (``_ABSENT`` where it has none). Where Arrow says the record
        has no object there, ``_ABSENT`` (no cell needs more); where it has one and the line has no backslash,
        the top-level section (``path[0]``) is found in the line's bytes (:func:`_top_level_value`) and only it
        is parsed. Otherwise the whole line is parsed."""
        key = (j, path)
        if key not in self.sections:
            value = _UNKNOWN if j in self.cache else self._section_bytes(j, path)
            self.sections[key] = _lookup(self(j), path) if value is _UNKNOWN else value
        return self.sections[key]

    def _section_bytes(self, j: int, path: tuple[str, ...]):
        """The section's object from its bytes, ``_ABSENT`` where Arrow has no object there (the line has none:
        null, or no such key), ``_UNKNOWN`` where the bytes are not certain."""
        present = self._present(path)
        if present is None:
            return _UNKNOWN
        if not present[j]:
            return _ABSENT
        raw = self.lines[self.rows[self.idx[j]]]
        if b"\\" in raw:
            return _UNKNOWN
        value = _top_level_value(raw, self._quoted(path[0]))
        if value is _UNKNOWN:
            return _UNKNOWN
        value = _lookup(value, path[1:])
        return value if isinstance(value, dict) else _UNKNOWN

    def has_rows(self, js, where: tuple[str, ...]) -> list[bool]:
        """:meth:`has` of each row in ``js``: rows whose parent Arrow says is no object, and rows whose line
        lacks the key's quoted name (and has no backslash), decided without a call each."""
        present = self._present(where[:-1])
        name = self._quoted(where[-1])
        lines, rows, idx, cache = self.lines, self.rows, self.idx, self.cache
        out = []
        for j in js:
            if present is not None and not present[j]:
                out.append(False)
                continue
            raw = lines[rows[idx[j]]]
            out.append(False if j not in cache and name not in raw and b"\\" not in raw else self.has(j, where))
        return out

    def _present(self, path: tuple[str, ...]):
        """Per taken row, whether Arrow has an object at ``path`` (None: no struct column there)."""
        present = self.present.get(path, _UNKNOWN)
        if present is _UNKNOWN:
            import pyarrow as pa

            arr = _child(self.table, path) if self.table is not None else None
            present = self.present[path] = None if arr is None or not pa.types.is_struct(arr.type) else \
                arr.take(self.idx).is_valid().to_numpy(zero_copy_only=False)
        return present

    def has(self, j: int, where: tuple[str, ...]) -> bool:
        """Whether row ``j``'s line has the key at ``where``. A line whose bytes do not hold the key's quoted
        name (and no backslash: an escape could spell it otherwise) lacks it: no need to parse it."""
        raw = self.lines[self.rows[self.idx[j]]]
        if j not in self.cache and b"\\" not in raw and self._quoted(where[-1]) not in raw:
            return False
        return _lookup(self.section(j, where[:-1]), where[-1:]) is not _ABSENT

    def value(self, j: int, where: tuple[str, ...]):
        """The value at ``where`` in row ``j``'s record (``_ABSENT`` where it has none)."""
        return _lookup(self.section(j, where[:-1]), where[-1:])


_DECODER = json.JSONDecoder()
_STRING = re.compile(rb'"[^"]*"')


def _top_level_value(raw: bytes, name: bytes):
    """The value of the top-level key ``name`` (quoted, as bytes) of the JSON object on the line ``raw``, which
    has no backslash (so every ``"`` opens or closes a string): the key is the occurrence of ``name`` outside
    any string, at depth 1 (braces and brackets counted outside strings), followed by a colon. ``_UNKNOWN``
    unless there is exactly one such key (a repeated key: the whole line decides) and its value decodes."""
    found, depth, pos = None, 0, 0
    k = raw.find(name)
    while k >= 0:  # each occurrence opens a string (in valid JSON a closing quote is never followed by a letter)
        part = _STRING.sub(b"", raw[pos:k])  # pos opens a string too: what lies between, strings removed
        depth += part.count(b"{") + part.count(b"[") - part.count(b"}") - part.count(b"]")
        pos = k
        if depth == 1 and raw[k + len(name):].lstrip()[:1] == b":":
            if found is not None:
                return _UNKNOWN
            found = k
        k = raw.find(name, k + 1)
    if found is None:
        return _UNKNOWN
    text = raw[found + len(name):].decode("utf-8")
    i = len(text) - len(text.lstrip()) + 1  # past the colon
    i += len(text[i:]) - len(text[i:].lstrip())
    try:
        return _DECODER.raw_decode(text, i)[0]
    except ValueError:
        return _UNKNOWN


_ABSENT = object()  # no such key
_UNKNOWN = object()  # the bytes cannot say: parse the whole line


def _lookup(rec: dict, where: tuple[str, ...]):
    for key in where:
        if not isinstance(rec, dict) or key not in rec:
            return _ABSENT
        rec = rec[key]
    return rec


def _object_cells(col, where, parsed):
    """A boolean or all-null column as pandas builds it from dicts: ``None`` where the line says null, NaN where
    it lacks the key (an all-null column with a missing key is float, one null on every line is object)."""
    import numpy as np
    import pandas as pd

    values = col.to_pylist()
    nulls = [j for j, v in enumerate(values) if v is None]
    absent = [False] * len(values)
    for j, has in zip(nulls, parsed.has_rows(nulls, where)):
        absent[j] = not has
    if all(v is None for v in values):
        return pd.Series(np.nan, index=range(len(values))) if any(absent) else pd.Series(values, dtype=object)
    return pd.Series([np.nan if a else v for v, a in zip(values, absent)], dtype=object)


def _strings(table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _child(table, where: tuple[str, ...]):
    """The (chunked) array at ``where`` (a top-level column, then struct fields), or None."""
    import pyarrow as pa

    if where[0] not in table.column_names:
        return None
    arr = table.column(where[0])
    for name in where[1:]:
        if not pa.types.is_struct(arr.type) or arr.type.get_field_index(name) < 0:
            return None
        i = arr.type.get_field_index(name)
        arr = pa.chunked_array([c.field(i) for c in arr.chunks], type=arr.type.field(i).type)
    return arr


def _json_cells(arr, where, parsed):
    """A nested column's cells as today's ``json.dumps`` text of the value on each line (None where Arrow has
    none: the key is absent or null on that line). Lists of strings, integers or booleans are written from Arrow
    (the same text); other values (dicts, whose keys Arrow merges across lines, and floats, which may have been
    integers) from their lines, parsed with :mod:`json`."""
    import pandas as pd
    import pyarrow as pa

    t = arr.type
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and any(
            check(t.value_type) for check in (pa.types.is_string, pa.types.is_integer, pa.types.is_boolean,
                                               pa.types.is_null)):
        return pd.Series([None if v is None else json.dumps(v) for v in arr.to_pylist()])
    present = arr.is_valid().to_numpy(zero_copy_only=False)
    out = [None] * len(arr)
    for j in present.nonzero()[0]:
        out[j] = json.dumps(parsed.value(j, where))
    return pd.Series(out)


# ==============================================================================================================
# The snapshot cache: parse only what was appended since the last read
# ==============================================================================================================
_CACHE_VERSION = 1
_TAIL = 4096  # the bytes before the cached offset whose hash must still match (a file rewritten in place)
_NAN = "__nan__."  # a flag column per object column: where the cell is NaN (no key) rather than None (null)


def cache_dir() -> Path | None:
    """Where snapshots go: ``$SSLBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/sslbench/snapshots`` (by default
    ``~/.cache/sslbench/snapshots``); ``SSLBENCH_CACHE_DIR=off`` turns the cache off. Outside the store's folder,
    so a read-only store is cached too, and no one else's folder is written."""
    env = os.environ.get("SSLBENCH_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sslbench" / "snapshots"


def _own_folder(folder: Path) -> bool:
    """Create ``folder`` (mode 700) or check it: a real folder (not a link) owned by this user."""
    import stat

    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and (not hasattr(os, "getuid") or st.st_uid == os.getuid())


def _tail_hash(f, offset: int) -> str:
    import hashlib

    f.seek(max(0, offset - _TAIL))
    return hashlib.sha256(f.read(min(offset, _TAIL))).hexdigest()


def _complete_end(f, end: int) -> int:
    """The offset after the last newline before ``end``: a snapshot never ends inside a line being written."""
    pos = end
    while pos > 0:
        step = min(pos, 1 << 16)
        f.seek(pos - step)
        chunk = f.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def read_frame_cached(path: str | os.PathLike, *, columns: Iterable[str] | None = None, folder: Path | None = None,
                      arrow: bool = False):
    """:func:`read_frame` of the whole store ``path`` (the same frame and warnings), through a snapshot in the
    cache folder (:func:`cache_dir`): a Parquet file keyed by the store's real path, its identity
    (``st_dev``, ``st_ino``), the byte offset read up to (the end of its last whole line) and a hash of the
    bytes before it. A later read parses only the lines appended since; a store that shrank, was replaced
    (another inode) or rewritten before the offset is read from the start. A snapshot that cannot be read, or
    whose key or columns are not valid, is rebuilt with a warning. The lines skipped while building it are
    kept in it and warned about again, as a cold read does. Written to a temporary file and renamed.

    ``arrow=True``: a store whose snapshot holds all of it (nothing new since, or the snapshot just written)
    comes back as a :class:`Snapshot` (its Arrow columns, not yet a frame: :func:`frames_of_snapshots` converts
    many at once); anything else as the frame."""
    path = Path(path)
    folder = cache_dir() if folder is None else folder
    if folder is None or not path.is_file() or not _own_folder(folder):
        return read_frame(path, columns=columns)
    real = os.path.realpath(path)
    snap = _snapshot_path(folder, path)
    try:
        with open_readable(path) as f:
            st = os.fstat(f.fileno())
            end = st.st_size
            cut = _complete_end(f, end)
            cached = _load_snapshot(snap, real, st, f)
            tail = _tail_hash(f, cut)
    except OSError:
        return read_frame(path, columns=columns)
    problems, not_json = _Problems(path), []
    keep = wanted(columns)
    if cached is not None:
        table, meta, raw = cached
        problems.by_reason = {r: list(v) for r, v in meta["problems"].items()}
        not_json += meta["not_json"]
        if arrow and cut == meta["offset"] == end:
            old = _snapshot_part(snap, table, keep, raw)
            if old is not None:
                _touch(snap)
                warn_problems(problems, not_json)
                if old.frame is not None:
                    return old.frame
                old.rebuild = lambda exc: _rebuild(snap, exc, path, columns, folder)
                return old
        else:
            old = _snapshot_frame(snap, table, keep if cut == meta["offset"] == end else None)
        if old is None:  # its data could not be read: rebuilt
            cached, problems.by_reason, not_json = None, {}, []
        elif cut == meta["offset"] == end:  # nothing new: only the columns asked for left the Parquet file
            _touch(snap)
            warn_problems(problems, not_json)
            return old
    if cached is not None:
        new, lineno = _read(path, problems, not_json, start=meta["offset"], stop=cut, first_line=meta["lines"])
        df = _concat([old, new])
    else:
        df, lineno = _read(path, problems, not_json, stop=cut)
    if cached is None or cut != cached[1]["offset"]:
        saved = _save_snapshot(snap, df, {"version": _CACHE_VERSION, "path": real, "dev": st.st_dev,
                                          "ino": st.st_ino, "offset": cut, "lines": lineno, "tail": tail,
                                          "problems": problems.by_reason, "not_json": not_json})
        part = _read_back(snap, real, path, columns, folder, cut) if arrow and saved and cut == end else None
        if part is not None:  # from the snapshot just written, as a later read would
            warn_problems(problems, not_json)
            return part
    if cut < end:  # a line being written: read now, never cached
        rest, _ = _read(path, problems, not_json, start=cut, stop=end, first_line=lineno)
        df = _concat([df, rest])
    warn_problems(problems, not_json)
    return df[[c for c in df.columns if keep(c)]] if columns is not None else df


def _read_back(snap: Path, real: str, path: Path, columns, folder: Path, offset: int):
    """The :class:`Snapshot` of the snapshot just written of the store read up to ``offset`` (None where it is not
    that snapshot any more: another process wrote a later one)."""
    try:
        with open_readable(path) as f:
            cached = _load_snapshot(snap, real, os.fstat(f.fileno()), f)
    except OSError:
        return None
    if cached is None or cached[1]["offset"] != offset:
        return None
    part = _snapshot_part(snap, cached[0], wanted(columns), cached[2])
    if part is None or part.frame is not None:
        return None
    part.rebuild = lambda exc: _rebuild(snap, exc, path, columns, folder)
    return part


def _snapshot_path(folder: Path, path) -> Path:
    """The snapshot of the store ``path`` in ``folder``: named by a hash of the store's real path."""
    import hashlib

    real = os.path.realpath(path)
    return Path(folder) / (hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".parquet")


def _load_snapshot(snap: Path, real: str, st: os.stat_result, f):
    """(Parquet file, key, the file's bytes) of a valid snapshot of this store, or None (none yet, or not valid: then a warning).
    The file is in memory and its schema checked; :func:`_from_snapshot` reads the columns a caller wants."""
    try:
        g = open_regular(snap)
    except NotRegularFile:
        return _invalid(snap, "is not a regular file")
    except OSError as exc:
        return _invalid(snap, f"cannot be opened ({exc.strerror or exc})")
    if g is None:
        return None
    try:
        with g:
            data = g.read()
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.ParquetFile(pa.BufferReader(data))
        schema = table.schema_arrow  # built anew at each access: once
        meta = json.loads((schema.metadata or {}).get(b"sslbench", b"null"))
        problem = _bad_key(meta, schema.names, real, st)
        if problem is None:
            f.seek(0)
            if meta["offset"] > st.st_size or _tail_hash(f, meta["offset"]) != meta["tail"]:
                return None  # the store shrank or was rewritten: read from the start (not the cache's fault)
            return table, meta, data
    except Exception as exc:  # noqa: BLE001 - anything in a planted or damaged file: rebuild it
        problem = f"cannot be read ({type(exc).__name__}: {exc})"
    return _invalid(snap, problem) if problem != "other store" else None


def _bad_key(meta, names: list, real: str, st) -> str | None:
    if not isinstance(meta, dict) or meta.get("version") != _CACHE_VERSION:
        return "has no key of this version"
    if meta.get("path") != real or meta.get("dev") != st.st_dev or meta.get("ino") != st.st_ino:
        return "other store"  # another store, or this path's file replaced: a fresh snapshot, no warning
    ints = ("offset", "lines")
    if not all(isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool) and meta[k] >= 0 for k in ints):
        return "has a key with a bad offset"
    if not isinstance(meta.get("tail"), str) or not isinstance(meta.get("not_json"), list) or not isinstance(
            meta.get("problems"), dict):
        return "has a key with bad fields"
    lists = [meta["not_json"], *meta["problems"].values()]
    if not all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in lists) or not all(
            isinstance(r, str) for r in meta["problems"]):
        return "has a key with bad line numbers"
    if len(set(names)) != len(names) or any(n not in BASE and not n.startswith(tuple(
            f"{s}." for s in (*SECTIONS, "regularizer_source", _NAN.rstrip(".")))) for n in names):
        return "has columns a store does not have"
    return None


def _invalid(snap: Path, problem: str):
    import warnings

    warnings.warn(f"{snap}: the snapshot of the store {problem}; ignored and rebuilt", RuntimeWarning,
                  stacklevel=4)
    return None


def _touch(snap: Path) -> None:
    """Mark a snapshot as read now (:func:`prune_snapshots` removes those not read for days); never a link."""
    try:
        os.utime(snap, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass


class Snapshot:
    """A store's snapshot read but not yet converted to pandas (``read_frame_cached(..., arrow=True)``): ``names``
    (its columns, in order), ``table`` (those columns as Arrow, but its float columns: :meth:`floats` reads them
    from ``file``, the snapshot file's bytes, straight into the frame, so that the store's floats are never held twice), ``masks``
    (``{column: where the cell is NaN rather than None}``) and ``types`` (``{column: (Arrow type, pandas
    metadata)}``, what decides the column's pandas dtype). ``frame`` is set instead where a column's type or
    metadata is not one :func:`frames_of_snapshots` converts in one piece (converted on its own, as before).
    ``rebuild(exc)``: the store's frame read again from its lines, the snapshot being unreadable after all."""

    __slots__ = ("names", "table", "file", "rows", "masks", "types", "frame", "rebuild")

    def __init__(self, names=(), table=None, file=None, rows=0, masks=None, types=None, frame=None):
        self.names, self.table, self.file, self.rows = list(names), table, file, rows
        self.masks, self.types, self.frame, self.rebuild = masks or {}, types or {}, frame, None

    def __len__(self) -> int:
        return len(self.frame) if self.frame is not None else self.rows

    def floats(self, names: list):
        """Float columns ``names`` as an Arrow table, read from the snapshot file (``file``: its bytes; the file is
        opened again, since an open Parquet file holds its metadata, about 0.5 MB for 2 000 records)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.ParquetFile(pa.BufferReader(self.file)).read(columns=names)

    def column(self, name: str):
        """One column as Arrow (a float column read from the file)."""
        if name in self.table.column_names:
            return self.table.column(name)
        return self.floats([name]).column(0)


# the Arrow types of a snapshot's columns and the numpy dtype its pandas metadata may give each: anything else
# (a planted file's odd metadata) is converted on its own, as before
_SIMPLE = {"double": ("float64",), "int64": ("int64",), "bool": ("bool", "object"), "string": ("str", "object"),
           "large_string": ("str", "object"), "null": ("object",)}
# the names of the columns' index pandas writes (the str dtype of pandas 3, object before)
_COLUMN_INDEXES = [[{"name": None, "field_name": None, "pandas_type": t, "numpy_type": n, "metadata": m}]
                   for t in ("unicode", "object", "string") for n in ("object", "str")
                   for m in (None, {"encoding": "UTF-8"})] + [[]]


def _snapshot_part(snap: Path, table, keep, raw: bytes):
    """:class:`Snapshot` of a snapshot file's columns ``keep`` picks (its float columns left in the file); None
    with a warning (rebuilt) where its data cannot be read."""
    try:
        schema = table.schema_arrow
        names = [n for n in schema.names if not n.startswith(_NAN) and keep(n)]
        pandas_meta = schema.pandas_metadata or {}
        meta = {c.get("name"): c for c in pandas_meta.get("columns", []) if isinstance(c, dict)}
        simple = pandas_meta.get("index_columns") == [] and pandas_meta.get("column_indexes") in _COLUMN_INDEXES
        types = {}
        for name in names:
            entry, kind = meta.get(name), str(schema.field(name).type)
            if not simple or not isinstance(entry, dict) or entry.get("metadata") is not None or entry.get(
                    "numpy_type") not in _SIMPLE.get(kind, ()) or (kind == "double" and _NAN + name in schema.names):
                return Snapshot(frame=_to_pandas(*_snapshot_data(table, keep)))  # on its own, as before
            types[name] = (kind, json.dumps(entry, sort_keys=True))
        rest = {name for name, (kind, _) in types.items() if kind != "double"}
        data, masks = _snapshot_data(table, rest.__contains__)
        return Snapshot(names, data, raw, table.metadata.num_rows, masks, types)
    except Exception as exc:  # noqa: BLE001 - anything in a planted or damaged file: rebuild it
        return _invalid(snap, f"cannot be read ({type(exc).__name__}: {exc})")


def _rebuild(snap: Path, exc: Exception, path: Path, columns, folder):
    """The frame of a store whose snapshot's float columns could not be read after all: rebuilt from its lines."""
    _invalid(snap, f"cannot be read ({type(exc).__name__}: {exc})")
    try:
        os.unlink(snap)
    except OSError:
        pass
    return read_frame_cached(path, columns=columns, folder=folder)


class _Unreadable(Exception):
    def __init__(self, at: int, exc: Exception):
        super().__init__(at, exc)
        self.at, self.exc = at, exc


def frames_of_snapshots(parts: list) -> "object":
    """``pd.concat(frames, ignore_index=True, sort=False)`` of ``parts``, each ``(part, constants)``: a frame or a
    :class:`Snapshot` (its frame being :func:`_to_pandas` of it), ``constants`` (``{column: value}``) the columns
    set on that part's frame before the concatenation (``frame[name] = value``). The same frame (columns, order,
    dtypes, None and NaN), but consecutive snapshots are concatenated as Arrow columns and converted to pandas
    once: a column of one type, pandas metadata and NaN flags in every snapshot, of a simple type (present in
    each, or a number column missing from some) in one piece (the float columns written straight into one
    block); the others (a column whose type changes between files, text missing from a file, NaN flags in some
    files only) snapshot by snapshot, concatenated by pandas, as before. ``parts`` is emptied as it is read."""
    import pandas as pd

    frames, run, ran = [], [], False
    parts.append((None, None))
    while parts:
        part, constants = parts.pop(0)
        if isinstance(part, Snapshot) and part.frame is None:
            run.append((part, constants))
            continue
        if run:
            try:
                frames.append(_run_frame(run))
            except _Unreadable as bad:  # that store read from its lines, the rest again as before
                gone, constants_bad = run[bad.at]
                run[bad.at] = (gone.rebuild(bad.exc), constants_bad)
                parts[:0] = run + [(part, constants)]
                run = []
                continue
            run, ran = [], True
        if part is not None:
            frame = part.frame if isinstance(part, Snapshot) else part
            for name, value in constants.items():
                frame[name] = value
            frames.append(frame)
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1 and ran:  # already one frame of its own (pd.concat would copy it)
        return frames[0]
    return pd.concat(frames, ignore_index=True, sort=False)


def _run_frame(run: list):
    """:func:`frames_of_snapshots` of consecutive :class:`Snapshot` parts (``run`` is emptied as it is read)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    order: dict = {}  # pd.concat's column order: each part's columns, then its constants, first seen first
    for part, constants in run:
        order.update(dict.fromkeys(part.names))
        order.update(dict.fromkeys(constants))
    sizes = [len(part) for part, _ in run]
    fast = {}
    for name in order:
        types = {part.types.get(name) for part, _ in run}
        missing = None in types
        types.discard(None)
        flagged = sum(name in part.masks for part, _ in run)
        if len(types) != 1 or flagged not in (0, len(run)):  # NaN flags in some: object in some frames only
            continue
        (kind, entry), = types
        if kind in _SIMPLE and (not missing or kind in ("double", "int64")):
            fast[name] = (kind, entry)
    text = pd.DataFrame(index=[0]).assign(x="x")["x"].dtype  # what ``frame[name] = "..."`` gives
    # the float columns: one block, each snapshot's read from its file straight into it
    floats = [name for name, (kind, _) in fast.items() if kind == "double"]
    block = np.full((len(floats), sum(sizes)), np.nan)
    at = 0
    for i, (part, _) in enumerate(run):
        present = [name for name in floats if name in part.types]
        if present:
            try:
                data = part.floats(present)
                if data.num_rows != len(part) or [str(t) for t in data.schema.types] != ["double"] * len(present):
                    raise ValueError("its float columns do not match its schema")
            except Exception as exc:  # noqa: BLE001 - anything in a planted or damaged file: rebuild it
                raise _Unreadable(i, exc) from None
            for name in present:
                block[floats.index(name), at:at + len(part)] = data.column(name).to_numpy(zero_copy_only=False)
            del data
        at += len(part)
    df = pd.DataFrame(block.T, columns=floats, copy=False)
    del block
    columns, whole = {}, []
    for name, (kind, entry) in fast.items():
        if kind == "double":
            continue
        typ = pa.int64() if kind == "int64" else None
        chunks = []
        for part, _ in run:
            if name in part.types:
                chunks += part.table.column(name).chunks
            else:
                chunks.append(pa.nulls(len(part), typ))
        columns[name] = pa.chunked_array(chunks, type=chunks[0].type)
        whole.append(json.loads(entry))
    meta = dict(run[0][0].table.schema.pandas_metadata or {})
    rest = pa.table(columns, metadata=_pandas_meta(meta, whole)).to_pandas() if columns else pd.DataFrame(
        index=pd.RangeIndex(sum(sizes)))
    del columns
    for name in fast:  # NaN flags in every part: the cells flagged are NaN, the column of object dtype
        if name in run[0][0].masks:
            col = rest[name].astype(object)
            col[np.concatenate([part.masks[name] for part, _ in run])] = np.nan
            rest[name] = col
    for i, name in enumerate(order):
        if name in fast and fast[name][0] == "double":
            continue
        if name in rest.columns:
            values = rest[name]
        elif all(name in constants for _, constants in run):
            given = [constants[name] for _, constants in run]
            values = pd.Series(np.repeat(np.array(given, dtype=object), sizes),
                               dtype=text if all(isinstance(v, str) for v in given) else None)
        else:
            pieces = []
            for part, constants in run:
                if name in part.types:  # as in its own frame: its type, its pandas metadata, its NaN flags
                    one = pa.table({name: part.column(name)}, metadata=_pandas_meta(
                        part.table.schema.pandas_metadata, [json.loads(part.types[name][1])]))
                    pieces.append(_to_pandas(one, {name: part.masks[name]} if name in part.masks else {}))
                elif name in constants:
                    pieces.append(pd.DataFrame(index=pd.RangeIndex(len(part))).assign(**{name: constants[name]}))
                else:
                    pieces.append(pd.DataFrame(index=pd.RangeIndex(len(part))))
            values = pd.concat(pieces, ignore_index=True, sort=False)[name]
        df.insert(i, name, values)
    run.clear()
    df.columns = pd.Index(list(df.columns))  # the names' dtype as pandas infers it for any frame
    return df


def _pandas_meta(meta: dict, columns: list) -> dict:
    """A table's schema metadata: pandas' of a snapshot (``meta``) for ``columns`` (their entries) only."""
    meta = {**meta, "columns": columns, "index_columns": []}
    return {b"pandas": json.dumps(meta).encode()}


def _snapshot_frame(snap: Path, table, keep):
    """:func:`_from_snapshot`, or None with a warning where the file's data cannot be read."""
    try:
        return _from_snapshot(table, keep)
    except Exception as exc:  # noqa: BLE001 - anything in a planted or damaged file: rebuild it
        return _invalid(snap, f"cannot be read ({type(exc).__name__}: {exc})")


def _from_snapshot(table, keep=None):
    """The frame of a snapshot (a ``pyarrow.parquet.ParquetFile``), only the columns ``keep(name)`` picks (and
    their NaN flags) read from it."""
    data, masks = _snapshot_data(table, keep)
    return _to_pandas(data, masks)


def _snapshot_data(table, keep=None):
    """(Arrow table, ``{column: NaN mask}``) of a snapshot: the columns ``keep(name)`` picks, the NaN flags split
    off (only the flags with a NaN in them are kept)."""
    names = table.schema_arrow.names
    if keep is not None:
        picked = [n for n in names if not n.startswith(_NAN) and keep(n)]
        names = picked + [_NAN + n for n in picked if _NAN + n in names]
    data = table.read(columns=names)
    flags = [n for n in data.column_names if n.startswith(_NAN)]
    masks = {n[len(_NAN):]: data.column(n).to_numpy(zero_copy_only=False).astype(bool) for n in flags}
    return data.drop_columns(flags), {n: m for n, m in masks.items() if m.any()}


def _to_pandas(data, masks: dict):
    """The frame of a snapshot's Arrow table: a cell its NaN mask flags is NaN (the column then of object dtype)."""
    import numpy as np

    df = data.to_pandas()  # the flags never become columns (deleting them costs a copy each)
    for target, mask in masks.items():
        if target in df.columns and mask.any():
            col = df[target].astype(object)
            col[mask] = np.nan
            df[target] = col
    return df


def _save_snapshot(snap: Path, df, meta: dict) -> bool:
    """Write the snapshot (temporary file + rename); a frame Parquet cannot hold (a column of mixed types) or a
    folder that cannot be written leaves no snapshot (False): the store is then read in full each time."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sslbench.records.files import write_atomically

    out = df.copy()
    for name in df.columns:
        if df[name].dtype == object:  # None and NaN are both null in Parquet: keep which was which
            isnan = [isinstance(v, float) and v != v for v in df[name].tolist()]
            if any(isnan):
                out[_NAN + name] = pd.Series(isnan, index=df.index, dtype=bool)
    try:
        table = pa.Table.from_pandas(out, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               b"sslbench": json.dumps(meta).encode()})
        write_atomically(snap, lambda f: pq.write_table(table, f))
    except (pa.ArrowException, OSError, ValueError, TypeError):
        return False
    prune_once(snap.parent)
    return True


def prune_once(folder: Path) -> None:
    """:func:`prune_snapshots` of ``folder``, the first time this process writes there."""
    if folder not in _PRUNED:
        _PRUNED.add(folder)
        prune_snapshots(folder)


#: the cache folders pruned by this process (once each, when it first writes a snapshot there)
_PRUNED: set = set()
#: a snapshot not read or written for this many days is removed (``$SSLBENCH_CACHE_DAYS`` overrides it)
MAX_AGE_DAYS = 30
_SNAPSHOT_NAME = re.compile(r"[0-9a-f]{32}\.(parquet|records\.jsonl)")  # the latter: projection_cache's


def prune_snapshots(folder: Path, *, max_age_days: float | None = None, now: float | None = None) -> list[Path]:
    """Remove the snapshots in ``folder`` whose store no longer exists (the real path in its key) or that were
    neither read nor written for ``max_age_days`` (default :data:`MAX_AGE_DAYS`, or ``$SSLBENCH_CACHE_DAYS``);
    returns those removed. Bounded: only files named as this module names snapshots, regular files (a link or
    a folder planted there is left alone, never followed), each checked by its Parquet footer alone. Called once
    per process and folder, when a snapshot is first written there."""
    import stat
    import time

    if max_age_days is None:
        try:
            max_age_days = float(os.environ.get("SSLBENCH_CACHE_DAYS", MAX_AGE_DAYS))
        except ValueError:
            max_age_days = MAX_AGE_DAYS
    now = time.time() if now is None else now
    removed = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return removed
    for name in names:
        if not _SNAPSHOT_NAME.fullmatch(name):
            continue
        snap = Path(folder) / name
        try:
            st = os.lstat(snap)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        stale = now - st.st_mtime > max_age_days * 86400
        if not stale:
            store = _snapshot_store(snap)
            stale = store is not None and not os.path.exists(store)
        if stale:
            try:
                os.unlink(snap)
                removed.append(snap)
            except OSError:
                continue
    return removed


def _snapshot_store(snap: Path) -> str | None:
    """The store's real path in a snapshot's key (its Parquet footer, or the first line of cached records), or
    None where it cannot be read."""
    try:
        g = open_regular(snap)
        if g is None:
            return None
        with g:
            if snap.name.endswith(".parquet"):
                import pyarrow.parquet as pq

                meta = json.loads((pq.read_schema(g).metadata or {}).get(b"sslbench", b"null"))
            else:
                meta = json.loads(g.readline(1 << 20))
    except Exception:  # noqa: BLE001 - a damaged or foreign file: the age rule alone decides
        return None
    path = meta.get("path") if isinstance(meta, dict) else None
    return path if isinstance(path, str) else None
