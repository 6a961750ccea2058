"""Loading: every record under a results folder as one tidy table (:func:`load_results`), the fingerprint the
dashboard caches on (:func:`results_stamp`), and the training runs' per-step logs (:func:`load_run_logs`).

:func:`load_results` reads every JSON-lines record store under a folder (``results/`` by default, recursively), the
pytest-benchmark JSON files found there and asv results directories (found there, and ``.asv/results`` beside it),
into one ``pandas.DataFrame``: one row per record, the flattened ``case.*`` / ``metrics.*`` / ``env.*`` columns of
:func:`sslbench.records.to_dataframe`, plus ``source`` (the file), ``source_type`` and the derived columns of
:data:`DERIVED_COLUMNS` (``label``, ``regularizer``, ``dim``, ``time_s``, ``memory_bytes``, ...).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from sslbench.analysis.common import column
from sslbench.records import (
    clamp_numbers,
    columnar,
    read_asv_results,
    read_pytest_benchmark,
    read_records,
    to_dataframe,
)
from sslbench.records.files import is_regular, open_readable
from sslbench.records.store import parse_json_line

#: record kinds whose rows are one regularizer step at one shape (time and memory against D, N, V)
SCALING_KINDS = ("regularizer_bench", "side_by_side", "pytest_benchmark")

#: the axes of the scaling analysis and their names
X_COLUMNS = {"dim": "D (embedding size)", "batch": "N (samples per view)", "views": "V (views)"}
#: the figures of the scaling analysis and their names
Y_COLUMNS = {
    "time_s": "time per forward+backward (s)",
    "memory_bytes": "memory of the step (bytes, peak above the inputs)",
    "peak_bytes": "peak memory (bytes, inputs and runtime included)",
}

#: columns added by :func:`load_results` on top of the flattened record
DERIVED_COLUMNS = ("source", "source_type", "label", "regularizer", "algorithm", "impl", "hparams", "dim", "batch",
                   "views", "device", "device_name", "threads", "dtype", "commit", "time_s", "memory_bytes",
                   "memory_metric",
                   "peak_bytes")

# the growth of memory during the step (the step's own working memory), best first; then the peak in total
_MEMORY_METRICS = ("cuda_max_allocated_delta_bytes", "peak_rss_delta_bytes")
_PEAK_METRICS = ("cuda_max_allocated_bytes", "peak_rss_bytes", "peak_memory_bytes")
_BASE_COLUMNS = ("schema", "kind", "id", "created", "status", "message")
#: the flattened columns :func:`_derive` reads: always part of a projection (``load_results(columns=...)``)
DERIVE_INPUTS = ("case.contender", "case.regularizer", "case.algorithm", "case.hparams", "case.benchmark",
                 "case.name", "case.dim", "case.batch", "case.views", "case.device", "case.dtype", "case.commit",
                 "env.device_name", "env.cpu_model", "env.machine", "env.threads", "env.git_commit",
                 "metrics.time_median_s", "metrics.value") + tuple(
                     f"metrics.{m}" for m in _MEMORY_METRICS + _PEAK_METRICS)

#: the flattened columns the torch-free analysis reads (``sslbench analyze``'s tables, ``sslbench report``'s
#: claims, the dashboard's views), besides the base, derived and :data:`DERIVE_INPUTS` columns: the projection
#: for ``load_results(root, columns=ANALYSIS_COLUMNS)``. Every ``case.`` and ``metrics.`` column (the grouping
#: keys, the variants, the figures) and the few ``env.`` ones named; the rest of ``env`` (library versions, CPU
#: flags, ...: about a third of a record's columns) is left in the store. A consumer that needs another column
#: adds it here (tests/test_columnar.py checks that the analysis gives the same tables through it).
ANALYSIS_COLUMNS = ("case.", "metrics.", "regularizer_source.", "env.device_name", "env.cpu_model", "env.machine",
                    "env.threads", "env.git_commit", "env.asv_env", "env.dataset", "env.fraction", "env.backbone",
                    "env.epochs", "env.device")

HOW_TO_PRODUCE_RESULTS = """\
No results found in {root}. Produce some, then reload:

    sslbench bench --regularizers barlow_twins vicreg --algorithms cross_correlation gram \\
        --dims 128 512 2048 --batches 256              # micro-benchmarks -> results/runs/bench.jsonl
    sslbench sweep --kind bench --regularizers barlow_twins vicreg --dims 64 256 1024 4096   # -> results/sweeps/
    sslbench sweep --kind train --regularizers barlow_twins vicreg --views 2 4 --epochs 2     # -> results/sweeps/
    python benchmarks/side_by_side.py                  # ours vs the official formulations -> results/side_by_side/
    sslbench train --regularizer barlow_twins          # a training run -> results/train.jsonl, results/runs/
    pytest tests/benchmarks --benchmark-enable --benchmark-autosave   # -> results/pytest-benchmark/
    asv run --python=same --quick                      # asv across commits -> .asv/results/

