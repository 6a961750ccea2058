"""The dashboard's one copy of a results folder, kept current by reading only the lines appended since (issue 21,
item 4).

:class:`LiveResults` holds the frame of :func:`~sslbench.analysis.load.load_results` (the columns of
:data:`DASHBOARD_COLUMNS` only) for every session and rerun of one server. When the folder's fingerprint
(:func:`~sslbench.analysis.load.results_stamp`) changed, it looks at what changed:

- only record stores grew (same file: device and inode, and the 4 KB before the offset read up to unchanged), or
  new record stores appeared: it parses only the appended whole lines of those files
  (:func:`sslbench.records.columnar.read_frame` from the byte offset read up to; a line still being written is
  left for the next change), derives their columns and puts the new rows after their file's rows, where a cold
  read puts them. The old frame is then dropped: one frame is held, never one per change;
- anything else (a store that shrank, was replaced or rewritten, a file removed, a pytest-benchmark or asv file
  changed): the folder is read again with :func:`load_results` (which parses only what its snapshots lack).

A training run's per-step log changing changes nothing here (the Runs page reads those logs itself). Warnings of
an appended read name the file and its line numbers in the whole file, as a cold read's do.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from sslbench.analysis import load as _load
from sslbench.analysis.load import load_results, results_stamp
from sslbench.records.files import open_readable

#: the flattened columns the dashboard's pages read (besides the base and derived columns, always read): every
#: ``case.*``, ``metrics.*`` and ``env.*``; a store's ``regularizer_source.*`` (where a plug-in came from) is not shown
DASHBOARD_COLUMNS = ("case.", "metrics.", "env.")
_TAIL = 4096  # the bytes before the offset read up to whose hash must still match (a file rewritten in place)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Read:
    """How far one record store has been read: its identity, the byte offset after the last whole line read, the
    number of the next line, and a hash of the bytes before the offset."""
    dev: int
    ino: int
    offset: int
    next_line: int
    tail: str


def _tail_hash(f, offset: int) -> str:
    f.seek(max(0, offset - _TAIL))
    return hashlib.sha256(f.read(min(offset, _TAIL))).hexdigest()


def _whole_lines(f, start: int, end: int) -> tuple[int, int]:
    """(the offset after the last newline in ``[start, end)``, or ``start`` when there is none; the newlines
    there), read in chunks."""
    f.seek(start)
    pos, last, lines = start, start, 0
    while pos < end:
        chunk = f.read(min(_CHUNK, end - pos))
        if not chunk:
            break
        n = chunk.count(b"\n")
        if n:
            lines += n
            last = pos + chunk.rfind(b"\n") + 1
        pos += len(chunk)
    return last, lines


def _state(path: Path, start: _Read | None = None) -> _Read | None:
    """The :class:`_Read` of ``path`` read to its last whole line now (counting lines on from ``start``), or
    None when it cannot be opened."""
    try:
        with open_readable(path) as f:
            st = os.fstat(f.fileno())
            base, first = (start.offset, start.next_line) if start is not None else (0, 1)
            offset, lines = _whole_lines(f, base, st.st_size)
            return _Read(st.st_dev, st.st_ino, offset, first + lines, _tail_hash(f, offset))
    except OSError:
        return None


def _unchanged_prefix(path: Path, read: _Read) -> bool:
    """Whether ``path`` is the file read (same device and inode), at least as long, with the same bytes before
    the offset read up to: then only lines were appended."""
    try:
        with open_readable(path) as f:
            st = os.fstat(f.fileno())
            return (st.st_dev, st.st_ino) == (read.dev, read.ino) and st.st_size >= read.offset \
                and _tail_hash(f, read.offset) == read.tail
    except OSError:
        return False


class LiveResults:
    """The records of one results folder, held once for every session and rerun of the dashboard, read again
    only where a file changed (see the module's text). ``dashboard/app.py`` keeps one per folder
    (``st.cache_resource``) and calls :meth:`get` on each rerun; ``generation`` grows by one at each change of
    the frame, so what the pages derive from it can be cached on ``(folder, generation)``. The pages must treat
    the frame as read-only (they filter into new frames).

    ``reads`` counts whole reads of the folder, ``appends`` the reads of appended lines only."""

    #: how many derived values (:meth:`derived`) are kept for one version of the records
    max_derived = 64

    def __init__(self, root: str, asv: tuple[str, ...] | None = None,
                 columns: Iterable[str] | None = DASHBOARD_COLUMNS):
        self.root, self.asv = str(root), asv
        self.columns = None if columns is None else tuple(columns)
        self.stamp: tuple | None = None
        self.frame = pd.DataFrame()
        self.problems: list[str] = []
        self.reads = self.appends = self.generation = 0
        self._stores: dict[str, _Read | None] = {}  # record stores read (None: read, but not to a whole line)
        self._other: dict[str, tuple] = {}  # every other file of the fingerprint: (size, mtime)
        self._derived: dict = {}  # what :meth:`derived` computed from this generation's frame
        self._lock = threading.Lock()  # sessions rerun in threads of one server: one read at a time

    def get(self) -> tuple[pd.DataFrame, list[str]]:
        """The records and the warnings reading them gave, read again (only the new lines where that is
        enough) when a file changed."""
        with self._lock:
            stamp = results_stamp(self.root, self.asv)
            if stamp != self.stamp:
                grown = self._grown(stamp)
                if grown is None:
                    self._read_all(stamp)
                    changed = True
                else:
                    changed = self._read_appended(grown, stamp)
                if changed:
                    self.generation += 1
                    self._derived = {}
            return self.frame, self.problems

    def derived(self, key, compute):
        """``compute(frame)`` of the frame :meth:`get` last gave, computed once per generation and ``key`` (a
        hashable naming what is computed and from which choices); dropped when the frame changes."""
        with self._lock:
            generation, frame = self.generation, self.frame
            if (generation, key) in self._derived:
                return self._derived[(generation, key)]
        value = compute(frame)  # outside the lock: a slow derivation must not block the other sessions' reads
        with self._lock:
            if generation == self.generation:
                while len(self._derived) >= self.max_derived:  # the oldest choices go first
                    del self._derived[next(iter(self._derived))]
                self._derived[(generation, key)] = value
        return value

    # ----------------------------------------------------------------------------------------------------------
    def _kinds(self, stamp: tuple) -> tuple[dict, dict]:
        """(record stores, other files) of a fingerprint: ``{path: (size, mtime)}`` each."""
        jsonl, _, _ = _load._walk(Path(self.root))
        stores = {str(p) for p in jsonl if not _load._is_run_log(p)}
        files = {p: (size, mtime) for p, size, mtime in stamp}
        return ({p: v for p, v in files.items() if p in stores}, {p: v for p, v in files.items() if p not in stores})

    def _grown(self, stamp: tuple) -> dict[str, _Read | None] | None:
        """``{store: how far it was read}`` of the stores to read on from there (None: a new store, from its
        start), when nothing but appends and new stores changed; None when the folder must be read again."""
        from sslbench.records import columnar

        if self.stamp is None or not columnar.available():  # without pyarrow: the line-by-line reader, all again
            return None
        stores, other = self._kinds(stamp)
        if other != self._other and not self._only_run_logs_changed(other):
            return None
        if any(p not in stores for p in self._stores):
            return None  # a store removed (or become a run log)
        old = {p: (size, mtime) for p, size, mtime in self.stamp}
        grown: dict[str, _Read | None] = {}
        for p, now in stores.items():
            if p not in self._stores:
                grown[p] = None
                continue
            if now == old.get(p):
                continue
            read = self._stores[p]
            if read is None or not _unchanged_prefix(Path(p), read):
                return None
            grown[p] = read
        return grown

    def _only_run_logs_changed(self, other: dict) -> bool:
        """Whether the non-store files that differ are all training runs' per-step logs (which the frame does
        not hold)."""
        changed = set(other) ^ set(self._other) | {p for p in set(other) & set(self._other)
                                                   if other[p] != self._other[p]}
        return all(p.endswith(".jsonl") and Path(p).is_file() and _load._is_run_log(Path(p)) for p in changed)

    def _read_all(self, stamp: tuple) -> None:
        self.frame = pd.DataFrame()  # drop the old frame before the new one is built: never two at once
        stores, other = self._kinds(stamp)
        before = {p: _state(Path(p)) for p in stores}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = load_results(self.root, asv=self.asv, columns=self.columns)
        after = {p: _state(Path(p)) for p in stores}
        # a store that changed while it was read, or ends inside a line: how far it was read is not known, so its
        # next change reads the folder again
        self._stores = {p: before[p] if before[p] is not None and before[p] == after[p] and _ends_whole(Path(p),
                                                                                                        before[p])
                        else None for p in stores}
        self._other = other
        self.frame, self.problems, self.stamp = frame, [str(w.message) for w in caught], stamp
        self.reads += 1

    def _read_appended(self, grown: dict[str, _Read | None], stamp: tuple) -> bool:
        """Read the appended whole lines of the ``grown`` stores into the frame; whether the frame changed."""
        from sslbench.records import columnar

        stores, other = self._kinds(stamp)
        frame = self.frame
        problems = list(self.problems)
        keep = None if self.columns is None else [*self.columns, *_load.DERIVE_INPUTS]
        for p in sorted(grown):
            read = grown[p]
            state = _state(Path(p), read)
            if state is None:
                continue
            start, first = (read.offset, read.next_line) if read is not None else (0, 1)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                new = columnar.read_frame(p, start=start, stop=state.offset, first_line=first, columns=keep)
            problems += [str(w.message) for w in caught]
            self._stores[p] = state
            if len(new):
                new["source"], new["source_type"] = _load._rel(Path(p), Path(self.root)), "jsonl"
                frame = _insert(frame, new)
        self._other = other
        changed = frame is not self.frame or problems != self.problems
        self.frame, self.problems, self.stamp = frame, problems, stamp
        self.appends += 1
        return changed


def _ends_whole(path: Path, read: _Read) -> bool:
    """Whether ``path`` ends at ``read.offset`` (no line being written after its last newline)."""
    try:
        return path.stat().st_size == read.offset
    except OSError:
        return False


def _insert(frame: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the rows ``new`` (of one store, as read: not derived yet) after that store's rows (where a
    cold read puts them; for a new store, before the first store whose path sorts after it), their derived
    columns (:func:`sslbench.analysis.load._derive`) as a cold read of the whole folder derives them."""
    if frame.empty:
        return _load._derive(new.reset_index(drop=True))
    inputs = [c for c in _load.DERIVE_INPUTS if c in frame.columns or c in new.columns]
    if any(c not in frame.columns for c in inputs):
        # an input of the derived columns that no row had: a cold read derives every row with it present (null)
        rederive = True
    else:
        rederive = False
        # the inputs the new rows lack are present, null, in a cold read (whose frame has them from other rows)
        for c in inputs:
            if c not in new.columns:
                new[c] = frame[c].iloc[:0].reindex(new.index)
        new = _load._derive(new)
    source = str(new["source"].iloc[0])
    sources = frame["source"].astype(str).to_numpy()
    mine = np.flatnonzero(sources == source)
    if len(mine):
        at = int(mine[-1]) + 1
    else:  # a new store: before the first store whose path sorts after it, before any non-store row
        stores = (frame["source_type"].astype(str).to_numpy() == "jsonl")
        after = np.flatnonzero(stores & (sources > source))
        at = int(after[0]) if len(after) else int(np.flatnonzero(stores)[-1]) + 1 if stores.any() else 0
    parts = [frame.iloc[:at], new, frame.iloc[at:]]
    out = pd.concat([p for p in parts if len(p)], ignore_index=True, sort=False)
    if rederive:
        return _load._derive(out)
    # a derived column is derived on the whole frame by a cold read: where the new rows alone gave it another
    # dtype (a text column with no value in them), it keeps the dtype it had
    for name in _load.DERIVED_COLUMNS:
        if name in frame.columns and name in out.columns and out[name].dtype != frame[name].dtype:
            try:
                out[name] = out[name].astype(frame[name].dtype)
            except (TypeError, ValueError):
                pass
    return out


