"""The results record schema and its append-only JSON-lines store.

Every measurement sslbench makes (a regularizer micro-benchmark, a training run, ...) becomes one *record*, a
plain JSON object with these keys::

    schema    int    SCHEMA_VERSION of the writer (records of older versions still load, see upgrade_record)
    kind      str    what was measured: "regularizer_bench", "train", ...
    id        str    case_id(kind, case): a stable hash of kind + case, used to resume a grid
    created   str    UTC time, ISO 8601 with offset ("2025-01-31T12:00:00.123456+00:00")
    case      dict   the configuration that identifies the case (regularizer, dim, batch, views, device, ...)
    status    str    one of STATUSES: "ok", "oom", "nonfinite", "diverged", "timeout", "error", "interrupted", "killed"
    metrics   dict   the figures (time_median_s, peak_rss_bytes, top1, ...); non-finite floats are stored as null
    env       dict   where it ran (sslbench.execution.measure.environment(): versions, git commit, device, CPU, threads)
    message   str|None  why a case is not "ok" (the exception's text), or a note
    extra     dict   anything else (raw samples, hyper-parameters in full, ...)

The store is a JSON-lines file: one record per line, appended with a flush and an ``fsync`` so that a crash or a
pulled plug loses at most the line being written. :func:`read_records` skips (and warns about) lines that are not
valid JSON objects, such as the half-written tail of an interrupted run; it never raises on content.

Readers for the two benchmark tools' own formats turn their output into records of the same shape:
:func:`read_pytest_benchmark` (the JSON files of ``pytest --benchmark-autosave`` / ``--benchmark-json``) and
:func:`read_asv_results` (an asv ``results`` directory). :func:`to_dataframe` flattens records into one tidy
``pandas.DataFrame`` (columns ``case.*``, ``metrics.*``, ``env.*``).

This module imports neither torch nor anything else from sslbench at import time, so that the dashboard can read
results without torch work.
"""

from __future__ import annotations

import ast
import datetime as _dt
import enum
import hashlib
import itertools
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "FINAL_STATUSES",
    "RECORD_KEYS",
    "make_record",
    "case_id",
    "append_record",
    "read_records",
    "upgrade_record",
    "completed_ids",
    "read_pytest_benchmark",
    "read_asv_results",
    "to_dataframe",
]

#: Version of the record layout written by this module. Bump it when a key changes meaning, and teach
#: :func:`upgrade_record` to bring older records up to date.
SCHEMA_VERSION = 1

#: Every allowed status. "ok" is a normal result; the others are results too (a case that runs out of memory
#: *is* a data point) and carry a ``message``.
STATUSES = ("ok", "oom", "nonfinite", "diverged", "timeout", "error", "interrupted", "killed")

#: Statuses that are a property of the case itself: re-running the case would give the same answer, so a
#: resumed grid skips them. "error", "timeout" and "interrupted" are retried.
FINAL_STATUSES = ("ok", "oom", "nonfinite", "diverged")

RECORD_KEYS = ("schema", "kind", "id", "created", "case", "status", "metrics", "env", "message", "extra")