or point at another folder: `sslbench analyze --results DIR`, `sslbench dashboard --results DIR`."""


def _first_object(path: Path) -> dict | None:
    """The first line of a JSON-lines file that parses as a JSON object (None if there is none)."""
    try:
        with open_readable(path) as f:
            for raw in f:
                text = raw.strip()
                if not text:
                    continue
                try:
                    obj = json.loads(text.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
                return obj if isinstance(obj, dict) else None
    except OSError:
        return None
    return None


def _is_run_log(path: Path) -> bool:
    """Whether a JSON-lines file is a training run's per-step log (lines with ``event``, no ``kind``)."""
    first = _first_object(path)
    return first is not None and "event" in first and "kind" not in first


def _is_asv_results_dir(path: Path) -> bool:
    """asv's results directory: ``benchmarks.json`` and one folder per machine holding ``machine.json``."""
    if not (path / "benchmarks.json").is_file():
        return False
    return any(p.is_dir() and (p / "machine.json").is_file() for p in path.iterdir())


def _walk(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(JSON-lines files, other JSON files, asv results dirs) under ``root``, sorted; hidden folders skipped
    except ``.asv``; files inside asv results dirs are not listed as JSON files."""
    jsonl, js, asv = [], [], []
    if not root.is_dir():
        return jsonl, js, asv
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if _is_asv_results_dir(here):
            asv.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") or d == ".asv")
        for name in sorted(filenames):
            if not name.endswith((".jsonl", ".json")):
                continue
            if not is_regular(here / name):  # a FIFO planted there would block the reader: never opened
                warnings.warn(f"{here / name}: not a regular file (a FIFO, a device, a socket or a broken link); "
                              "skipped", RuntimeWarning, stacklevel=2)
                continue
            (jsonl if name.endswith(".jsonl") else js).append(here / name)
    return sorted(jsonl), sorted(js), sorted(asv)


def _default_asv_dirs(root: Path) -> list[Path]:
    candidate = root.resolve().parent / ".asv" / "results"
    return [candidate] if candidate.is_dir() else []


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def results_stamp(root: str | os.PathLike = "results", asv: Iterable[str | os.PathLike] | None = None) -> tuple:
    """A fingerprint of every file :func:`load_results` and :func:`load_run_logs` would read: ``(path, size,
    modification time)`` triples, sorted. The dashboard keys its cache on it, so new or changed files are
    picked up and unchanged ones are not read again."""
    root = Path(root)
    dirs = [root] + [Path(p) for p in (asv if asv is not None else _default_asv_dirs(root))]
    out = []
    for d in dirs:
        if d.is_file():
            files = [d]
        elif d.is_dir():
            files = [Path(dp) / f for dp, _, fs in os.walk(d) for f in fs if f.endswith((".json", ".jsonl"))]
        else:
            files = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def load_results(root: str | os.PathLike = "results", *, asv: Iterable[str | os.PathLike] | None = None,
                 pytest_benchmark: bool = True, columns: Iterable[str] | None = None,
                 unless_numbers: Iterable[str] = ()) -> pd.DataFrame:
    """Every record under ``root`` as one tidy DataFrame (one row per record).

    Reads, recursively: JSON-lines record stores (``*.jsonl``; training runs' per-step logs are recognised and
    left to :func:`load_run_logs`; corrupt lines are skipped with a ``RuntimeWarning``), pytest-benchmark JSON
    files (``*.json`` with a ``benchmarks`` list) when ``pytest_benchmark``, and asv results directories found
    under ``root``. ``asv`` lists further asv results directories; by default ``.asv/results`` beside ``root``
    (the repository's, for ``root="results"``) when it exists. A missing ``root`` gives an empty frame (with
    the standard columns), not an error.

    Columns: ``kind, id, created (UTC datetime), status, message, schema``, ``case.*``, ``metrics.*``,
    ``env.*`` (:func:`sslbench.records.to_dataframe`), and :data:`DERIVED_COLUMNS`: ``source`` (the file, relative
    to ``root`` when inside it), ``source_type`` (``jsonl``, ``pytest_benchmark``, ``asv``), ``label`` (the
    series name: regularizer[algorithm], or the side-by-side contender), ``regularizer``, ``algorithm``,
    ``impl`` (``official`` for the reference formulations, else ``sslbench``), ``hparams``, ``dim``, ``batch``,
    ``views``, ``device``, ``device_name`` (the GPU or CPU model), ``threads`` (torch CPU threads), ``dtype``,
    ``commit``, ``time_s`` (median),
    ``memory_bytes`` (peak growth during the step, ``memory_metric`` says which metric), ``peak_bytes``.

    ``columns`` reads only those flattened columns (names such as ``metrics.knn_top1``, or a section's prefix
    such as ``"metrics."``) besides the base and derived ones: a table that needs ten columns does not hold the
    store's hundred. Stores are read through the columnar path (:mod:`sslbench.records.columnar`, pyarrow) when
    it is installed, through a snapshot per store in the cache folder (``~/.cache/sslbench/snapshots``, or
    ``$SSLBENCH_CACHE_DIR``; ``off`` for none) so that a later load parses only the lines appended since; the
    frame is the same either way.

    ``unless_numbers`` (prefixes such as ``"metrics."``) leaves out the columns of those sections that hold numbers
    only in every file read, unless ``columns`` names them: a consumer that reads a few of a section's figures but
    screens all of them for non-numbers (``sslbench report``, :data:`~sslbench.analysis.report.REPORT_COLUMNS`)
    keeps the columns its screening could find something in, and those it reads.
    """
    root = Path(root)
    jsonl, js, asv_found = _walk(root)
    asv_dirs = list(asv_found)
    for extra in (asv if asv is not None else _default_asv_dirs(root)):
        extra = Path(extra)
        if extra.resolve() not in {a.resolve() for a in asv_dirs}:
            asv_dirs.append(extra)
    keep = columnar.wanted(None if columns is None else [*columns, *DERIVE_INPUTS])
    fast = columnar.available()
    frames = []  # (frame or columnar.Snapshot, the constant columns set on it)
    for path in jsonl:
        if _is_run_log(path):
            continue
        if fast:  # a store with nothing new comes as its snapshot's Arrow columns: converted all at once, below
            part = columnar.read_frame_cached(path, columns=None if columns is None else [*columns, *DERIVE_INPUTS],
                                              arrow=True)
            if len(part):
                frames.append((part, {"source": _rel(path, root), "source_type": "jsonl"}))
            continue
        recs = read_records(path)
        if recs:
            frames.append((_projected(_frame(recs, source=_rel(path, root), source_type="jsonl"), keep), {}))
    if pytest_benchmark:
        for path in js:
            first = _peek_json(path)
            if first is None:
                continue
            recs = read_pytest_benchmark(path)
            if recs:
                frames.append((_projected(_frame(recs, source=_rel(path, root), source_type="pytest_benchmark"),
                                          keep), {}))
    for d in asv_dirs:
        if not Path(d).is_dir():
            warnings.warn(f"{d}: no such asv results directory; skipped", RuntimeWarning, stacklevel=2)
            continue
        recs = read_asv_results(d)
        if recs:
            frames.append((_projected(_frame(recs, source=_rel(Path(d), root), source_type="asv"), keep), {}))
    frames = [(f, c) for f, c in frames if len(f) and (isinstance(f, columnar.Snapshot) or not f.empty)]
    if unless_numbers:
        frames = _without_numbers(frames, tuple(unless_numbers), set(columns or ()) | set(DERIVE_INPUTS))
    if not frames:
        return _derive(pd.DataFrame())
    if fast:
        df = columnar.frames_of_snapshots(frames)
        del frames  # the snapshots' Arrow tables: their memory goes back to the pool, and the pool's to the system
        columnar.release_memory()
        df = _derive(df)
        columnar.release_memory()  # and the derivations' temporaries
        return df
    return _derive(pd.concat([f for f, _ in frames], ignore_index=True, sort=False))


def _without_numbers(frames: list, prefixes: tuple, named: set) -> list:
    """``frames`` (parts of :func:`load_results`) without the columns starting with ``prefixes``, not in ``named``,
    that hold numbers only in every part (:func:`columnar.numbers_only`)."""
    names = {n for part, _ in frames
             for n in (part.names if isinstance(part, columnar.Snapshot) and part.frame is None else
                       (part.frame if isinstance(part, columnar.Snapshot) else part).columns)
             if isinstance(n, str) and n.startswith(prefixes) and n not in named}
    gone = {n for n in names if all(columnar.numbers_only(part, n) for part, _ in frames)}
    return [(columnar.without(part, gone), c) for part, c in frames] if gone else frames


def _peek_json(path: Path) -> dict | None:
    """The parsed file when it is pytest-benchmark output (a dict with a ``benchmarks`` list), else None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"{path}: not valid JSON ({exc}); skipped", RuntimeWarning, stacklevel=3)
        return None
    if isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
        return data
    return None


