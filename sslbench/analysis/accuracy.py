"""Accuracy of training runs: one label per run variant (:func:`run_variants`) and the table of runs grouped by
configuration, seeds pooled (:func:`accuracy_table`)."""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sslbench.analysis.common import column
from sslbench.records.constants import DEFAULT_PREDICTOR_HIDDEN, UNNAMED_PREDICTOR_REGULARIZERS, VARIANCE_ADDON_DEFAULTS

ACCURACY_KEYS = ("regularizer", "dataset", "fraction", "backbone", "dim", "views", "batch", "epochs", "device")
#: the CPU or GPU model of a run (:func:`sslbench.analysis.load_results`' ``device_name``, from the record's
#: ``env.device_name``): the default grouping of :func:`accuracy_table` has it beside ``device`` (cpu / cuda), so
#: that runs on two GPU models, or on two CPU models, are two rows, never one mean
DEVICE_MODEL = "device_name"
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
    from before it was recorded (:data:`~sslbench.records.constants.UNNAMED_PREDICTOR_REGULARIZERS`)."""
    if runs.empty:
        return pd.Series([], index=runs.index, dtype=object)
    # the runs' distinct settings first (a store repeats a few settings over many runs: each distinct one is built
    # and labelled once), then one pass per regularizer: the settings that vary within each regularizer are found
    # once for the whole group (O(runs x keys)), not again for every run of it (that was O(runs^2))
    reg = column(runs, "case.regularizer").astype(str).tolist()
    raw = column(runs, "case.hparams").tolist()
    present = {k: runs[f"case.{k}"].tolist() for k in VARIANT_KEYS if f"case.{k}" in runs.columns}
    first: dict[tuple, int] = {}  # a run's signature -> the first run with it
    sig_of = []
    for i in range(len(reg)):
        sig = (reg[i], _signature(raw[i]), *(_signature(vals[i], absent=True) for vals in present.values()))
        sig_of.append(first.setdefault(sig, i))
    distinct = sorted(set(sig_of))
    settings = {}
    for i in distinct:
        d = {**_ABSENT_MEANS, **{f"hp:{k}": v for k, v in _hparam_dict(raw[i]).items()}}
        if reg[i] in UNNAMED_PREDICTOR_REGULARIZERS:  # overridden below where the record names it
            d["predictor_hidden"] = DEFAULT_PREDICTOR_HIDDEN
        for k in VARIANT_KEYS:
            v = present[k][i] if k in present else None
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                d[k] = v
            else:
                d.setdefault(k, None)  # not set (grad_clip is recorded only when set): a value of its own
        settings[i] = d
    # the distinct values of every key among the runs of each regularizer that have it; a hyper-parameter a
    # record lacks (a failure record written by the sweep) adds no value, so it does not split variants
    values: dict[str, dict[str, set]] = {}
    text = _json_texts()
    for i in distinct:
        seen = values.setdefault(reg[i], {})
        for k, v in settings[i].items():
            seen.setdefault(k, set()).add(text(v))
    varying = {r: sorted(k for k, vs in seen.items() if len(vs) > 1) for r, seen in values.items()}
    label_of = {}
    for i in distinct:
        r, d = reg[i], settings[i]
        parts = [f"{k.removeprefix('hp:')}={_short(d.get(k))}" for k in varying[r] if k in d]
        label_of[i] = r + (f" ({', '.join(parts)})" if parts else "")
    labels = [label_of[i] for i in sig_of]
    return pd.Series(labels, index=runs.index, dtype=object)


def _signature(v: Any, absent: bool = False) -> Any:
    """A hashable stand-in for ``v`` that two values share only when they give the same settings and the same label:
    its type besides its value (1, 1.0 and True stay apart), a float by its ``repr`` (-0.0 and 0.0 apart), anything
    else by its JSON text; ``absent``: None and NaN alike (an unset training setting)."""
    if absent and (v is None or (isinstance(v, float) and math.isnan(v))):
        return None
    if type(v) is float:
        return (float, repr(v))
    if v is None or type(v) in (str, int, bool):
        return (type(v), v)
    return (type(v).__name__, json.dumps(v, sort_keys=True, default=str))


def _json_texts():
    """``json.dumps(v, sort_keys=True, default=str)``, each distinct scalar converted once (a store repeats a few
    values in every run): keyed by type and value (``repr`` for a float, so that -0.0 and 0.0 stay apart)."""
    done: dict = {}

    def text(v: Any) -> str:
        if type(v) is float:
            key = (float, repr(v))
        elif v is None or type(v) in (str, int, bool):
            key = (type(v), v)
        else:  # a list, a dict, a numpy scalar: as it is
            return json.dumps(v, sort_keys=True, default=str)
        t = done.get(key)
        if t is None:
            t = done[key] = json.dumps(v, sort_keys=True, default=str)
        return t

    return text


def _short(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def device_model(runs: pd.DataFrame) -> pd.Series:
    """The CPU or GPU model of each run: ``device_name`` (the column :func:`sslbench.analysis.load_results` adds),
    else the record's ``env.device_name``, ``env.cpu_model``, ``env.machine``, and ``case.device`` (cpu / cuda)
    where the record names no model; None where it names nothing."""
    name = column(runs, DEVICE_MODEL).astype(object).copy()
    for fallback in ("env.device_name", "env.cpu_model", "env.machine", "case.device"):
        name = name.where(name.notna(), column(runs, fallback))
    return name


def latest_per_run(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (training records) with one record per run: per run id (``id``, a hash of the case) and CPU or GPU
    model (:func:`device_model`: the same case on two machines is two runs), the latest by ``created``. A run
    recorded twice (shared between two studies' stores, interrupted then finished, or measured again) is one run:
    counted twice, its seed would narrow every interval as if it were two."""
    if "id" not in runs.columns or runs.empty:
        return runs
    model = device_model(runs).map(lambda v: "" if v is None else str(v))
    ids = runs["id"].astype(object).where(runs["id"].isna(), runs["id"].astype(str) + "\x00" + model)
    order = (runs["created"].reset_index(drop=True).sort_values(na_position="first", kind="stable").index.to_numpy()
             if "created" in runs.columns else np.arange(len(runs)))
    ordered = ids.iloc[order]
    dropped = (ordered.duplicated(keep="last") & ordered.notna()).to_numpy()
    if not dropped.any():
        return runs  # the frame itself: no copy of a large table that has no repeats
    return runs.iloc[np.sort(order[~dropped])]


