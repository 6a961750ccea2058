"""The data behind each dashboard page, Streamlit-free: the choices a filter offers and its default, the series a
chart draws, the pairs of series that cross. ``dashboard/app.py`` lays out widgets and figures around these; the
tests check them without Streamlit.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sslbench.analysis.accuracy import ACCURACY_KEYS, accuracy_table, latest_per_run, run_variants
from sslbench.analysis.common import column
from sslbench.analysis.load import X_COLUMNS, load_results, results_stamp
from sslbench.analysis.scaling import crossover, fit_scaling, ok_points

#: the axes the Accuracy page plots against
ACCURACY_AXES = ("views", "fraction", "dim")
#: the figures of a training run the Accuracy page uses
ACCURACY_FIGURES = ("linear_top1", "knn_top1", "init_linear_top1", "init_knn_top1", "train_time_s", "images_per_s")


# --------------------------------------------------------------------------------------------------------------
# The records the pages read: one copy per results folder
# --------------------------------------------------------------------------------------------------------------
class LoadedResults:
    """The records of one results folder, held once for every session and rerun of the dashboard.

    ``dashboard/app.py`` keeps one of these per folder (``st.cache_resource``: the object itself, never a copy per
    rerun as ``st.cache_data`` gives), and each rerun calls :meth:`get`. When the folder's fingerprint
    (:func:`~sslbench.analysis.load.results_stamp`: every file's path, size and modification time) changed, the
    frame is read again through :func:`~sslbench.analysis.load.load_results` (which parses only what it has not
    cached) and *replaces* the old one, so the server holds one frame, not one per change of a file as a cache keyed
    on the fingerprint did (883 -> 1 425 MB over four reloads at 10^5 records, issue 21). The pages must treat
    the frame as read-only (they filter into new frames)."""

    def __init__(self, root: str, asv: tuple[str, ...] | None = None):
        self.root, self.asv = root, asv
        self.stamp: tuple | None = None
        self.frame = pd.DataFrame()
        self.problems: list[str] = []
        self.reads = 0
        self._lock = threading.Lock()  # sessions rerun in threads of one server: one read at a time

    def get(self) -> tuple[pd.DataFrame, list[str]]:
        """The records and the warnings reading them gave, read again only when a file changed."""
        with self._lock:
            stamp = results_stamp(self.root, self.asv)
            if stamp != self.stamp:
                self.frame = pd.DataFrame()  # drop the old frame before the new one is built: never two at once
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    frame = load_results(self.root, asv=self.asv)
                self.frame, self.problems, self.stamp = frame, [str(w.message) for w in caught], stamp
                self.reads += 1
            return self.frame, self.problems


# --------------------------------------------------------------------------------------------------------------
# Filters shared by the pages
# --------------------------------------------------------------------------------------------------------------
def choices(series: pd.Series, *, by_count: bool = False) -> list:
    """The distinct non-null values of ``series``: sorted, or most common first (``by_count``)."""
    values = series.dropna()
    if by_count:
        return values.astype(str).value_counts().index.tolist()
    return sorted(values.unique().tolist())


def most_common(series: pd.Series):
    """The most frequent non-null value of ``series`` (None when there is none)."""
    counts = series.dropna().value_counts()
    return counts.index[0] if len(counts) else None


def keep(data: pd.DataFrame, col: str, values) -> pd.DataFrame:
    """The rows whose ``col`` (compared as text) is one of ``values``."""
    return data[data[col].astype(str).isin([str(v) for v in values])]


# --------------------------------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------------------------------
def scaling_axes(data: pd.DataFrame) -> list[str]:
    """The axes (of :data:`X_COLUMNS`) along which ``data`` has at least two sizes; ``["dim"]`` when none has."""
    return [a for a in X_COLUMNS if a in data.columns and data[a].nunique() >= 2] or ["dim"]


def default_fixed(data: pd.DataFrame, other: str, x: str):
    """The value at which to hold the axis ``other`` fixed while plotting against ``x``: the one with the most
    distinct ``x`` measured (a curve, not a lone dot), then the most rows. None when ``other`` has no value."""
    values = choices(data[other])
    if not values:
        return None
    return max(values, key=lambda v: (data.loc[data[other] == v, x].nunique(), (data[other] == v).sum()))


def crossing_pairs(data: pd.DataFrame, x: str, y: str) -> list[tuple[str, str]]:
    """The pairs of series (labels) of the same regularizer, those whose curves of ``y`` against ``x`` cross
    first (each group in label order)."""
    ok = ok_points(data, x, y) if not data.empty else data
    pairs, crossing = [], []
    for _, g in ok.groupby("regularizer", sort=True):
        labels = sorted(g["label"].astype(str).unique())
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                (crossing if crossover(g, a, b, x=x, y=y) is not None else pairs).append((a, b))
    return crossing + pairs


def scaling_series(data: pd.DataFrame, x: str, y: str, by: Sequence[str], *, min_points: int = 3,
                   fit_from: float | None = None) -> tuple[list[dict], pd.DataFrame]:
    """The lines of the Scaling chart and their fits (:func:`fit_scaling` over ``by``).

    One dict per series (the ok points of each group of ``by``): ``key`` (the group), ``x``, ``y`` (median of
    ``y`` at each x), ``n`` (points at each x), ``err_minus``/``err_plus`` (distance of the time quartiles from
    the median, when the records carry them; else None) and ``exponent`` (NaN when too few points to fit)."""
    by = list(by)
    ok = ok_points(data, x, y) if not data.empty else data
    if ok.empty:
        return [], pd.DataFrame()
    fits = fit_scaling(data, x=x, y=y, by=by, min_points=min_points, x_min=fit_from)
    fit_of = {tuple(r[k] for k in by): r["exponent"] for _, r in fits.iterrows()}
    out = []
    for key, g in ok.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        agg = g.groupby(x).agg(y=(y, "median"), n=(y, "size"))
        err_minus = err_plus = None
        if y == "time_s" and {"metrics.time_q25_s", "metrics.time_q75_s"} <= set(g.columns):
            q = g.groupby(x)[["metrics.time_q25_s", "metrics.time_q75_s"]].median()
            err_plus = (q["metrics.time_q75_s"] - agg["y"]).clip(lower=0).tolist()
            err_minus = (agg["y"] - q["metrics.time_q25_s"]).clip(lower=0).tolist()
        out.append({"key": key, "x": agg.index.tolist(), "y": agg["y"].tolist(), "n": agg["n"].tolist(),
                    "err_minus": err_minus, "err_plus": err_plus, "exponent": float(fit_of.get(key, math.nan))})
    return out, fits


def failed_otherwise(data: pd.DataFrame) -> pd.DataFrame:
    """The records that neither finished nor ran out of memory (errors, time-outs, ...): not plotted."""
    return data[~data["status"].isin(["ok", "oom"])]


def oom_points(data: pd.DataFrame, x: str) -> pd.DataFrame:
    """The out-of-memory records with a positive size on ``x``."""
    if "status" not in data.columns or data.empty:
        return data.iloc[0:0]
    oom = data[data["status"] == "oom"]
    return oom[pd.to_numeric(oom[x], errors="coerce") > 0]


def measured_sizes(data: pd.DataFrame, x: str) -> list[float]:
    """The distinct positive sizes on ``x``, sorted."""
    return sorted(set(pd.to_numeric(data[x], errors="coerce").dropna().tolist()) - {0})


# --------------------------------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------------------------------
def accuracy_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The training runs of ``df`` with plain columns for the Accuracy page: ``dataset``, ``fraction`` (numeric),
    ``backbone``, ``epochs``, ``seed``, the figures of :data:`ACCURACY_FIGURES` (numeric), ``samples_seen``
    (:func:`samples_seen`), ``study`` (the file the record came from: one study or sweep writes one store) and
    ``device_name`` (the CPU or GPU model; ``case.device`` where the record names none). One record per run
    (:func:`sslbench.analysis.accuracy.latest_per_run`): a run shared by two stores is one seed, not two."""
    runs = latest_per_run(df[column(df, "kind") == "train"]).copy()  # a run recorded twice is one run
    for k in ("dataset", "fraction", "backbone", "epochs", "seed"):
        runs[k] = column(runs, f"case.{k}")
    for m in ACCURACY_FIGURES:
        runs[m] = _finite(column(runs, f"metrics.{m}"))
    runs["fraction"] = pd.to_numeric(runs["fraction"], errors="coerce")
    runs["samples_seen"] = samples_seen(runs)
    runs["study"] = column(runs, "source").astype(object)
    name = column(runs, "device_name").astype(object)
    runs["device_name"] = name.where(name.notna(), column(runs, "case.device"))
    return runs


def samples_seen(runs: pd.DataFrame) -> pd.Series:
    """How much training each run had: the samples its optimiser saw, ``metrics.steps`` × ``case.batch`` (the
    global batch; the V views of one sample count once). NaN where either is missing or not a finite positive
    number (a run that failed before recording its steps)."""
    batch = _finite(column(runs, "case.batch"))
    if "batch" in runs.columns:
        batch = batch.where(batch.notna(), _finite(runs["batch"]))
    seen = _finite(column(runs, "metrics.steps")) * batch
    return seen.where(seen > 0)


#: the option of the Accuracy page's study filter that keeps the runs of every study
ALL_STUDIES = "(all studies)"


def training_order(runs: pd.DataFrame, by: str) -> list:
    """The values of ``by`` (a study, a data set, a number of epochs, ...), the one with the most training first.

    The rule: the training of a value is the median :func:`samples_seen` of its finished runs (status ok, with a
    step count): how long its typical run trained, so that one long run among many 1-epoch ones does not make
    a study "the most trained". Ties go to the value with more finished runs, then to the larger value (the
    name, for text). Values none of whose runs finished with a step count come last, in the same order."""
    return list(training_by(runs, by).index)


def training_by(runs: pd.DataFrame, by: str) -> pd.Series:
    """The median samples seen by the finished runs of each value of ``by`` (NaN where none finished), in the
    order of :func:`training_order`."""
    if runs.empty or by not in runs.columns:
        return pd.Series(dtype=float)
    seen = runs["samples_seen"] if "samples_seen" in runs.columns else samples_seen(runs)
    finished = (runs["status"] == "ok") & seen.notna() if "status" in runs.columns else seen.notna()
    stats = []
    # the finished runs of every value found by one grouping (a mask over all runs per value was O(runs x values),
    # and a value per file grows with the store: the scale benchmark's accuracy.training_order, issue 21)
    done = seen[finished.to_numpy(dtype=bool)]
    at = done.groupby(runs[by][finished.to_numpy(dtype=bool)], sort=False).indices if len(done) else {}
    none = seen.iloc[0:0]
    for value in choices(runs[by]):
        pos = at.get(value)
        ok = done.iloc[pos] if pos is not None else none
        stats.append((float(ok.median()) if len(ok) else -math.inf, len(ok), value))
    stats.sort(key=lambda t: (t[0], t[1], _sortable(t[2])), reverse=True)
    return pd.Series([m if m > -math.inf else math.nan for m, _, _ in stats], index=[v for _, _, v in stats],
                     dtype=float)


def default_study(runs: pd.DataFrame):
    """The study (records' file) the Accuracy page opens on: the one with the most training
    (:func:`training_order` over ``study``); None when no run names its file."""
    order = training_order(runs, "study")
    return order[0] if order else None


def _sortable(v):
    return (0, float(v), "") if isinstance(v, (int, float, np.integer, np.floating)) else (1, 0.0, str(v))


def _finite(series: pd.Series) -> pd.Series:
    """``series`` as floats, text and infinities as NaN."""
    out = pd.to_numeric(series, errors="coerce").astype(float)
    return out.where(np.isfinite(out))


def accuracy_axes(runs: pd.DataFrame) -> list[str]:
    """The axes of :data:`ACCURACY_AXES` to offer: those with two values or more, else those with any."""
    axes = [a for a in ACCURACY_AXES if a in runs.columns and runs[a].notna().any()]
    return [a for a in axes if runs[a].nunique() >= 2] or axes


def default_accuracy_fixed(runs: pd.DataFrame, other: str, x: str):
    """The value at which to hold ``other`` fixed when plotting against ``x``: among the values under which ``x``
    has the most distinct points, all the data for the fraction (the largest) and the most common one for the
    others."""
    values = choices(runs[other])
    if not values:
        return None
    spread = {v: runs.loc[runs[other] == v, x].nunique() for v in values}
    best = [v for v in values if spread[v] == max(spread.values())]
    return max(best) if other == "fraction" else most_common(runs.loc[runs[other].isin(best), other])


def finished_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ok runs that have ``metric``, each with its ``variant`` (:func:`run_variants`): runs of one regularizer
    with other hyper-parameters or settings are separate series, never pooled."""
    ok = runs[(runs["status"] == "ok") & runs[metric].notna()]
    return ok.assign(variant=run_variants(ok))


def init_floor(ok: pd.DataFrame, x: str, metric: str) -> pd.Series:
    """The accuracy of the untrained network (``init_<metric>``) at each ``x``, averaged over runs: the floor."""
    return ok.groupby(x)[f"init_{metric}"].mean().dropna()


def init_floors(ok: pd.DataFrame, x: str, metric: str) -> dict:
    """:func:`init_floor` of each device (``device_name``), never averaged across devices: ``{device: floor}``,
    devices without a floor left out (one entry keyed None when the runs name no device)."""
    if "device_name" not in ok.columns or ok["device_name"].isna().all():
        floor = init_floor(ok, x, metric)
        return {None: floor} if not floor.empty else {}
    out = {}
    for device, g in ok.groupby("device_name", sort=True):
        floor = init_floor(g, x, metric)
        if not floor.empty:
            out[device] = floor
    return out


def accuracy_series(ok: pd.DataFrame, x: str, metric: str) -> list[dict]:
    """One line per regularizer, variant (:func:`run_variants`: runs with other settings are never pooled) and
    device (``device_name``: runs on a GPU beside runs on a CPU, never pooled): ``regularizer``, ``variant``,
    ``device`` (None when the runs name none), ``index`` (the variant's rank within its regularizer, for the line
    style), ``x``, ``mean``, ``std`` (0 for one run) and ``runs`` of ``metric`` at each x, seeds pooled."""
    ok = ok.assign(variant=run_variants(ok)) if "variant" not in ok.columns else ok
    device = ok["device_name"] if "device_name" in ok.columns else pd.Series(None, index=ok.index, dtype=object)
    ok = ok.assign(_device=device.astype(object).where(device.notna(), ""))
    # each variant's rank within its regularizer, found once (was: a scan of every run and a sort per line)
    rank = {}
    for reg, variants in ok.groupby("regularizer", sort=False)["variant"]:
        rank.update({(reg, v): i for i, v in enumerate(sorted(variants.unique()))})
    out = []
    for (reg, variant, dev), g in ok.groupby(["regularizer", "variant", "_device"], sort=True):
        agg = g.groupby(x)[metric].agg(["mean", "std", "size"]).reset_index()
        out.append({"regularizer": reg, "variant": variant, "device": dev if dev != "" else None,
                    "index": rank[(reg, variant)],
                    "x": agg[x].tolist(), "mean": agg["mean"].tolist(), "std": agg["std"].fillna(0).tolist(),
                    "runs": agg["size"].tolist()})
    return out


def accuracy_by_device(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`sslbench.analysis.accuracy_table` of the runs with ``device_name`` (the CPU or GPU model) in the
    grouping key beside ``device`` (cpu / cuda), so that two GPU models are two rows, not one mean."""
    if runs.empty:
        return pd.DataFrame()
    runs = runs.assign(variant=run_variants(runs))
    keys = ["regularizer", "variant"]
    keys += [k for k in ACCURACY_KEYS[1:] if k in runs.columns or f"case.{k}" in runs.columns]
    keys += ["device_name"] if "device_name" in runs.columns else []
    return accuracy_table(runs, by=keys)


# --------------------------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------------------------
#: the record kind of ``benchmarks/train_throughput.py``
THROUGHPUT_KIND = "train_throughput"
#: the two loops it measures, in the order the page shows them
THROUGHPUT_LOOPS = ("sslbench", "peer")
#: what makes two measurements the same case (both loops run each case; the ratio compares them)
THROUGHPUT_CASE = ("backbone", "batch", "views", "image_shape", "regularizer", "projector", "optimizer")
#: what each loop ran with (they differ between the loops by design: compile on sslbench's, workers on the peer's)
THROUGHPUT_SETTINGS = ("amp", "augment", "compile", "workers")
#: the phases that tile a step, in the order they run (the peer's augmentation runs in its loader's workers,
#: off the step: its ``augment_ms`` is null and ``worker_augment_ms`` says what it costs a worker)
THROUGHPUT_PHASES = ("data_ms", "augment_ms", "fwd_bwd_ms", "optimizer_ms")
#: the figures of a throughput record
THROUGHPUT_FIGURES = ("images_per_s", "view_images_per_s", "step_ms", *THROUGHPUT_PHASES, "worker_augment_ms",
                      "flops_per_step", "tflops", "peak_tflops", "fraction_of_peak")


def throughput_records(df: pd.DataFrame) -> pd.DataFrame:
    """The ``train_throughput`` records of ``df`` with plain columns: ``loop``, :data:`THROUGHPUT_CASE`,
    :data:`THROUGHPUT_SETTINGS`, ``device`` (cpu / cuda), ``device_name`` (the CPU or GPU model the record names,
    else its device; measurements of two devices are never pooled), ``run`` (the file: one invocation of the
    script writes one), ``case_label`` (backbone, B, V and whatever else varies between the cases) and
    :data:`THROUGHPUT_FIGURES` as floats (text, infinities and missing values as NaN)."""
    tp = df[column(df, "kind") == THROUGHPUT_KIND].reset_index(drop=True)
    for k in ("loop", *THROUGHPUT_CASE, *THROUGHPUT_SETTINGS, "device"):
        tp[k] = column(tp, f"case.{k}").astype(object)
    for k in ("batch", "views"):
        tp[k] = pd.to_numeric(tp[k], errors="coerce")
    for m in THROUGHPUT_FIGURES:
        tp[m] = _finite(column(tp, f"metrics.{m}"))
    name = column(tp, "device_name").astype(object)
    name = name.where(name.notna(), tp["device"])
    tp["device_name"] = name.where(name.notna(), "unknown device").astype(str)
    tp["run"] = column(tp, "source").astype(object).where(column(tp, "source").notna(), "").astype(str)
    tp["created"] = pd.to_datetime(column(tp, "created"), utc=True, errors="coerce")
    tp["case_label"] = _case_labels(tp)
    return tp


def _case_labels(tp: pd.DataFrame) -> pd.Series:
    if tp.empty:
        return pd.Series([], index=tp.index, dtype=object)
    varying = [k for k in ("regularizer", "projector", "optimizer", "image_shape")
               if tp[k].astype(str).nunique() > 1]
    labels = []
    for _, r in tp.iterrows():
        text = f"{r['backbone']} B={plain_number(r['batch'])} V={plain_number(r['views'])}"
        labels.append(" ".join([text] + [str(r[k]) for k in varying]))
    return pd.Series(labels, index=tp.index, dtype=object)


def throughput_ok(tp: pd.DataFrame) -> pd.DataFrame:
    """The measurements to plot: status ok and a finite, positive images/s."""
    return tp[(tp["status"] == "ok") & (tp["images_per_s"] > 0)]


def throughput_unplotted(tp: pd.DataFrame) -> pd.DataFrame:
    """The measurements that are listed, not plotted (never as zeros): those that did not finish (``oom``,
    ``error``, ...) and ok ones without a finite images/s; ``why`` says which, with the record's message."""
    bad = tp[~tp.index.isin(throughput_ok(tp).index)]
    why = [(f"{s}: {m}" if isinstance(m, str) and m else str(s)) if s != "ok" else "ok, but no finite images/s"
           for s, m in zip(bad["status"], column(bad, "message"))]
    cols = ["device_name", "run", "loop", "case_label", "status"]
    return bad[cols].assign(why=why).reset_index(drop=True)


def throughput_runs(tp: pd.DataFrame) -> list[str]:
    """The runs (files) holding throughput records, the latest measured first."""
    if tp.empty:
        return []
    last = tp.groupby("run")["created"].max()
    return sorted(last.index.tolist(), key=lambda r: (pd.isna(last[r]), -(last[r].value if pd.notna(last[r]) else 0),
                                                      r))


def throughput_latest_runs(tp: pd.DataFrame) -> list[str]:
    """The default runs: the latest run of each device (``device_name``)."""
    order = throughput_runs(tp)
    out = []
    for _, g in tp.groupby("device_name", sort=True):
        mine = set(g["run"])
        first = next((r for r in order if r in mine), None)
        if first is not None and first not in out:
            out.append(first)
    return [r for r in order if r in out]


def _case_key(tp: pd.DataFrame) -> pd.Series:
    """The fields of :data:`THROUGHPUT_CASE` as text joined by ``|``, one column at a time (a row-wise join took
    3.4 s of the 3.6 s of throughput_ratios at 10^6 records)."""
    if tp.empty:
        return pd.Series([], index=tp.index, dtype=object)
    text = [tp[c].astype(str).tolist() for c in THROUGHPUT_CASE]
    return pd.Series(["|".join(parts) for parts in zip(*text)], index=tp.index, dtype=object)


def throughput_latest(ok: pd.DataFrame) -> pd.DataFrame:
    """One measurement per device, loop and case: the latest (several runs of one device may be chosen), with
    ``repeats`` (how many measurements of it the selection holds). Sorted by case, then device, then loop."""
    if ok.empty:
        return ok.assign(repeats=pd.Series(dtype=int))
    ok = ok.assign(_key=_case_key(ok), _order=ok["created"].fillna(pd.Timestamp(0, tz="UTC")))
    ok = ok.sort_values("_order", kind="stable")
    groups = ok.groupby(["device_name", "loop", "_key"], sort=False, dropna=False)
    latest = groups.tail(1)
    latest = latest.assign(repeats=groups["_key"].transform("size").loc[latest.index])
    return _by_case(latest, "device_name", "loop").drop(columns=["_key", "_order"])


def _by_case(data: pd.DataFrame, *then: str) -> pd.DataFrame:
    """``data`` sorted by backbone, batch, views and case label, then by ``then`` (loops in the order of
    :data:`THROUGHPUT_LOOPS`)."""
    loop_rank = {loop: i for i, loop in enumerate(THROUGHPUT_LOOPS)}
    keys = pd.DataFrame({"a": data["backbone"].astype(str), "b": data["batch"].astype(float),
                         "c": data["views"].astype(float), "d": data["case_label"].astype(str)}, index=data.index)
    for i, k in enumerate(then):
        keys[f"t{i}"] = (data[k].map(lambda v: loop_rank.get(v, len(loop_rank))) * 1.0 if k == "loop"
                         else data[k].astype(str))
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return data.loc[order]


def throughput_ratios(tp: pd.DataFrame) -> pd.DataFrame:
    """sslbench / peer images/s of each case measured in one run (file) on one device (``device_name``): every ok
    sslbench measurement paired with the ok peer measurement of the same case (:data:`THROUGHPUT_CASE`) in the
    same run on the same device, the nearest in time (of equally near ones the first measured; a measurement
    without a time, or a case whose peers have none, takes the last peer). Never across runs or devices; a case
    with one loop only has no ratio. Columns: ``device_name``, ``run``, ``case_label``, ``backbone``, ``batch``,
    ``views``, ``sslbench_images_per_s``, ``peer_images_per_s``, ``ratio``, ``created`` (the sslbench
    measurement's). The cases are grouped once and paired with a binary search over their peers' times, not row by
    row (the scale benchmark's throughput.ratios: 50 s at 10^6 records, issue 21)."""
    cols = ["device_name", "run", "case_label", "backbone", "batch", "views", "sslbench_images_per_s",
            "peer_images_per_s", "ratio", "created"]
    ok = throughput_ok(tp)
    if ok.empty:
        return pd.DataFrame(columns=cols)
    ok = ok.reset_index(drop=True)
    keys = pd.DataFrame({"device_name": ok["device_name"], "run": ok["run"], "_key": _case_key(ok)})
    gid = keys.groupby(["device_name", "run", "_key"], sort=True, dropna=False).ngroup()
    ours, peer = _paired_peers(gid.to_numpy(), ok["loop"].to_numpy(dtype=object), ok["created"])
    if not len(ours):
        return pd.DataFrame(columns=cols)
    a, b = ok.iloc[ours].reset_index(drop=True), ok["images_per_s"].to_numpy()[peer]
    out = pd.DataFrame({"device_name": a["device_name"], "run": a["run"], "case_label": a["case_label"],
                        "backbone": a["backbone"], "batch": a["batch"], "views": a["views"],
                        "sslbench_images_per_s": a["images_per_s"], "peer_images_per_s": b,
                        "ratio": a["images_per_s"].to_numpy() / b, "created": a["created"]}, columns=cols)
    # the dtypes a frame built from the rows' values has (text columns as str where every value is text)
    out = pd.DataFrame({c: out[c].tolist() if out[c].dtype == object else out[c] for c in cols}, columns=cols)
    return _by_case(out, "device_name", "run").reset_index(drop=True)


def _paired_peers(gid: np.ndarray, loop: np.ndarray, created: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the sslbench measurements that have a peer in their group, group by group in group order,
    and the position of each one's peer): the peer of the same group nearest in time, the first (lowest position)
    of equally near ones; the group's last peer for a measurement without a time or a group whose peers have none."""
    when = pd.to_datetime(created, utc=True, errors="coerce")
    timed = when.notna().to_numpy()
    ns = np.where(timed, when.array.asi8, 0) if len(when) else np.zeros(0, dtype=np.int64)
    order = np.argsort(gid, kind="stable")  # each group's rows together, in their own order
    cuts = np.flatnonzero(np.diff(gid[order])) + 1
    big = np.iinfo(np.int64).max
    ours_out, peer_out = [], []
    for idx in np.split(order, cuts):
        o, p = idx[loop[idx] == "sslbench"], idx[loop[idx] == "peer"]
        if not len(o) or not len(p):
            continue
        match = np.full(len(o), p[-1])
        pt = p[timed[p]]
        if len(pt):
            srt = pt[np.argsort(ns[pt], kind="stable")]  # by time; equal times keep the lower position first
            sv, t = ns[srt], ns[o]
            j = np.searchsorted(sv, t, side="left")  # the first peer at or after t
            jr, jl = np.minimum(j, len(sv) - 1), np.maximum(j - 1, 0)
            gap_r = np.where(j < len(sv), sv[jr] - t, big)
            gap_l = np.where(j > 0, t - sv[jl], big)
            first_r = srt[jr]  # j is the first index of its time: the lowest position of that time
            first_l = srt[np.searchsorted(sv, sv[jl], side="left")]
            near = np.where(gap_l < gap_r, first_l, np.where(gap_r < gap_l, first_r, np.minimum(first_l, first_r)))
            match = np.where(timed[o], near, match)
        ours_out.append(o)
        peer_out.append(match)
    if not ours_out:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    return np.concatenate(ours_out), np.concatenate(peer_out)


def throughput_phases(latest: pd.DataFrame) -> list[dict]:
    """The per-phase split of each step, one dict per device (never pooled): ``device``, ``case`` and ``loop``
    (one pair per bar), ``phases`` (``{phase: [ms or None]}`` over :data:`THROUGHPUT_PHASES`, None where the
    loop has no such phase on its step, e.g. the peer's augmentation in its workers), ``step_ms`` and
    ``worker_augment_ms`` (None where not measured)."""
    def plain(values):
        return [None if pd.isna(v) else float(v) for v in values]

    out = []
    for device, g in latest.groupby("device_name", sort=True):
        out.append({"device": device, "case": g["case_label"].astype(str).tolist(),
                    "loop": g["loop"].astype(str).tolist(),
                    "phases": {p.removesuffix("_ms"): plain(g[p]) for p in THROUGHPUT_PHASES},
                    "step_ms": plain(g["step_ms"]), "worker_augment_ms": plain(g["worker_augment_ms"])})
    return out


# --------------------------------------------------------------------------------------------------------------
# Regressions
# --------------------------------------------------------------------------------------------------------------
def commit_order(table: pd.DataFrame) -> list[str]:
    """The commits of a :func:`regressions` table in the order they were measured."""
    return table.sort_values("created", kind="stable").drop_duplicates("commit")["commit"].astype(str).tolist()


def flagged(table: pd.DataFrame, col: str) -> list[str]:
    """The distinct values of ``col`` among the rows of a :func:`regressions` table with a change, sorted."""
    return sorted(table.loc[table["change"] != "", col].astype(str).unique().tolist())


# --------------------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------------------
_NOT_TERMS = {"step", "epoch", "time", "elapsed_s", "images_per_s", "memory_bytes", "peak_memory_bytes", "lr",
              "run_id", "source", "event", "message", "status"}


def runs_latest_first(logs: pd.DataFrame) -> list[str]:
    """The run ids of the per-step logs, the latest started first."""
    run_ids = logs["run_id"].astype(str).unique().tolist()
    if "time" in logs.columns:
        first_seen = logs.groupby("run_id", sort=False)["time"].min()
        run_ids.sort(key=lambda r: -(first_seen.get(r) or 0))
    return run_ids


def loss_terms(steps: pd.DataFrame) -> list[str]:
    """The numeric logged figures of step events that are loss terms: ``loss`` first, then the others sorted."""
    terms = [c for c in steps.columns if c not in _NOT_TERMS and not c.startswith(("case.", "metrics."))
             and pd.api.types.is_numeric_dtype(steps[c]) and steps[c].notna().any()]
    return (["loss"] if "loss" in terms else []) + sorted(t for t in terms if t != "loss")


def run_description(logs: pd.DataFrame, run_id: str, status: str | None = None) -> str:
    """A run in a few words: regularizer, data set, D, V, N, fraction, lr, seed, the id's start and its status
    when not ok."""
    first = logs[logs["run_id"] == run_id].iloc[0]
    bits = [str(first.get("case.regularizer", "?"))]
    for k, short in (("case.dataset", ""), ("case.dim", "D="), ("case.views", "V="), ("case.batch", "N="),
                     ("case.fraction", "frac="), ("case.lr", "lr="), ("case.seed", "seed=")):
        v = first.get(k)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            bits.append(f"{short}{plain_number(v)}")
    return " ".join(bits) + f" [{run_id[:8]}]" + (f" {status}" if status and status != "ok" else "")


def run_statuses(df: pd.DataFrame) -> dict[str, str]:
    """``{run id: status}`` of the training records (a run's id is its record's id)."""
    train = (column(df, "kind") == "train").to_numpy(dtype=bool)
    if not train.any():
        return {}
    # the two columns first, then the rows: a row filter of the whole frame copied every column (2 s at 10^6)
    return dict(zip(df["id"][train].astype(str), df["status"][train].astype(str)))


def plain_number(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)