def _frame(records: list[dict], *, source: str, source_type: str) -> pd.DataFrame:
    df = to_dataframe(records)
    df["source"] = source
    df["source_type"] = source_type
    return df


def _projected(df: pd.DataFrame, keep) -> pd.DataFrame:
    return df[[c for c in df.columns if keep(c) or c in ("source", "source_type")]]


def _first_of(df: pd.DataFrame, names: Sequence[str]) -> tuple[pd.Series, pd.Series]:
    """Row-wise the first non-null of ``names`` (numeric), and which column it came from."""
    value = pd.Series(np.nan, index=df.index, dtype=float)
    which = pd.Series(None, index=df.index, dtype=object)
    for name in names:
        if name not in df.columns:
            continue
        v = pd.to_numeric(df[name], errors="coerce")
        take = value.isna() & v.notna()
        value[take] = v[take]
        which[take] = name.removeprefix("metrics.")
    return value, which


def _parse_contender(name: Any) -> tuple[Any, Any, str]:
    """side_by_side contender → (regularizer, algorithm, impl): "official_vicreg" → ("vicreg", None, "official"),
    "barlow_twins[cross_correlation]" → ("barlow_twins", "cross_correlation", "sslbench")."""
    if not isinstance(name, str):
        return None, None, "sslbench"
    impl = "sslbench"
    if name.startswith("official_"):
        name, impl = name[len("official_"):], "official"
    algo = None
    if name.endswith("]") and "[" in name:
        name, algo = name[:-1].split("[", 1)
    return name, algo, impl


