"""Readers of the two benchmark tools' own formats, turning their output into records of the same shape, and the
flattening of records into one table.

:func:`read_pytest_benchmark` (the JSON files of ``pytest --benchmark-autosave`` / ``--benchmark-json``),
:func:`read_asv_results` (an asv ``results`` directory), :func:`to_dataframe` (records → one tidy
``pandas.DataFrame``, columns ``case.*``, ``metrics.*``, ``env.*``; pandas is imported only there). Numbers a
float cannot hold are dropped with a warning naming the file, as :func:`sslbench.records.read_records` does.
"""

from __future__ import annotations

import ast
import datetime as _dt
import itertools
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

from sslbench.records.files import open_readable
from sslbench.records.schema import clamp_numbers, make_record, upgrade_record


def _load_json(file: Path, what: str):
    """The parsed JSON of ``file`` with out-of-range numbers set to null (warned about, naming the file), or
    ``None`` with a warning when it is not readable JSON."""
    try:
        with open_readable(file) as f:  # a FIFO planted there would block: refused (an OSError)
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"{file}: not {what} ({exc}); skipped", RuntimeWarning, stacklevel=3)
        return None
    data, bad = clamp_numbers(data)
    if bad:
        warnings.warn(f"{file}: number(s) out of range set to null ({', '.join(bad[:5])})", RuntimeWarning,
                      stacklevel=3)
    return data


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
        data = _load_json(file, "a pytest-benchmark JSON file")
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
                with open_readable(machine_dir / "machine.json") as f:
                    machine_info = json.loads(f.read().decode("utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                machine_info = {}
            machine_info = machine_info if isinstance(machine_info, dict) else {}
        for file in sorted(machine_dir.glob("*.json")):
            if file.name == "machine.json":
                continue
            data = _load_json(file, "an asv result file")
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
    ``created``, ``status``, ``message``, ``case.<key>``, ``metrics.<key>``, ``env.<key>`` and, where the record
    names where its regularizer came from, ``regularizer_source.<key>`` (``distribution``, ``version``,
    ``git_commit``, ``git_dirty``, ...: a plugin's results compared across the commits of its own repository);
    the rest of ``extra`` is left out."""
    import pandas as pd

    rows = []
    for rec in records:
        rec = upgrade_record(rec)
        row = {k: rec.get(k) for k in ("schema", "kind", "id", "created", "status", "message")}
        for section in ("case", "metrics", "env"):
            for k, v in rec[section].items():
                row[f"{section}.{k}"] = v if not isinstance(v, (dict, list)) else json.dumps(v)
        source = (rec.get("extra") or {}).get("regularizer_source")
        if isinstance(source, dict):
            for k, v in source.items():
                row[f"regularizer_source.{k}"] = v if not isinstance(v, (dict, list)) else json.dumps(v)
        rows.append(row)
    return pd.DataFrame(rows)
