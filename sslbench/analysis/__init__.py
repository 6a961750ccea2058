"""Analysis of the results in pandas: one tidy table of every record, scaling exponents, crossovers, accuracy and
regression tables.

* :func:`load_results` reads every JSON-lines record store under a folder (``results/`` by default, recursively:
  ``sslbench bench``, ``sslbench sweep``, ``sslbench train``, ``benchmarks/side_by_side.py``), the
  pytest-benchmark JSON files found there and asv results directories (found there, and ``.asv/results`` beside
  it), into one ``pandas.DataFrame``: one row per record, the flattened ``case.*`` / ``metrics.*`` / ``env.*``
  columns of :func:`sslbench.records.to_dataframe`, plus ``source`` (the file), ``source_type`` and the derived
  columns of :data:`DERIVED_COLUMNS` (``label``, ``regularizer``, ``dim``, ``time_s``, ``memory_bytes``, ...)
  that the functions below and the dashboard use. The per-step logs of training runs (``sslbench train``'s
  ``log_dir/<run id>.jsonl``) are not records; :func:`load_run_logs` reads them.
* :func:`fit_scaling`: least squares of ``log y = log c + alpha log x`` per group (ok points only; at least
  ``min_points`` distinct x), giving the exponent alpha, the prefactor c, R² and the number of points.
* :func:`crossover`: the x where two curves cross (log-log interpolation between the bracketing points), and
  which of them is lower on each side; :func:`crossover_table` does every pair of the same regularizer.
* :func:`accuracy_table`, :func:`regressions` (asv, each benchmark against the previous commit) and
  :func:`summary` (all tables, as ``sslbench analyze`` prints them).

This module imports pandas and numpy but neither torch nor any sslbench module that does, so the dashboard
runs without torch work.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from sslbench.records.constants import DEFAULT_PREDICTOR_HIDDEN, VARIANCE_ADDON_DEFAULTS
from sslbench.records import read_asv_results, read_pytest_benchmark, read_records, to_dataframe

__all__ = [
    "DERIVED_COLUMNS",
    "SCALING_KINDS",
    "Y_COLUMNS",
    "X_COLUMNS",
    "HOW_TO_PRODUCE_RESULTS",
    "load_results",
    "find_run_logs",
    "load_run_logs",
    "results_stamp",
    "fit_power_law",
    "fit_scaling",
    "scaling_table",
    "Crossover",
    "crossover",
    "crossovers",
    "crossover_table",
    "accuracy_table",
    "regressions",
    "summary",
    "format_table",
]

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


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------
def _first_object(path: Path) -> dict | None:
    """The first line of a JSON-lines file that parses as a JSON object (None if there is none)."""
    try:
        with open(path, "rb") as f:
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
            if name.endswith(".jsonl"):
                jsonl.append(here / name)
            elif name.endswith(".json"):
                js.append(here / name)
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
                 pytest_benchmark: bool = True) -> pd.DataFrame:
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
    """
    root = Path(root)
    jsonl, js, asv_found = _walk(root)
    asv_dirs = list(asv_found)
    for extra in (asv if asv is not None else _default_asv_dirs(root)):
        extra = Path(extra)
        if extra.resolve() not in {a.resolve() for a in asv_dirs}:
            asv_dirs.append(extra)
    frames = []
    for path in jsonl:
        if _is_run_log(path):
            continue
        recs = read_records(path)
        if recs:
            frames.append(_frame(recs, source=_rel(path, root), source_type="jsonl"))
    if pytest_benchmark:
        for path in js:
            first = _peek_json(path)
            if first is None:
                continue
            recs = read_pytest_benchmark(path)
            if recs:
                frames.append(_frame(recs, source=_rel(path, root), source_type="pytest_benchmark"))
    for d in asv_dirs:
        if not Path(d).is_dir():
            warnings.warn(f"{d}: no such asv results directory; skipped", RuntimeWarning, stacklevel=2)
            continue
        recs = read_asv_results(d)
        if recs:
            frames.append(_frame(recs, source=_rel(Path(d), root), source_type="asv"))
    frames = [f for f in frames if not f.empty]
    df = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
    return _derive(df)


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


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


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


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    """Add :data:`DERIVED_COLUMNS` (and the base columns, for an empty frame)."""
    df = df.copy()
    for name in _BASE_COLUMNS:
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    for name in ("source", "source_type"):
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    n = len(df)
    df["created"] = pd.to_datetime(df["created"], utc=True, errors="coerce", format="ISO8601")
    kind = _col(df, "kind")
    contender = _col(df, "case.contender")
    parsed = [_parse_contender(c) for c in contender]
    reg = _col(df, "case.regularizer").astype(object).copy()
    algo = _col(df, "case.algorithm").astype(object).copy()
    impl = pd.Series(["sslbench"] * n, index=df.index, dtype=object)
    for i, (idx, (r, a, im)) in enumerate(zip(df.index, parsed)):
        if isinstance(contender.iloc[i], str):
            reg.at[idx], impl.at[idx] = r, im
            if a is not None:
                algo.at[idx] = a
    reg = reg.where(reg.notna(), None)
    algo = algo.where(algo.notna(), None)
    hp = [_hparams_text(v) if k in SCALING_KINDS else None for k, v in zip(kind, _col(df, "case.hparams"))]
    labels = []
    for i in range(n):
        k, c, r, a = kind.iloc[i], contender.iloc[i], reg.iloc[i], algo.iloc[i]
        if isinstance(c, str):
            label = c
        elif isinstance(r, str):
            label = f"{r}[{a}]" if isinstance(a, str) and a else r
        else:
            label = _col(df, "case.benchmark").iloc[i] if k == "asv" else (_col(df, "case.name").iloc[i] or k)
        if hp[i]:
            label = f"{label} {hp[i]}"
        labels.append(label)
    df["label"] = pd.Series(labels, index=df.index, dtype=object)
    df["regularizer"] = reg
    df["algorithm"] = algo
    df["impl"] = impl
    df["hparams"] = pd.Series(hp, index=df.index, dtype=object)
    for name in ("dim", "batch", "views"):
        df[name] = pd.to_numeric(_col(df, f"case.{name}"), errors="coerce")
    df["device"] = _col(df, "case.device")
    device_name = _col(df, "env.device_name").astype(object).copy()
    for fallback in ("env.cpu_model", "env.machine", "case.device"):
        device_name = device_name.where(device_name.notna(), _col(df, fallback))
    df["device_name"] = device_name
    df["threads"] = pd.to_numeric(_col(df, "env.threads"), errors="coerce")
    df["dtype"] = _col(df, "case.dtype")
    commit = _col(df, "case.commit").astype(object)
    df["commit"] = commit.where(commit.notna(), _col(df, "env.git_commit"))
    df["time_s"] = pd.to_numeric(_col(df, "metrics.time_median_s"), errors="coerce")
    mem, which = _first_of(df, [f"metrics.{m}" for m in _MEMORY_METRICS])
    df["memory_bytes"], df["memory_metric"] = mem, which
    df["peak_bytes"] = _first_of(df, [f"metrics.{m}" for m in _PEAK_METRICS])[0]
    if n and "metrics.value" in df.columns:  # asv: a time_ benchmark is a time, a peakmem_ one a memory figure
        bench = _col(df, "case.benchmark").astype(str)
        value = pd.to_numeric(df["metrics.value"], errors="coerce")
        is_asv = kind == "asv"
        t = is_asv & bench.str.contains(r"(?:^|\.)time_", regex=True)
        m = is_asv & bench.str.contains(r"(?:^|\.)peakmem_", regex=True)
        df.loc[t, "time_s"] = value[t]
        df.loc[m, "peak_bytes"] = value[m]
    return df