def _hparams_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value or value in ("{}", "null"):
        return None
    try:
        hp = json.loads(value)
    except json.JSONDecodeError:
        return value
    if not isinstance(hp, dict) or not hp:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(hp.items()))


def _memo(fn, values: list, when) -> list:
    """``[fn(v) for v in values]`` (None where ``when(v)`` is false), each distinct hashable value computed once."""
    seen: dict = {}
    out = []
    for v in values:
        if when is not None and not when(v):
            out.append(None)
            continue
        try:
            if v not in seen:
                seen[v] = fn(v)
            out.append(seen[v])
        except TypeError:  # not hashable
            out.append(fn(v))
    return out


def _label(k, c, r, a, bench, name, hp):
    """A row's series name: the side-by-side contender, else regularizer[algorithm], else the asv benchmark or the
    case's name (or the kind); the hyper-parameters after it."""
    if isinstance(c, str):
        label = c
    elif isinstance(r, str):
        label = f"{r}[{a}]" if isinstance(a, str) and a else r
    else:
        label = bench if k == "asv" else (name or k)
    return f"{label} {hp}" if hp else label


#: the columns a row's series name and setting are derived from (:func:`_settings`)
_SETTING = ("kind", "case.contender", "case.regularizer", "case.algorithm", "case.hparams", "case.benchmark",
            "case.name")