def accuracy_table(df: pd.DataFrame, by: Sequence[str] | None = None,
                   metrics: Sequence[str] = ACCURACY_METRICS) -> pd.DataFrame:
    """Training runs (kind ``train``, one record per run id: :func:`latest_per_run`) grouped by configuration
    (``by``; default: regularizer, its variant
    (:func:`run_variants`), dataset, fraction, backbone, dim, views, batch, epochs, device, those present, and
    ``device_name``, the CPU or GPU model (:func:`device_model`): runs on a GPU, on a CPU or on two models of
    either are never pooled), seeds pooled: ``runs`` (all statuses), ``ok`` (runs that finished), the mean of
    each metric over the ok runs and ``<metric>_std`` for the linear and kNN accuracies (NaN for a single run).
    A key of ``by`` is the column of that name, else ``case.<key>``, else ``env.<key>``."""
    if "kind" not in df.columns:
        return pd.DataFrame()
    # the training rows of the columns read here only: a copy of every column of them was a third of the store
    want = {"kind", "status", DEVICE_MODEL, "env.device_name", "env.cpu_model", "env.machine", "case.device",
            "case.regularizer", "case.hparams", *(f"case.{k}" for k in VARIANT_KEYS),
            *(f"metrics.{m}" for m in metrics),
            *(c for k in (by if by is not None else ACCURACY_KEYS) for c in (k, f"case.{k}", f"env.{k}"))}
    want |= {"id", "created", "device_name"}
    runs = df.loc[(df["kind"] == "train").to_numpy(dtype=bool, na_value=False), [c for c in df.columns if c in want]]
    runs = latest_per_run(runs)
    if runs.empty:
        return pd.DataFrame()
    if by is None:
        by = [k for k in ACCURACY_KEYS if (k if k in runs.columns else f"case.{k}") in runs.columns]
        runs["variant"] = run_variants(runs)
        by = by[:1] + ["variant"] + by[1:]
        runs[DEVICE_MODEL] = device_model(runs)
        if DEVICE_MODEL not in by:
            by = by + [DEVICE_MODEL]
    keys = []
    for k in by:
        col = next((c for c in (k, f"case.{k}", f"env.{k}") if c in runs.columns), None)
        if col is None:
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