# --------------------------------------------------------------------------------------------------------------
# Making records
# --------------------------------------------------------------------------------------------------------------
def _plain(value: Any, *, where: str) -> Any:
    """``value`` as plain JSON data: dicts with str keys, lists, str, int, float (finite or None), bool, None.

    Tuples become lists; numpy / torch scalars become Python numbers; torch dtypes and devices, paths and enums
    become their ``str``; non-finite floats become ``None`` (JSON has no NaN).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r} ({type(k).__name__})")
            out[k] = _plain(v, where=f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    # numpy scalars and 0-dim arrays / tensors: .item()
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return _plain(item(), where=where)
        except (TypeError, ValueError, RuntimeError):
            pass
    type_name = type(value).__module__ + "." + type(value).__qualname__
    if type_name in ("torch.dtype", "torch.device") or isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value, where=where)
    raise TypeError(
        f"{where}={value!r} ({type(value).__name__}) cannot be stored in a JSON record; convert it to a str, "
        "number, bool, list or dict first"
    )


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def case_id(kind: str, case: Mapping) -> str:
    """A stable identifier of ``kind`` + ``case``: the first 16 hex digits of the SHA-256 of their canonical JSON.

    Independent of the order of the keys, of the process (no ``hash()``) and of the Python version; tuples and
    lists give the same id, as do ``torch.float32`` and ``"torch.float32"``. Used to resume a grid: a case whose
    id already has a record with a final status is not measured again.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind={kind!r} must be a non-empty string such as 'regularizer_bench'")
    if not isinstance(case, Mapping):
        raise TypeError(f"case must be a dict of the case's configuration, got {type(case).__name__}")
    text = _canonical({"kind": kind, "case": _plain(case, where="case")})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def make_record(
    kind: str,
    case: dict,
    metrics: dict,
    status: str = "ok",
    *,
    env: dict | None = None,
    message: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Build one record (see the module docstring for the keys).

    ``env=None`` fills in :func:`sslbench.execution.measure.environment` (cached per process); pass ``env={}`` to store no
    environment. Values are converted to plain JSON data; a value that cannot be raises ``TypeError`` naming it.
    """
    if status not in STATUSES:
        raise ValueError(f"status={status!r} is not allowed; choose one of {', '.join(map(repr, STATUSES))}")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of figures, got {type(metrics).__name__}")
    if message is not None and not isinstance(message, str):
        message = str(message)
    if env is None:
        from sslbench.execution.measure import environment  # lazy: keeps this module free of torch

        env = environment()
    return {
        "schema": SCHEMA_VERSION,
        "kind": kind,
        "id": case_id(kind, case),
        "created": _utc_now(),
        "case": _plain(case, where="case"),
        "status": status,
        "metrics": _plain(metrics, where="metrics"),
        "env": _plain(env, where="env"),
        "message": message,
        "extra": _plain(extra or {}, where="extra"),
    }


def upgrade_record(record: dict) -> dict:
    """Bring a record written by an older (or partial) writer to the current layout, without changing its data.

    Missing keys get neutral values (``{}``, ``None``), a missing ``id`` is recomputed from kind and case, and
    ``schema`` keeps the version the record was written with (0 when it had none).
    """
    rec = dict(record)
    rec.setdefault("schema", 0)
    rec.setdefault("kind", "unknown")
    for key in ("case", "metrics", "env", "extra"):
        if not isinstance(rec.get(key), dict):
            rec[key] = {}
    rec.setdefault("status", "ok")
    rec.setdefault("message", None)
    rec.setdefault("created", None)
    if not rec.get("id"):
        try:
            rec["id"] = case_id(str(rec["kind"]), rec["case"])
        except (TypeError, ValueError):
            rec["id"] = None
    return rec


# --------------------------------------------------------------------------------------------------------------
# The JSON-lines store
# --------------------------------------------------------------------------------------------------------------
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
    with open(path, "a+b") as f:
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


def read_records(path: str | os.PathLike, *, kind: str | None = None) -> list[dict]:
    """All records in the JSON-lines file ``path`` (``[]`` if it does not exist), upgraded to the current layout.

    Lines that are not JSON objects (a half-written line from an interrupted run, a stray edit) are skipped with a
    ``RuntimeWarning`` giving the line numbers; reading never fails on content. ``kind`` keeps only that kind.
    """
    path = Path(path)
    if not path.exists():
        return []
    records, bad = [], []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                rec = json.loads(text.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                bad.append(lineno)
                continue
            if not isinstance(rec, dict):
                bad.append(lineno)
                continue
            rec = upgrade_record(rec)
            if kind is None or rec["kind"] == kind:
                records.append(rec)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        warnings.warn(
            f"{path}: skipped {len(bad)} line(s) that are not JSON records (line {shown}); an interrupted run "
            "leaves a half-written last line, which is harmless",
            RuntimeWarning,
            stacklevel=2,
        )
    return records


def completed_ids(records: Iterable[dict], statuses: Iterable[str] = FINAL_STATUSES) -> set[str]:
    """The ids of the cases that already have a record with one of ``statuses`` (for resuming a grid)."""
    statuses = set(statuses)
    return {r["id"] for r in records if r.get("status") in statuses and r.get("id")}


# --------------------------------------------------------------------------------------------------------------
# Readers for pytest-benchmark and asv output
# --------------------------------------------------------------------------------------------------------------
# keys of the suite's extra_info that describe the machine rather than the case
_PYTEST_BENCHMARK_ENV_KEYS = ("torch_version", "threads", "device_name")


def read_pytest_benchmark(path: str | os.PathLike) -> list[dict]:
    """Records (kind ``"pytest_benchmark"``) from a pytest-benchmark JSON file or a folder of them (recursive).

    The case is the ``extra_info`` the suite stores (regularizer, dim, batch, views, device, dtype, ...) plus the
    test's ``name``; the metrics are pytest-benchmark's statistics in seconds (``time_median_s``,
    ``time_iqr_s``, ``time_min_s``, ``time_mean_s``, ``time_stddev_s``, ``repeats``) and any memory figures of
    ``extra_info``. ``env`` holds the machine and commit information of the file.
    """
    path = Path(path)
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    out = []
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"{file}: not a pytest-benchmark JSON file ({exc}); skipped", RuntimeWarning, stacklevel=2)
            continue
        if not isinstance(data, dict) or "benchmarks" not in data:
            continue
        machine = data.get("machine_info", {}) or {}
        commit = data.get("commit_info", {}) or {}
        env = {
            "hostname": machine.get("node"),
            "python": machine.get("python_version"),
            "cpu_model": (machine.get("cpu") or {}).get("brand_raw"),
            "git_commit": commit.get("id"),
            "git_dirty": commit.get("dirty"),
            "source": str(file),
        }
        for bench in data["benchmarks"]:
            info = dict(bench.get("extra_info") or {})
            memory = {k: info.pop(k) for k in list(info) if k.endswith("_bytes")}
            bench_env = dict(env)
            bench_env.update({k: info.pop(k) for k in _PYTEST_BENCHMARK_ENV_KEYS if k in info})
            case = {"name": bench.get("name"), **info}
            stats = bench.get("stats") or {}
            metrics = {
                "time_median_s": stats.get("median"),
                "time_iqr_s": stats.get("iqr"),
                "time_min_s": stats.get("min"),
                "time_mean_s": stats.get("mean"),
                "time_stddev_s": stats.get("stddev"),
                "repeats": stats.get("rounds"),
                **memory,
            }
            rec = make_record("pytest_benchmark", case, metrics, env=bench_env, extra={"group": bench.get("group")})
            if data.get("datetime"):
                rec["created"] = data["datetime"]
            out.append(rec)
    return out


def _asv_param_value(text: str) -> Any:
    """asv stores parameter values as their repr: "'barlow_twins'", "256", "None"."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_asv_results(results_dir: str | os.PathLike) -> list[dict]:
    """Records (kind ``"asv"``) from an asv results directory (``<results_dir>/<machine>/<commit>-<env>.json``).

    One record per benchmark and parameter combination. The case is ``{"benchmark": name, **params}`` (the
    parameter names of the benchmark, values decoded from asv's repr) plus ``commit``; the metric is ``value`` in
    the benchmark's unit (``unit``: "seconds", "bytes", ...), with ``ci_99_a``/``ci_99_b`` and ``q_25``/``q_75``
    when asv kept statistics. Failed combinations (asv's null) get status "error", skipped ones (NaN) are
    left out.
    """
    results_dir = Path(results_dir)
    out: list[dict] = []
    if not results_dir.is_dir():
        return out
    bench_meta = {}
    meta_file = results_dir / "benchmarks.json"
    if meta_file.exists():
        try:
            bench_meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError:
            bench_meta = {}
    for machine_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        machine_info = {}
        if (machine_dir / "machine.json").exists():
            try:
                machine_info = json.loads((machine_dir / "machine.json").read_text())
            except json.JSONDecodeError:
                machine_info = {}
        for file in sorted(machine_dir.glob("*.json")):
            if file.name == "machine.json":
                continue
            try:
                data = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError):
                warnings.warn(f"{file}: not an asv result file; skipped", RuntimeWarning, stacklevel=2)
                continue
            if not isinstance(data, dict) or "results" not in data:
                continue
            columns = data.get("result_columns") or ["result", "params"]
            env = {
                "machine": machine_dir.name,
                "cpu_model": machine_info.get("cpu"),
                "num_cpu": machine_info.get("num_cpu"),
                "python": data.get("python"),
                "asv_env": data.get("env_name"),
                "requirements": data.get("requirements"),
                "git_commit": data.get("commit_hash"),
            }
            for name, row in data["results"].items():
                row = dict(zip(columns, row)) if isinstance(row, list) else {"result": row}
                meta = bench_meta.get(name, {})
                param_names = meta.get("param_names") or []
                params = row.get("params") or []
                values = row.get("result")
                if not params:
                    combos = [()]
                    values = [values] if not isinstance(values, list) else values[:1]
                else:
                    combos = list(itertools.product(*params))
                stats_q25 = _column(row, "stats_q_25", len(combos))
                stats_q75 = _column(row, "stats_q_75", len(combos))
                ci_a = _column(row, "stats_ci_99_a", len(combos))
                ci_b = _column(row, "stats_ci_99_b", len(combos))
                values = values if isinstance(values, list) else [values] * len(combos)
                for i, combo in enumerate(combos):
                    value = values[i] if i < len(values) else None
                    if isinstance(value, float) and math.isnan(value):
                        continue  # skipped (NotImplementedError in setup)
                    names = param_names if len(param_names) == len(combo) else [f"param{j}" for j in range(len(combo))]
                    case = {"benchmark": name, **{n: _asv_param_value(v) for n, v in zip(names, combo)},
                            "commit": data.get("commit_hash")}
                    metrics = {"value": value, "unit": meta.get("unit"), "q_25": stats_q25[i],
                               "q_75": stats_q75[i], "ci_99_a": ci_a[i], "ci_99_b": ci_b[i]}
                    status = "ok" if value is not None else "error"
                    rec = make_record("asv", case, metrics, status, env=env,
                                      message=None if value is not None else "asv recorded a failure")
                    if data.get("date"):
                        rec["created"] = _dt.datetime.fromtimestamp(
                            data["date"] / 1000, tz=_dt.timezone.utc).isoformat()
                    out.append(rec)
    return out


def _column(row: dict, key: str, n: int) -> list:
    v = row.get(key)
    if isinstance(v, list) and len(v) == n:
        return v
    return [None] * n


def to_dataframe(records: Iterable[dict]):
    """Flatten records into one tidy ``pandas.DataFrame``: one row per record, columns ``kind``, ``id``,
    ``created``, ``status``, ``message``, ``case.<key>``, ``metrics.<key>``, ``env.<key>`` (nested values of
    ``extra`` are left out)."""
    import pandas as pd

    rows = []
    for rec in records:
        rec = upgrade_record(rec)
        row = {k: rec.get(k) for k in ("schema", "kind", "id", "created", "status", "message")}
        for section in ("case", "metrics", "env"):
            for k, v in rec[section].items():
                row[f"{section}.{k}"] = v if not isinstance(v, (dict, list)) else json.dumps(v)
        rows.append(row)
    return pd.DataFrame(rows)