# --------------------------------------------------------------------------------------------------------------
# Training runs' per-step logs
# --------------------------------------------------------------------------------------------------------------
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
    not JSON objects are skipped. ``run_ids`` keeps only those runs."""
    logs = find_run_logs(root)
    wanted = set(run_ids) if run_ids is not None else None
    rows = []
    for run_id, path in logs.items():
        if wanted is not None and run_id not in wanted:
            continue
        case: dict = {}
        t0 = None
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        for raw in lines:
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if not isinstance(obj, dict):
                continue
            if isinstance(obj.get("case"), dict):
                case = obj["case"]
            t = obj.get("time")
            if isinstance(t, (int, float)) and t0 is None:
                t0 = t
            row = {"run_id": run_id, "source": str(path)}
            for k, v in obj.items():
                if k in ("case",):
                    continue
                if k == "metrics" and isinstance(v, dict):
                    row.update({f"metrics.{mk}": mv for mk, mv in v.items()
                                if not isinstance(mv, (dict, list))})
                elif not isinstance(v, (dict, list)):
                    row[k] = v
            row["elapsed_s"] = t - t0 if isinstance(t, (int, float)) and t0 is not None else None
            row.update({f"case.{k}": (v if not isinstance(v, (dict, list)) else json.dumps(v))
                        for k, v in case.items()})
            rows.append(row)
    df = pd.DataFrame(rows)
    for name in ("run_id", "event", "step", "elapsed_s"):
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    return df


# --------------------------------------------------------------------------------------------------------------
# Scaling exponents
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerLaw:
    """``y = prefactor * x ** exponent``, fitted by least squares on log-log axes."""

    exponent: float
    prefactor: float
    r2: float
    n: int

    def __call__(self, x):
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent


def fit_power_law(x: Sequence[float], y: Sequence[float], min_points: int = 3) -> PowerLaw:
    """Least squares of ``log y = log c + alpha log x`` over the points with finite positive x and y.

    Needs ``min_points`` distinct x values (at least 2); with fewer, exponent, prefactor and R² are NaN (``n``
    says how many points there were). R² is that of the log-log fit.
    """
    if min_points < 2:
        raise ValueError(f"min_points={min_points} must be at least 2 (a line needs two distinct x)")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if np.unique(x).size < min_points:
        return PowerLaw(math.nan, math.nan, math.nan, n)
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    ss_res = float(resid @ resid)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else math.nan)
    return PowerLaw(float(slope), float(math.exp(intercept)), float(r2), n)


def _ok_points(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    for name in (x, y):
        if name not in df.columns:
            raise KeyError(f"column {name!r} is not in the frame; columns: {', '.join(map(str, df.columns))}")
    out = df[df["status"] == "ok"] if "status" in df.columns else df
    xs = pd.to_numeric(out[x], errors="coerce")
    ys = pd.to_numeric(out[y], errors="coerce")
    return out[(xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)]


def fit_scaling(df: pd.DataFrame, x: str = "dim", y: str = "time_s",
                by: Sequence[str] = ("kind", "device_name", "label", "batch", "views"),
                min_points: int = 3, x_min: float | None = None, x_max: float | None = None) -> pd.DataFrame:
    """The power law ``y ∝ x^alpha`` of each group of ``by``, fitted on log-log axes.

    Uses the rows with ``status == "ok"`` and finite positive ``x`` and ``y`` (and ``x_min <= x <= x_max`` when
    given, to fit the asymptotic regime only). A group needs ``min_points`` distinct x values; with fewer its
    ``exponent``, ``prefactor`` and ``r2`` are NaN. Returns one row per group: the ``by`` columns, ``x``,
    ``y``, ``exponent``, ``prefactor``, ``r2``, ``n`` (points used), ``x_min``, ``x_max``. Groups whose
    rows have no ok point are left out.
    """
    by = list(by)
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise KeyError(f"group column(s) {missing} not in the frame; columns: {', '.join(map(str, df.columns))}")
    pts = _ok_points(df, x, y)
    if x_min is not None:
        pts = pts[pd.to_numeric(pts[x]) >= x_min]
    if x_max is not None:
        pts = pts[pd.to_numeric(pts[x]) <= x_max]
    cols = by + ["x", "y", "exponent", "prefactor", "r2", "n", "x_min", "x_max"]
    rows = []
    if pts.empty:
        return pd.DataFrame(columns=cols)
    for key, g in pts.groupby(by, dropna=False, sort=True) if by else [((), pts)]:
        key = key if isinstance(key, tuple) else (key,)
        xs = pd.to_numeric(g[x]).to_numpy(float)
        fit = fit_power_law(xs, pd.to_numeric(g[y]).to_numpy(float), min_points=min_points)
        rows.append((*key, x, y, fit.exponent, fit.prefactor, fit.r2, fit.n, xs.min(), xs.max()))
    return pd.DataFrame(rows, columns=cols)


_OTHER_AXES = {"dim": ("batch", "views"), "batch": ("dim", "views"), "views": ("dim", "batch")}


def scaling_table(df: pd.DataFrame, x: str = "dim", ys: Sequence[str] = ("time_s", "memory_bytes"),
                  kinds: Sequence[str] = SCALING_KINDS, min_points: int = 3,
                  x_min: float | None = None) -> pd.DataFrame:
    """The scaling exponents in ``x`` of each series (kind, device, threads, dtype, label and the two other axes
    fixed, so that timings of different setups are never mixed), one row per series with ``alpha_<y>`` and
    ``r2_<y>`` for each of ``ys``; series with fewer than ``min_points`` distinct x are left out. ``x_min`` fits
    the sizes from there up only (the asymptotic regime, without the fixed overheads of small sizes)."""
    if x not in _OTHER_AXES:
        raise ValueError(f"x={x!r}: choose one of {', '.join(_OTHER_AXES)}")
    sub = df[df["kind"].isin(kinds)] if "kind" in df.columns else df.iloc[0:0]
    by = ["kind", "device_name", "threads", "dtype", "label", *_OTHER_AXES[x]]
    out = None
    for y in ys:
        fits = fit_scaling(sub, x=x, y=y, by=by, min_points=min_points, x_min=x_min)
        fits = fits.rename(columns={"exponent": f"alpha_{y}", "r2": f"r2_{y}", "n": f"n_{y}",
                                    "x_min": f"{x}_min_{y}", "x_max": f"{x}_max_{y}"})
        fits = fits.drop(columns=["x", "y", "prefactor"])
        out = fits if out is None else out.merge(fits, on=by, how="outer")
    if out is None or out.empty:
        return pd.DataFrame(columns=by)
    alpha_cols = [f"alpha_{y}" for y in ys]
    out = out[out[alpha_cols].notna().any(axis=1)]
    n = out[[f"n_{y}" for y in ys]].max(axis=1)
    lo = out[[f"{x}_min_{y}" for y in ys]].min(axis=1)
    hi = out[[f"{x}_max_{y}" for y in ys]].max(axis=1)
    out = out[by + [c for y in ys for c in (f"alpha_{y}", f"r2_{y}")]].assign(
        n=n.astype("Int64"), **{f"{x}_range": [f"{_num(a)}-{_num(b)}" for a, b in zip(lo, hi)]})
    return out.sort_values(by, na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# Crossovers
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Crossover:
    """Where curves ``a`` and ``b`` cross: ``x`` (and the curves' common ``y`` there, log-log interpolated);
    ``lower_before`` is the curve with the lower y just below ``x``, ``lower_after`` the one just above
    (for time or memory: the faster / smaller one), i.e. ``lower_after`` overtakes ``lower_before`` at ``x``."""

    x: float
    y: float
    a: str
    b: str
    lower_before: str
    lower_after: str


def _select(df: pd.DataFrame, which: str | Mapping[str, Any], key: str) -> pd.DataFrame:
    if isinstance(which, Mapping):
        mask = pd.Series(True, index=df.index)
        for col, val in which.items():
            if col not in df.columns:
                raise KeyError(f"column {col!r} is not in the frame")
            mask &= df[col] == val
        return df[mask]
    if key not in df.columns:
        raise KeyError(f"column {key!r} is not in the frame; pass a dict of column filters instead")
    return df[df[key] == which]


def _curve(df: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """log x, log y of the median y at each x."""
    pts = _ok_points(df, x, y)
    if pts.empty:
        return np.array([]), np.array([])
    med = pts.assign(_x=pd.to_numeric(pts[x]), _y=pd.to_numeric(pts[y])).groupby("_x")["_y"].median()
    return np.log(med.index.to_numpy(float)), np.log(med.to_numpy(float))


def _name(which: str | Mapping[str, Any]) -> str:
    if isinstance(which, Mapping):
        return ",".join(f"{k}={v}" for k, v in which.items())
    return str(which)


def crossovers(df: pd.DataFrame, a: str | Mapping[str, Any], b: str | Mapping[str, Any], x: str = "dim",
               y: str = "time_s", key: str = "label") -> list[Crossover]:
    """Every crossing of curves ``a`` and ``b`` of ``y`` against ``x``, in increasing x.

    ``a`` and ``b`` are values of the column ``key`` (the series' labels by default) or dicts of column filters
    (``{"regularizer": "barlow_twins", "algorithm": "gram"}``); filter ``df`` to one device, batch, ... first.
    Each curve is the median ``y`` at each ``x`` over its ok rows; both are interpolated linearly on log-log
    axes onto the union of their x values within the range they share, and a crossing is a change of sign of
    ``log y_a - log y_b`` (a point where they are equal counts once, when the sign differs on its two sides).
    """
    lxa, lya = _curve(_select(df, a, key), x, y)
    lxb, lyb = _curve(_select(df, b, key), x, y)
    if lxa.size < 2 or lxb.size < 2:
        return []
    lo, hi = max(lxa[0], lxb[0]), min(lxa[-1], lxb[-1])
    if lo >= hi:
        return []
    grid = np.union1d(lxa, lxb)
    grid = grid[(grid >= lo - 1e-12) & (grid <= hi + 1e-12)]
    ya, yb = np.interp(grid, lxa, lya), np.interp(grid, lxb, lyb)
    d = ya - yb
    na, nb = _name(a), _name(b)
    out = []
    prev = None  # index of the last point with a non-zero difference
    for i in range(len(grid)):
        if d[i] == 0:
            continue
        if prev is not None and np.sign(d[i]) != np.sign(d[prev]):
            if i == prev + 1:
                t = d[prev] / (d[prev] - d[i])
                lx = grid[prev] + t * (grid[i] - grid[prev])
                ly = ya[prev] + t * (ya[i] - ya[prev])
            else:  # equal at the point(s) between: the first of them
                lx, ly = grid[prev + 1], ya[prev + 1]
            before, after = (na, nb) if d[prev] < 0 else (nb, na)
            out.append(Crossover(float(math.exp(lx)), float(math.exp(ly)), na, nb, before, after))
        prev = i
    return out


def crossover(df: pd.DataFrame, a: str | Mapping[str, Any], b: str | Mapping[str, Any], x: str = "dim",
              y: str = "time_s", key: str = "label") -> Crossover | None:
    """The first x where curves ``a`` and ``b`` cross (in either direction; see :func:`crossovers`), or
    ``None`` when one of them is lower (or equal) over the whole range they share, or they share none."""
    found = crossovers(df, a, b, x=x, y=y, key=key)
    return found[0] if found else None


def _lower_throughout(df: pd.DataFrame, a: str, b: str, x: str, y: str, key: str) -> tuple[str | None, str]:
    """Which of a and b is lower wherever both were measured (None if neither / no common x) and the x range."""
    lxa, lya = _curve(_select(df, a, key), x, y)
    lxb, lyb = _curve(_select(df, b, key), x, y)
    common = np.intersect1d(lxa, lxb)
    if common.size == 0:
        return None, ""
    da = dict(zip(lxa, lya))
    db = dict(zip(lxb, lyb))
    diff = np.array([da[c] - db[c] for c in common])
    span = f"{_num(math.exp(common[0]))}-{_num(math.exp(common[-1]))}"
    if (diff < 0).all():
        return a, span
    if (diff > 0).all():
        return b, span
    return None, span


def crossover_table(df: pd.DataFrame, x: str = "dim", y: str = "time_s", kinds: Sequence[str] = SCALING_KINDS,
                    pairs: Iterable[tuple[str, str]] | None = None, key: str = "label") -> pd.DataFrame:
    """Crossovers between every pair of series of the same regularizer (algorithms, official vs sslbench) in each
    setting (kind, device, threads, dtype and the other two axes fixed), or between the given ``pairs`` of labels.

    Columns: the setting, ``a``, ``b``, ``crossover`` (the x, NaN when none), ``lower_below`` and
    ``lower_above`` (the series lower on each side of the crossing), ``note`` (for no crossing: which one is
    lower throughout and over which x range)."""
    if x not in _OTHER_AXES:
        raise ValueError(f"x={x!r}: choose one of {', '.join(_OTHER_AXES)}")
    setting = ["kind", "device_name", "threads", "dtype", *_OTHER_AXES[x]]
    cols = setting + ["regularizer", "a", "b", "crossover", "lower_below", "lower_above", "note"]
    sub = df[df["kind"].isin(kinds)] if "kind" in df.columns else df.iloc[0:0]
    sub = _ok_points(sub, x, y) if not sub.empty else sub
    rows = []
    if sub.empty:
        return pd.DataFrame(columns=cols)
    wanted = [tuple(p) for p in pairs] if pairs is not None else None
    for skey, g in sub.groupby(setting, dropna=False, sort=True):
        skey = skey if isinstance(skey, tuple) else (skey,)
        if wanted is not None:
            cand = [(None, a, b) for a, b in wanted if (g[key] == a).any() and (g[key] == b).any()]
        else:
            cand = []
            for reg, gr in g.groupby("regularizer", dropna=True, sort=True):
                labels = sorted(gr[key].dropna().unique())
                cand += [(reg, a, b) for a, b in itertools.combinations(labels, 2)]
        for reg, a, b in cand:
            found = crossovers(g, a, b, x=x, y=y, key=key)
            if found:
                for c in found:
                    rows.append((*skey, reg, a, b, c.x, c.lower_before, c.lower_after,
                                 f"{c.lower_after} lower above {x}≈{_num(c.x)}"))
            else:
                lower, span = _lower_throughout(g, a, b, x, y, key)
                if not span:
                    continue
                note = f"{lower} lower throughout {x}={span}" if lower else f"no crossing in {x}={span}"
                rows.append((*skey, reg, a, b, math.nan, lower, lower, note))
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------------------------
# Accuracy, regressions
# --------------------------------------------------------------------------------------------------------------
ACCURACY_KEYS = ("regularizer", "dataset", "fraction", "backbone", "dim", "views", "batch", "epochs", "device")
ACCURACY_METRICS = ("linear_top1", "knn_top1", "init_linear_top1", "init_knn_top1", "gain_linear", "gain_knn",
                    "train_time_s", "images_per_s")


#: training settings besides the grid axes that tell two runs of one regularizer apart (with the hyper-parameters)
VARIANT_KEYS = ("lr", "ema_tau", "predictor_hidden", "grad_clip", "warmup_epochs", "optimizer")
#: values a record leaves out when they are off: the variance add-on's hyper-parameters appear only when it is on
_ABSENT_MEANS = {f"hp:{k}": v for k, v in VARIANCE_ADDON_DEFAULTS.items()}


def _hparam_dict(v: Any) -> dict:
    if isinstance(v, dict):
        return v
    if isinstance(v, str):
        try:
            d = json.loads(v)
            return d if isinstance(d, dict) else {}
        except ValueError:
            return {}
    return {}


def run_variants(runs: pd.DataFrame) -> pd.Series:
    """One label per training run: its regularizer, plus, in parentheses, the hyper-parameters and the training
    settings (:data:`VARIANT_KEYS`) whose values differ between the runs of that regularizer *in this frame*
    (``"vicreg (std_coeff=0)"`` next to ``"vicreg (std_coeff=25)"``; a regularizer run one way only keeps its bare
    name). Runs that differ in those settings must not be pooled into one mean. A hyper-parameter a record lacks
    (failure records written by ``sslbench sweep`` carry only the sweep's) does not split it off, except those
    whose absence has a meaning (the variance add-on off); an absent training setting is a value of its own
    (``grad_clip`` is recorded only when set), but byol's predictor width defaults to TrainConfig's in records
    from before it was recorded."""
    if runs.empty:
        return pd.Series([], index=runs.index, dtype=object)
    reg = _col(runs, "case.regularizer").astype(str)
    hps = [_hparam_dict(v) for v in _col(runs, "case.hparams")]
    settings = []
    for i, idx in enumerate(runs.index):
        d = {**_ABSENT_MEANS, **{f"hp:{k}": v for k, v in hps[i].items()}}
        if reg.iloc[i] == "byol":
            d["predictor_hidden"] = DEFAULT_PREDICTOR_HIDDEN
        for k in VARIANT_KEYS:
            v = runs.at[idx, f"case.{k}"] if f"case.{k}" in runs.columns else None
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                d[k] = v
            else:
                d.setdefault(k, None)  # not set (grad_clip is recorded only when set): a value of its own
        settings.append(d)
    labels = []
    for i, idx in enumerate(runs.index):
        same = [settings[j] for j in range(len(settings)) if reg.iloc[j] == reg.iloc[i]]
        keys = sorted({k for d in same for k in d})
        # a hyper-parameter a record lacks (a failure record written by the sweep) does not split variants
        varying = [k for k in keys if len({json.dumps(d[k], sort_keys=True, default=str) for d in same if k in d}) > 1
                   and k in settings[i]]
        parts = [f"{k.removeprefix('hp:')}={_short(settings[i].get(k))}" for k in varying]
        labels.append(reg.iloc[i] + (f" ({', '.join(parts)})" if parts else ""))
    return pd.Series(labels, index=runs.index, dtype=object)


def _short(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def accuracy_table(df: pd.DataFrame, by: Sequence[str] | None = None,
                   metrics: Sequence[str] = ACCURACY_METRICS) -> pd.DataFrame:
    """Training runs (kind ``train``) grouped by configuration (``by``; default: regularizer, its variant
    (:func:`run_variants`), dataset, fraction, backbone, dim, views, batch, epochs, device, those present), seeds
    pooled: ``runs`` (all
    statuses), ``ok`` (runs that finished), the mean of each metric over the ok runs and ``<metric>_std`` for
    the linear and kNN accuracies (NaN for a single run)."""
    if "kind" not in df.columns:
        return pd.DataFrame()
    runs = df[df["kind"] == "train"].copy()
    if runs.empty:
        return pd.DataFrame()
    if by is None:
        by = [k for k in ACCURACY_KEYS if (k if k in runs.columns else f"case.{k}") in runs.columns]
        runs["variant"] = run_variants(runs)
        by = by[:1] + ["variant"] + by[1:]
    keys = []
    for k in by:
        col = k if k in runs.columns else f"case.{k}"
        if col not in runs.columns:
            raise KeyError(f"accuracy_table: no column {k!r}")
        runs[k] = runs[col]
        keys.append(k)
    mcols = [m for m in metrics if f"metrics.{m}" in runs.columns]
    for m in mcols:
        runs[m] = pd.to_numeric(runs[f"metrics.{m}"], errors="coerce")
    runs["_ok"] = runs["status"] == "ok"
    grouped = runs.groupby(keys, dropna=False, sort=True)
    out = grouped.agg(runs=("status", "size"), ok=("_ok", "sum"))
    ok = runs[runs["_ok"]]
    if not ok.empty and mcols:
        g = ok.groupby(keys, dropna=False, sort=True)
        means = g[mcols].mean()
        stds = g[[m for m in ("linear_top1", "knn_top1") if m in mcols]].std().add_suffix("_std")
        out = out.join(means).join(stds)
    return out.reset_index()


def _higher_is_better(unit: Any, benchmark: Any) -> bool:
    return unit == "%" or (isinstance(benchmark, str) and any(w in benchmark for w in ("accuracy", "top1")))


def regressions(df: pd.DataFrame, threshold: float = 1.2) -> pd.DataFrame:
    """Each asv benchmark (one parameter combination on one machine and environment) across commits, in commit
    order (asv's commit date, then the order of the files): ``ratio`` = value / value at the previous commit
    measured; ``change`` is ``"regression"`` when it got worse by more than ``threshold`` (×; for a figure where
    lower is better, ratio > threshold; for an accuracy (unit ``%``), ratio < 1/threshold), ``"improvement"``
    in the other direction, else ``""``. When both measurements carry asv's 99 % confidence intervals
    (``ci_99_a``, ``ci_99_b``), a change also needs the intervals not to overlap (``significant``), the rule asv
    itself applies without raw samples: on a noisy machine a ratio beyond the threshold inside overlapping
    intervals is not called a change. Takes the frame of :func:`load_results` (its ``kind == "asv"`` rows);
    returns one row per measurement with ``series`` (benchmark and parameters), ``benchmark``, ``params``,
    ``machine``, ``commit``, ``created``, ``value``, ``unit``, ``prev_commit``, ``prev_value``, ``ratio``,
    ``change``."""
    if threshold <= 1:
        raise ValueError(f"threshold={threshold} must be > 1 (a factor, e.g. 1.2 for 20 %)")
    cols = ["series", "benchmark", "params", "machine", "asv_env", "commit", "created", "value", "unit",
            "prev_commit", "prev_value", "ratio", "significant", "change"]
    if df.empty or "kind" not in df.columns:
        return pd.DataFrame(columns=cols)
    asv = df[(df["kind"] == "asv") & (df["status"] == "ok")].copy()
    if asv.empty:
        return pd.DataFrame(columns=cols)
    param_cols = sorted(c for c in asv.columns if c.startswith("case.") and c not in ("case.benchmark", "case.commit")
                        and asv[c].notna().any())
    asv["benchmark"] = asv["case.benchmark"]
    asv["params"] = [", ".join(f"{c[5:]}={_num(row[c])}" for c in param_cols if pd.notna(row[c]))
                     for _, row in asv[param_cols].iterrows()] if param_cols else ""
    asv["series"] = [f"{b} ({p})" if p else str(b) for b, p in zip(asv["benchmark"], asv["params"])]
    asv["machine"] = _col(asv, "env.machine")
    asv["asv_env"] = _col(asv, "env.asv_env")
    asv["commit"] = _col(asv, "case.commit")
    asv["value"] = pd.to_numeric(asv["metrics.value"], errors="coerce")
    asv["unit"] = _col(asv, "metrics.unit")
    asv["_lo"] = pd.to_numeric(_col(asv, "metrics.ci_99_a"), errors="coerce")
    asv["_hi"] = pd.to_numeric(_col(asv, "metrics.ci_99_b"), errors="coerce")
    asv["_order"] = np.arange(len(asv))
    asv = asv.sort_values(["created", "_order"], na_position="last", kind="stable")
    out = []
    for _, g in asv.groupby(["series", "machine", "asv_env"], dropna=False, sort=True):
        g = g.copy()
        g["prev_commit"] = g["commit"].shift(1)
        g["prev_value"] = g["value"].shift(1)
        g["ratio"] = g["value"] / g["prev_value"]
        lo_prev, hi_prev = g["_lo"].shift(1), g["_hi"].shift(1)
        have_ci = g[["_lo", "_hi"]].notna().all(axis=1) & lo_prev.notna() & hi_prev.notna()
        apart = (g["_lo"] > hi_prev) | (g["_hi"] < lo_prev)
        g["significant"] = np.where(have_ci, apart, True)
        g.loc[g["prev_value"].isna(), "significant"] = False
        up = (g["ratio"] > threshold) & g["significant"]
        down = (g["ratio"] < 1 / threshold) & g["significant"]
        higher = [_higher_is_better(u, b) for u, b in zip(g["unit"], g["benchmark"])]
        worse = np.where(higher, down, up)
        better = np.where(higher, up, down)
        g["change"] = np.where(worse, "regression", np.where(better, "improvement", ""))
        out.append(g[cols])
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


# --------------------------------------------------------------------------------------------------------------
# Summary tables and their formatting
# --------------------------------------------------------------------------------------------------------------
def inventory(df: pd.DataFrame) -> pd.DataFrame:
    """How many records of each source type, kind, device and status."""
    if df.empty:
        return pd.DataFrame(columns=["source_type", "kind", "device_name", "status", "records"])
    keys = ["source_type", "kind", "device_name", "status"]
    return (df.groupby(keys, dropna=False, sort=True).size().rename("records").reset_index())


def summary(df: pd.DataFrame, *, threshold: float = 1.2, min_points: int = 3, dim_min: float | None = None,
            tables: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """The tables of ``sslbench analyze``: ``inventory``, ``scaling_dim`` (exponents in D), ``scaling_batch``
    (in N), ``crossovers`` (in D, time and memory), ``accuracy`` and ``regressions`` (asv changes beyond
    ``threshold`` only). ``dim_min``: fit the exponents in D over D >= dim_min only. ``tables`` picks some."""
    names = list(tables) if tables is not None else list(SUMMARY_TABLES)
    unknown = [t for t in names if t not in SUMMARY_TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {', '.join(SUMMARY_TABLES)}")
    out: dict[str, pd.DataFrame] = {}
    for name in names:
        if name == "inventory":
            out[name] = inventory(df)
        elif name == "scaling_dim":
            out[name] = scaling_table(df, x="dim", min_points=min_points, x_min=dim_min)
        elif name == "scaling_batch":
            out[name] = scaling_table(df, x="batch", min_points=min_points)
        elif name == "crossovers":
            t = crossover_table(df, x="dim", y="time_s").assign(metric="time_s")
            m = crossover_table(df, x="dim", y="memory_bytes").assign(metric="memory_bytes")
            both = [f for f in (t, m) if not f.empty]
            out[name] = pd.concat(both, ignore_index=True) if both else t
        elif name == "accuracy":
            out[name] = accuracy_table(df)
        elif name == "regressions":
            r = regressions(df, threshold=threshold)
            r = r[r["change"] != ""].reset_index(drop=True)
            r = r.assign(prev_commit=r["prev_commit"].astype(str).str[:10], commit=r["commit"].astype(str).str[:10])
            out[name] = r[["benchmark", "params", "machine", "prev_commit", "commit", "prev_value", "value", "unit",
                           "ratio", "change"]]
    return out


SUMMARY_TABLES = ("inventory", "scaling_dim", "scaling_batch", "crossovers", "accuracy", "regressions")


def _num(v: Any) -> str:
    """A number for a table: integers without decimals, others with 4 significant digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if abs(v) < 1e15 and abs(v - round(v)) <= 1e-9 * max(1.0, abs(v)):
            return str(int(round(v)))
        return f"{v:.4g}"
    return str(v)


def _column_cells(col: pd.Series) -> list[str]:
    """The cells of one column: dates to the minute; a float column as integers when all its values are whole,
    else with 3 decimals (4 significant digits below 0.01); NaN/None as empty."""
    values = list(col)
    floats = [v for v in values if isinstance(v, (float, np.floating)) and not math.isnan(v)]
    whole = all(abs(v) < 1e15 and float(v).is_integer() for v in floats)

    def cell(v: Any) -> str:
        if isinstance(v, pd.Timestamp):
            return v.strftime("%Y-%m-%d %H:%M")
        try:
            if pd.isna(v):
                return ""
        except (TypeError, ValueError):
            pass
        if isinstance(v, (float, np.floating)) and not isinstance(v, bool):
            if whole:
                return str(int(v))
            return f"{v:.3f}" if abs(v) >= 0.01 or v == 0 else f"{v:.3g}"
        return _num(v)

    return [cell(v) for v in values]


def format_table(df: pd.DataFrame, fmt: str = "text") -> str:
    """``df`` as ``text`` (aligned columns), ``markdown`` (a GitHub table) or ``csv``."""
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt not in ("text", "markdown"):
        raise ValueError(f"fmt={fmt!r}: choose text, markdown or csv")
    header = [str(c) for c in df.columns]
    columns = [_column_cells(df[c]) for c in df.columns]
    body = [list(row) for row in zip(*columns)] if columns else []
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    if fmt == "markdown":
        esc = [[c.replace("|", "\\|") for c in row] for row in body]
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in esc]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body])
