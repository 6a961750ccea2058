"""The record schema: its keys and statuses, :func:`make_record`, :func:`case_id` and :func:`upgrade_record`.

Every measurement sslbench makes (a regularizer micro-benchmark, a training run, ...) becomes one *record*, a
plain JSON object with these keys::

    schema    int    SCHEMA_VERSION of the writer (records of older versions still load, see upgrade_record)
    kind      str    what was measured: "regularizer_bench", "train", ...
    id        str    case_id(kind, case): a stable hash of kind + case, used to resume a grid
    created   str    UTC time, ISO 8601 with offset ("2025-01-31T12:00:00.123456+00:00")
    case      dict   the configuration that identifies the case (regularizer, dim, batch, views, device, ...)
    status    str    one of STATUSES: "ok", "oom", "nonfinite", "diverged", "timeout", "error", "interrupted",
                     "killed"
    metrics   dict   the figures (time_median_s, peak_rss_bytes, top1, ...); non-finite floats are stored as null
    env       dict   where it ran (the writer passes sslbench.execution.measure.environment(): versions, git
                     commit, device, CPU, threads)
    message   str|None  why a case is not "ok" (the exception's text), or a note
    extra     dict   anything else (raw samples, hyper-parameters in full, ...)

Torch-free and free of the rest of sslbench: the environment is passed in by the writer, never looked up here.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
import math
import os
from typing import Any, Mapping

#: Version of the record layout written by this module. Bump it when a key changes meaning, and teach
#: :func:`upgrade_record` to bring older records up to date.
SCHEMA_VERSION = 1

#: Every allowed status. "ok" is a normal result; the others are results too (a case that runs out of memory
#: *is* a data point) and carry a ``message``. "killed": the worker was ended by a signal from outside (an external
#: SIGKILL) with no evidence of the out-of-memory killer.
STATUSES = ("ok", "oom", "nonfinite", "diverged", "timeout", "error", "interrupted", "killed")

#: Statuses that are a property of the case itself: re-running the case would give the same answer, so a
#: resumed grid skips them. "error", "timeout", "interrupted" and "killed" are retried.
FINAL_STATUSES = ("ok", "oom", "nonfinite", "diverged")

RECORD_KEYS = ("schema", "kind", "id", "created", "case", "status", "metrics", "env", "message", "extra")

#: the largest magnitude a number in a record may have (a float's range): readers drop larger ones with a warning
_FLOAT_MAX = 1.7976931348623157e308


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
    env: dict,
    message: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Build one record (see the module docstring for the keys).

    ``env`` is where it ran, passed in by the writer (``sslbench.execution.measure.environment()`` on the torch
    side; ``{}`` to store none): this module never imports the torch side. Values are converted to plain JSON
    data; a value that cannot be raises ``TypeError`` naming it.
    """
    if status not in STATUSES:
        raise ValueError(f"status={status!r} is not allowed; choose one of {', '.join(map(repr, STATUSES))}")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of figures, got {type(metrics).__name__}")
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a dict describing where it ran ({{}} for none), got {type(env).__name__}")
    if message is not None and not isinstance(message, str):
        message = str(message)
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
    ``schema`` keeps the version the record was written with (0 when it had none). A missing ``status`` stays
    ``None``: a record that does not say how its case ended is not counted as ``ok`` (readers skip it, see
    :func:`unusable_reason`).
    """
    rec = dict(record)
    rec.setdefault("schema", 0)
    rec.setdefault("kind", "unknown")
    for key in ("case", "metrics", "env", "extra"):
        if not isinstance(rec.get(key), dict):
            rec[key] = {}
    rec.setdefault("status", None)
    rec.setdefault("message", None)
    rec.setdefault("created", None)
    if not rec.get("id"):
        try:
            rec["id"] = case_id(str(rec["kind"]), rec["case"])
        except (TypeError, ValueError):
            rec["id"] = None
    return rec


def unusable_reason(record: Mapping) -> str | None:
    """Why a record read from a store cannot be used (``None`` when it can): it names no kind, or its status is
    missing or not one of :data:`STATUSES` (such a record must not count as ``ok``)."""
    kind = record.get("kind")
    if not isinstance(kind, str) or not kind:
        return "no 'kind' (what was measured)"
    if "status" not in record:
        return "no 'status'"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    return None


def clamp_numbers(value: Any, where: str = "") -> tuple[Any, list[str]]:
    """``value`` with every number a float cannot hold (an integer such as ``10**400``, or ``1e400``, which parses
    as infinity) replaced by ``None``; and the places (``metrics.x``) where that happened. NaN (asv's "skipped")
    is left as it is.

    Integers beyond 64 bits but within a float's range become floats, which every reader (pandas) can hold.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value, []
    if isinstance(value, int):
        if -2 ** 63 <= value < 2 ** 63:
            return value, []
        if abs(value) <= _FLOAT_MAX:
            return float(value), []
        return None, [where or "value"]
    if isinstance(value, float):
        return (None, [where or "value"]) if math.isinf(value) else (value, [])
    if isinstance(value, dict):
        out, bad = {}, []
        for k, v in value.items():
            out[k], b = clamp_numbers(v, f"{where}.{k}" if where else str(k))
            bad += b
        return out, bad
    if isinstance(value, list):
        out, bad = [], []
        for i, v in enumerate(value):
            item, b = clamp_numbers(v, f"{where}[{i}]")
            out.append(item)
            bad += b
        return out, bad
    return value, []