def narrow(df: pd.DataFrame, kinds: Iterable[str], columns: Iterable[str] = ()) -> pd.DataFrame:
    """The rows of ``df`` of the record ``kinds``, with the plain columns (base and derived: no ``.`` in the
    name) and the flattened ``columns`` named, those present: what a page filters, rather than every column of
    every record (each filter of a wide frame copies all its columns). The columns are taken first, then the
    rows, so the wide frame is never copied whole."""
    keep = [c for c in df.columns if "." not in str(c)] + [c for c in columns if c in df.columns and "." in str(c)]
    if "kind" not in df.columns:
        return df[keep].iloc[0:0]
    mask = df["kind"].isin(list(kinds)).to_numpy()
    return df[keep][mask]


def crossing_pairs(data: pd.DataFrame, x: str, y: str, table: pd.DataFrame) -> list[tuple[str, str]]:
    """:func:`sslbench.analysis.views.crossing_pairs` of ``data`` read off its crossover table (``table``:
    :func:`sslbench.analysis.scaling.crossover_table` of ``data``) rather than computing every pair's crossing a
    second time: the pairs of labels of one regularizer (each group in label order), those that cross first.
    ``data`` must hold one setting (kind, device, threads, dtype, the other axes fixed), as the Scaling page's
    filtered records do; otherwise (or without a table) the views' function is used."""
    from itertools import combinations

    from sslbench.analysis import views as V
    from sslbench.analysis.scaling import OTHER_AXES, ok_points

    setting = ["kind", "device_name", "threads", "dtype", *OTHER_AXES.get(x, ())]
    ok = ok_points(data, x, y) if not data.empty else data
    if ok.empty:
        return []
    if any(c not in ok.columns for c in setting) or len(ok[setting].drop_duplicates()) != 1 \
            or not {"a", "b", "crossover"} <= set(table.columns):
        return V.crossing_pairs(data, x, y)
    combos = []
    for _, g in ok.groupby("regularizer", sort=True):
        combos += list(combinations(sorted(g["label"].astype(str).unique()), 2))
    crossed = {(str(a), str(b)) for a, b, c in zip(table["a"], table["b"], table["crossover"]) if pd.notna(c)}
    return [p for p in combos if p in crossed] + [p for p in combos if p not in crossed]