def _codes(s: pd.Series) -> np.ndarray:
    """Integer codes of a column: equal codes only for values that are the same (for text, the same string; for
    other values, the same type and value: 1, 1.0 and True apart, None and NaN apart; a value that cannot be a
    key has a code of its own)."""
    if isinstance(s.dtype, pd.StringDtype) or s.dtype.kind in "iufb":  # str or NaN; numbers: no 1/True confusion
        return pd.factorize(s)[0]
    keys: dict = {}
    out = np.empty(len(s), dtype=np.int64)
    for i, v in enumerate(s.tolist()):
        try:
            out[i] = keys.setdefault((type(v), v), len(keys))
        except TypeError:  # not hashable
            out[i] = keys[object()] = len(keys)
    return out


def _per_setting(df: pd.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(each row's setting, the first row of each setting): rows are of one setting where the columns ``names``
    hold the same values (:func:`_codes`); an elementwise derivation computed on the few first rows and taken
    by setting is the derivation of every row."""
    key = np.zeros(len(df), dtype=np.int64)
    for name in names:
        if name in df.columns:
            codes = _codes(df[name])
            codes = codes - codes.min() if len(codes) else codes
            key = pd.factorize(key * (int(codes.max(initial=0)) + 1) + codes)[0]
    first = np.unique(key, return_index=True)[1] if len(key) else np.zeros(0, dtype=np.int64)
    few = pd.DataFrame({name: df[name].iloc[first].reset_index(drop=True) for name in names if name in df.columns},
                       index=pd.RangeIndex(len(first)))
    return key, few


def _taken(values: pd.Series, key: np.ndarray, index) -> pd.Series:
    """``values`` (one per setting) for every row, of object dtype (the same objects, not copies)."""
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist() if values.dtype != object else list(values.to_numpy())):
        arr[i] = v
    return pd.Series(arr[key], index=index, dtype=object)


def _settings(df: pd.DataFrame) -> dict:
    """The series name and setting of each row (``label``, ``regularizer``, ``algorithm``, ``impl``,
    ``hparams``), row by row: the definition, which :func:`_derive` runs on one row per setting."""
    n = len(df)
    kind = column(df, "kind")
    contender = column(df, "case.contender")
    # one pass over plain lists (never .iloc in a loop), each distinct text parsed once
    kinds, contenders = kind.tolist(), contender.tolist()
    parsed = _memo(_parse_contender, contenders, lambda c: isinstance(c, str))
    reg = column(df, "case.regularizer").astype(object).copy()
    algo = column(df, "case.algorithm").astype(object).copy()
    impl = pd.Series(["sslbench"] * n, index=df.index, dtype=object)
    at = [i for i, c in enumerate(contenders) if isinstance(c, str)]
    if at:
        rows = df.index[at]
        reg.loc[rows] = pd.Series([parsed[i][0] for i in at], index=rows, dtype=object)
        impl.loc[rows] = pd.Series([parsed[i][2] for i in at], index=rows, dtype=object)
        with_algo = [i for i in at if parsed[i][1] is not None]
        if with_algo:
            algo.loc[df.index[with_algo]] = pd.Series([parsed[i][1] for i in with_algo], index=df.index[with_algo],
                                                      dtype=object)
    reg = reg.where(reg.notna(), None)
    algo = algo.where(algo.notna(), None)
    hp = _memo(_hparams_text, column(df, "case.hparams").tolist(), None)
    hp = [h if k in SCALING_KINDS else None for k, h in zip(kinds, hp)]
    regs, algos = reg.tolist(), algo.tolist()
    benches, names = column(df, "case.benchmark").tolist(), column(df, "case.name").tolist()
    labels, memo = [], {}
    for row in zip(kinds, contenders, regs, algos, benches, names, hp):
        # a few distinct settings among many rows: each labelled once (the types of the two values that can become
        # the label itself are part of the key: 1, 1.0 and True are equal keys but not the same label)
        key = (*row, type(row[4]), type(row[5]))
        try:
            label = memo[key]
        except KeyError:
            label = memo[key] = _label(*row)
        except TypeError:  # a value that cannot be a key
            label = _label(*row)
        labels.append(label)
    return {"label": pd.Series(labels, index=df.index, dtype=object), "regularizer": reg, "algorithm": algo,
            "impl": impl, "hparams": pd.Series(hp, index=df.index, dtype=object)}


def _device_name(df: pd.DataFrame) -> pd.Series:
    """The GPU or CPU model: ``env.device_name``, else the CPU model, the machine, ``case.device`` (row by row)."""
    device_name = column(df, "env.device_name").astype(object).copy()
    for fallback in ("env.cpu_model", "env.machine", "case.device"):
        device_name = device_name.where(device_name.notna(), column(df, fallback))
    return device_name


def _commit(df: pd.DataFrame) -> pd.Series:
    commit = column(df, "case.commit").astype(object)
    return commit.where(commit.notna(), column(df, "env.git_commit"))


def _created(created: pd.Series) -> pd.Series:
    """``pd.to_datetime`` of the ``created`` column, each distinct text parsed once (a text column)."""
    if not isinstance(created.dtype, pd.StringDtype) or not len(created):
        return pd.to_datetime(created, utc=True, errors="coerce", format="ISO8601")
    codes, uniques = pd.factorize(created)
    parsed = pd.to_datetime(pd.Series(uniques, dtype=created.dtype), utc=True, errors="coerce", format="ISO8601")
    values = parsed.array.take(codes, allow_fill=True)  # -1 (no text): NaT
    return pd.Series(values, index=created.index, name=created.name)


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    """Add :data:`DERIVED_COLUMNS` (and the base columns, for an empty frame) to ``df``, a frame of
    :func:`load_results`' own (no copy: at 10^6 records a copy is a gigabyte). The derivations that go row by row
    (:func:`_settings`, :func:`_device_name`, :func:`_commit`) run on one row per distinct setting and are taken
    for every row of it."""
    for name in _BASE_COLUMNS:
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    for name in ("source", "source_type"):
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    n = len(df)
    df["created"] = _created(df["created"])
    kind = column(df, "kind")
    key, few = _per_setting(df, _SETTING)
    for name, values in _settings(few).items():
        df[name] = _taken(values, key, df.index)
    for name in ("dim", "batch", "views"):
        df[name] = pd.to_numeric(column(df, f"case.{name}"), errors="coerce")
    df["device"] = column(df, "case.device")
    key, few = _per_setting(df, ("env.device_name", "env.cpu_model", "env.machine", "case.device"))
    df["device_name"] = _taken(_device_name(few), key, df.index)
    df["threads"] = pd.to_numeric(column(df, "env.threads"), errors="coerce")
    df["dtype"] = column(df, "case.dtype")
    key, few = _per_setting(df, ("case.commit", "env.git_commit"))
    df["commit"] = _taken(_commit(few), key, df.index)
    df["time_s"] = pd.to_numeric(column(df, "metrics.time_median_s"), errors="coerce")
    mem, which = _first_of(df, [f"metrics.{m}" for m in _MEMORY_METRICS])
    df["memory_bytes"], df["memory_metric"] = mem, which
    df["peak_bytes"] = _first_of(df, [f"metrics.{m}" for m in _PEAK_METRICS])[0]
    if n and "metrics.value" in df.columns:  # asv: a time_ benchmark is a time, a peakmem_ one a memory figure
        bench = column(df, "case.benchmark").astype(str)
        value = pd.to_numeric(df["metrics.value"], errors="coerce")
        is_asv = kind == "asv"
        t = is_asv & bench.str.contains(r"(?:^|\.)time_", regex=True)
        m = is_asv & bench.str.contains(r"(?:^|\.)peakmem_", regex=True)
        df.loc[t, "time_s"] = value[t]
        df.loc[m, "peak_bytes"] = value[m]
    return df


def find_run_logs(root: str | os.PathLike = "results") -> dict[str, Path]:
    """``{run id: path}`` of the training runs' per-step logs under ``root`` (``<run id>.jsonl`` files whose
    lines are events, as ``sslbench train`` writes them)."""
    jsonl, _, _ = _walk(Path(root))
    out = {}
    for path in jsonl:
        if _is_run_log(path):
            first = _first_object(path) or {}
            out[str(first.get("run_id") or path.stem)] = path
    return out


def load_run_logs(root: str | os.PathLike = "results", run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """The per-step logs of training runs under ``root`` as one DataFrame: one row per event line, with
    ``run_id``, ``source``, ``event`` (start, step, eval, end, ...), ``step``, ``elapsed_s`` (wall time since the
    run's first event), the logged figures (``loss`` and its terms, ``lr``, ``images_per_s``, ``memory_bytes``,
    ``knn_top1`` at evaluations) and the run's case (``case.regularizer``, ``case.dim``, ...). Lines that are
    not JSON objects are skipped; numbers a float cannot hold become null, with a warning naming the file and
    line. ``run_ids`` keeps only those runs."""
    wanted = set(run_ids) if run_ids is not None else None
    rows = []
    for run_id, path in find_run_logs(root).items():
        if wanted is None or run_id in wanted:
            rows += _log_rows(run_id, path)
    df = pd.DataFrame(rows)
    for name in ("run_id", "event", "step", "elapsed_s"):
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    return df


def _log_events(path: Path) -> Iterable[dict]:
    """The JSON objects of one per-step log, numbers out of a float's range set to null (warned about)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return
    for lineno, raw in enumerate(lines, start=1):
        try:
            obj = parse_json_line(raw)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        obj, bad = clamp_numbers(obj)
        if bad:
            warnings.warn(f"{path}: number(s) out of range set to null ({', '.join(bad[:5])}) (line {lineno})",
                          RuntimeWarning, stacklevel=4)
        yield obj


def _log_rows(run_id: str, path: Path) -> list[dict]:
    """One row per event of the run's log: its figures flattened, ``elapsed_s`` and the run's ``case.*``."""
    case: dict = {}
    t0 = None
    rows = []
    for obj in _log_events(path):
        if isinstance(obj.get("case"), dict):
            case = obj["case"]
        t = obj.get("time")
        if isinstance(t, (int, float)) and t0 is None:
            t0 = t
        row = {"run_id": run_id, "source": str(path)}
        for k, v in obj.items():
            if k == "metrics" and isinstance(v, dict):
                row.update({f"metrics.{mk}": mv for mk, mv in v.items() if not isinstance(mv, (dict, list))})
            elif k != "case" and not isinstance(v, (dict, list)):
                row[k] = v
        row["elapsed_s"] = t - t0 if isinstance(t, (int, float)) and t0 is not None else None
        row.update({f"case.{k}": (v if not isinstance(v, (dict, list)) else json.dumps(v)) for k, v in case.items()})
        rows.append(row)
    return rows
