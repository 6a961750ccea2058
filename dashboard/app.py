"""The sslbench dashboard: ``streamlit run dashboard/app.py`` (or ``sslbench dashboard``), served on localhost.

Six pages, picked in the sidebar (and in the URL: ``?page=Scaling``, ``Accuracy``, ``Throughput``,
``Regressions``, ``Runs``, ``Claims``):

* **Scaling** — time and memory of one regularizer step against D, N or V on log-log axes, one line per
  regularizer / algorithm, the fitted exponent in the legend, out-of-memory cases marked, the crossover of two
  series annotated.
* **Accuracy** — linear-probe / kNN accuracy of training runs against V, the data set fraction or D, next to the
  same network at initialisation (the floor), and accuracy against training time. It opens on the study with
  the most training (:func:`sslbench.analysis.views.training_order`); runs of several devices are series side by
  side, never pooled.
* **Throughput** — ``benchmarks/train_throughput.py``'s measurements: images/s and fraction of peak per loop
  (sslbench's, a peer-style one) and case, the per-phase split of a step, and the sslbench / peer ratio of each
  case measured in one run on one device; devices side by side, never pooled; failed cases listed.
* **Regressions** — each asv benchmark across commits, changes beyond a threshold highlighted.
* **Runs** — training curves (loss terms, throughput, memory, kNN accuracy) of chosen runs.
* **Claims** — the seed papers' claims as a verdict table (:mod:`sslbench.analysis.report`'s verdict functions on the
  loaded records), the figures behind each verdict and the command that produces missing data.

The results folder is ``$SSLBENCH_RESULTS`` (what ``sslbench dashboard --results DIR`` sets) or ``results/`` of
this repository, and can be changed in the sidebar; extra asv results directories are listed in
``$SSLBENCH_ASV`` (separated by ``os.pathsep``; default ``.asv/results`` beside the results folder). The records
are held once per folder for all sessions (:class:`sslbench.analysis.live.LiveResults`); when a store grew, only its
appended lines are read, so new results show up on the next rerun (docs/dashboard-at-scale.md). The
dashboard only reads records (through :mod:`sslbench.analysis`); it never trains or measures, and needs no torch.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts dashboard/ first, not the repository
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402
from plotly.colors import qualitative  # noqa: E402

from sslbench import analysis as A  # noqa: E402
from sslbench.analysis import live as L  # noqa: E402
from sslbench.analysis import views as V  # noqa: E402
from sslbench.records.text import markdown_text as M  # noqa: E402 - store strings in st.markdown
from sslbench.records.text import plotly_text as P  # noqa: E402 - store strings in plotly names, hovers

RESULTS_ENV = "SSLBENCH_RESULTS"
ASV_ENV = "SSLBENCH_ASV"
PAGES = ("Scaling", "Accuracy", "Throughput", "Regressions", "Runs", "Claims")
KIND_NAMES = {
    "regularizer_bench": "regularizer_bench (sslbench bench / sweep)",
    "side_by_side": "side_by_side (ours vs the official code)",
    "pytest_benchmark": "pytest_benchmark",
}
AXIS_SHORT = {"dim": "D", "batch": "N", "views": "V", "fraction": "data fraction"}
#: line styles of the variants of one regularizer (its colour, another dash per hyper-parameter setting)
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
#: marker symbols of the devices on one chart (a GPU's runs beside a CPU's, never pooled)
MARKERS = ("circle", "diamond", "square", "triangle-up", "cross", "star")
# plotted unit of each figure: (column, divisor, axis title)
Y_DISPLAY = {
    "time_s": (1e-3, "time per forward+backward (ms)"),
    "memory_bytes": (2.0 ** 20, "memory of the step (MiB, peak above the inputs)"),
    "peak_bytes": (2.0 ** 20, "peak memory (MiB, inputs and runtime included)"),
}
#: the flattened columns the Scaling page reads besides the plain ones (the quartiles of the error bars)
SCALING_EXTRA = ("metrics.time_q25_s", "metrics.time_q75_s")
#: the columns the Scaling page's figure, crossing pairs and crossover table read, once its filters are applied:
#: each of their selections then copies these, not every column of the records
FIGURE_COLUMNS = ("kind", "status", "label", "regularizer", "algorithm", "impl", "device_name", "threads", "dtype",
                  "dim", "batch", "views", "time_s", "memory_bytes", "peak_bytes", *SCALING_EXTRA)
PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Dark24


# ==============================================================================================================
# Data (cached on the files' modification times)
# ==============================================================================================================
@st.cache_resource(show_spinner=False, max_entries=4)
def results_of(root: str, asv: tuple[str, ...] | None) -> L.LiveResults:
    """The one holder of ``root``'s records (:class:`sslbench.analysis.live.LiveResults`), shared by every session
    and rerun: keyed on the folder, not on its files' fingerprint, so a change of a file updates the one frame
    (reading only the appended lines) instead of caching another copy of it."""
    return L.LiveResults(root, asv)


def load(root: str, asv: tuple[str, ...] | None) -> tuple[pd.DataFrame, list[str]]:
    """All records under ``root`` (:func:`sslbench.analysis.load_results`, the columns of
    :data:`sslbench.analysis.live.DASHBOARD_COLUMNS`) and the warnings reading them gave; after a change only the
    appended lines are read."""
    with st.spinner("Reading results ..."):
        return results_of(root, asv).get()


@st.cache_data(show_spinner="Reading training logs ...", max_entries=1)  # one copy: the latest files' logs
def load_logs(root: str, stamp: tuple) -> pd.DataFrame:
    return A.load_run_logs(root)


def colour_map(labels) -> dict:
    """One colour per series, the same on every chart."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(map(str, labels))))}


def pick(label: str, options: list, *, key: str, default=None, sidebar=True, **kw):
    """A selectbox over ``options`` starting at ``default`` (or the first)."""
    where = st.sidebar if sidebar else st
    index = options.index(default) if default in options else 0
    return where.selectbox(label, options, index=index, key=key, **kw)


fmt_value = V.plain_number


def show(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


def base_layout(fig: go.Figure, title: str, x_title: str, y_title: str, *, log_x=True, log_y=True) -> go.Figure:
    # titles hold store strings (devices, benchmark names): escaped as plotly renders a subset of HTML
    title, x_title, y_title = P(title), P(x_title), P(y_title)
    fig.update_layout(title=title, template="plotly_white", height=520, margin=dict(l=60, r=20, t=60, b=50),
                      legend=dict(font=dict(size=11)), hovermode="closest")
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear", showgrid=True)
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear", showgrid=True)
    return fig


# ==============================================================================================================
# Scaling
# ==============================================================================================================
def scaling_figure(data: pd.DataFrame, x: str, y: str, colours: dict, *, title: str, pair=None,
                   suffix_device: bool = False, min_points: int = 3, fit_from: float | None = None):
    """Log-log lines of ``y`` against ``x``, one per series (label, and device when several), the fitted
    exponent in each name, OOM cases as red crosses along the top, the crossover of ``pair`` annotated.
    Returns (figure, fits table, crossover or None)."""
    scale, y_title = Y_DISPLAY[y]
    fig = go.Figure()
    series_key = ["label", "device_name"] if suffix_device else ["label"]
    lines, fits = V.scaling_series(data, x, y, series_key, min_points=min_points, fit_from=fit_from)
    ymax = 0.0
    for line in lines:
        key, alpha = line["key"], line["exponent"]
        name = P(key[0]) + (f" @ {P(key[1])}" if suffix_device else "")
        name += f"  (α={alpha:.2f})" if np.isfinite(alpha) else "  (α: too few points)"
        error_y = None
        if line["err_plus"] is not None:
            error_y = dict(type="data", symmetric=False, array=[e / scale for e in line["err_plus"]],
                           arrayminus=[e / scale for e in line["err_minus"]], thickness=1, width=3)
        ys = [v / scale for v in line["y"]]
        ymax = max(ymax, max(ys))
        fig.add_trace(go.Scatter(
            x=line["x"], y=ys, mode="lines+markers", name=name, error_y=error_y,
            line=dict(color=colours.get(str(key[0]))), marker=dict(size=7),
            meta=dict(series=str(key[0]), exponent=None if not np.isfinite(alpha) else float(alpha)),
            hovertemplate=f"{name}<br>{AXIS_SHORT[x]}=%{{x}}<br>%{{y:.4g}}<extra></extra>"))
    # out-of-memory cases: at the top of the chart, where the series could not go
    # one marker per series and size: the records of one case that ran out of memory again sit on the same spot
    oom = V.oom_points(data, x).drop_duplicates(["label", x])
    if not oom.empty:
        ceiling = ymax * 2 if ymax > 0 else 1.0
        fig.add_trace(go.Scatter(
            x=pd.to_numeric(oom[x]).tolist(), y=[ceiling] * len(oom), mode="markers+text",
            name="out of memory (OOM)", text=["OOM"] * len(oom), textposition="top center",
            marker=dict(symbol="x", size=13, color="crimson", line=dict(width=2, color="crimson")),
            customdata=[P(v) for v in oom["label"].astype(str)],
            hovertemplate=f"%{{customdata}}: out of memory at {AXIS_SHORT[x]}=%{{x}}<extra></extra>"))
    xover = None
    if pair is not None:
        a, b = pair
        xover = A.crossover(data, a, b, x=x, y=y)
        if xover is not None:
            top = ymax * 1.3 if ymax > 0 else 1.0
            low = min((min(t.y) for t in fig.data if t.y is not None and len(t.y) and t.name != "out of memory (OOM)"),
                      default=xover.y / scale)
            fig.add_trace(go.Scatter(
                x=[xover.x, xover.x], y=[low / 1.3, top], mode="lines", showlegend=False, hoverinfo="skip",
                line=dict(color="black", dash="dot", width=1), name="crossover line"))
            fig.add_trace(go.Scatter(
                x=[xover.x], y=[xover.y / scale], mode="markers+text",
                name=f"crossover at {AXIS_SHORT[x]}≈{xover.x:.4g} ({P(xover.lower_after)} lower beyond)",
                text=[f"{AXIS_SHORT[x]}≈{xover.x:.0f}"], textposition="bottom right",
                marker=dict(symbol="star", size=16, color="black"),
                hovertemplate=(f"{P(xover.lower_before)} / {P(xover.lower_after)} cross at {AXIS_SHORT[x]}≈%{{x:.4g}}"
                               "<extra></extra>")))
    base_layout(fig, title, A.X_COLUMNS[x], y_title)
    xs = V.measured_sizes(data, x)
    if 0 < len(xs) <= 12:  # label the measured sizes rather than plotly's 2, 5, 10 ticks
        fig.update_xaxes(tickmode="array", tickvals=xs, ticktext=[fmt_value(float(v)) for v in xs])
    fit_range = f", fitted over {AXIS_SHORT[x]} ≥ {fmt_value(float(fit_from))}" if fit_from else ""
    fig.update_layout(legend_title_text=f"series (fitted exponent α: y ∝ {AXIS_SHORT[x]}^α{fit_range})")
    return fig, fits, xover


def memo(held: L.LiveResults | None, key: tuple, compute):
    """``compute()``, once per version of the records and ``key`` (the page and every choice it depends on),
    kept with the records (:meth:`sslbench.analysis.live.LiveResults.derived`): a redraw or a new session with the
    same choices reuses it; an append computes it again."""
    return held.derived(key, lambda _frame: compute()) if held is not None else compute()


def page_scaling(df: pd.DataFrame, colours: dict, held: L.LiveResults | None = None) -> None:
    st.header("Scaling: time and memory against D, N and V")
    data = L.narrow(df, A.SCALING_KINDS, SCALING_EXTRA)  # its rows and columns only, before any filter
    if data.empty:
        st.info("No regularizer benchmarks in these results (records of kind "
                f"{', '.join(A.SCALING_KINDS)}). Produce some with:")
        st.code("sslbench sweep --kind bench --regularizers barlow_twins vicreg --algorithms cross_correlation gram "
                "--dims 64 256 1024 4096\npython benchmarks/side_by_side.py", language="bash")
        return
    sb = st.sidebar
    sb.subheader("Filters")
    kinds = [k for k in A.SCALING_KINDS if (data["kind"] == k).any()]
    kind = pick("Records", kinds, key="sc_kind", format_func=lambda k: KIND_NAMES.get(k, k))
    data = data[data["kind"] == kind]
    devices = V.choices(data["device_name"], by_count=True)
    chosen_devices = sb.multiselect("Device", devices, default=devices[:1], key="sc_device")
    data = V.keep(data, "device_name", chosen_devices)
    sel: list = ["scaling", kind, tuple(chosen_devices)]  # every choice the figures depend on: their cache key
    if data.empty:
        st.warning("Choose at least one device in the sidebar.")
        return
    threads = V.choices(data["threads"]) if "threads" in data.columns else []
    if len(threads) > 1 and len(chosen_devices) == 1:  # timings with different thread counts do not mix
        th = pick("torch threads", threads, key="sc_threads", default=V.most_common(data["threads"]),
                  format_func=fmt_value)
        data = data[data["threads"] == th]
        sel.append(("threads", th))
    axes = V.scaling_axes(data)
    x = sb.radio("Scale in", axes, key="sc_x", horizontal=True, format_func=lambda a: AXIS_SHORT[a])
    y = sb.radio("Metric", list(Y_DISPLAY), key="sc_y",
                 format_func=lambda m: {"time_s": "time", "memory_bytes": "memory (step)",
                                        "peak_bytes": "peak memory"}[m])
    fixed = {}
    for other in A.OTHER_AXES[x]:
        values = V.choices(data[other])
        if not values:
            continue
        fixed[other] = pick(f"{AXIS_SHORT[other]} (fixed)", values, key=f"sc_fix_{x}_{other}",
                            default=V.default_fixed(data, other, x), format_func=fmt_value)
        data = data[data[other] == fixed[other]]
    sel += [x, y, tuple(fixed.items())]
    dtypes = V.choices(data["dtype"], by_count=True)
    dtypes.sort()
    if len(dtypes) > 1:
        dt = pick("dtype", dtypes, key="sc_dtype", default="float32" if "float32" in dtypes else dtypes[0])
        data = data[data["dtype"].astype(str) == dt]
        sel.append(("dtype", dt))
    regs = sorted(V.choices(data["regularizer"], by_count=True))
    chosen = sb.multiselect("Regularizers", regs, default=regs, key="sc_regs")
    data = V.keep(data, "regularizer", chosen)
    sel.append(tuple(chosen))
    algos = sorted(data["algorithm"].fillna("(default)").astype(str).unique().tolist())
    if len(algos) > 1:
        chosen_algos = sb.multiselect("Algorithms", algos, default=algos, key="sc_algos")
        data = data[data["algorithm"].fillna("(default)").astype(str).isin(chosen_algos)]
        sel.append(("algorithms", tuple(chosen_algos)))
    impls = sorted(data["impl"].dropna().astype(str).unique().tolist())
    if len(impls) > 1:
        chosen_impls = sb.multiselect("Implementation", impls, default=impls, key="sc_impl",
                                      format_func=lambda i: {"official": "official code", "sslbench": "sslbench"}.get(i, i))
        data = data[data["impl"].astype(str).isin(chosen_impls)]
        sel.append(("impl", tuple(chosen_impls)))
    min_points = sb.number_input("Fit: minimum points", min_value=2, max_value=10, value=3, key="sc_minpts")
    sizes = V.choices(pd.to_numeric(data[x], errors="coerce"))
    fit_from = pick(f"Fit: from {AXIS_SHORT[x]} ≥", sizes, key=f"sc_fitfrom_{x}", format_func=fmt_value,
                    help="fit the exponents over the larger sizes only (the asymptotic regime)") if sizes else None

    if data.empty:
        st.warning("Nothing left to plot with these filters.")
        return
    # the pairs that can cross: series of the same regularizer
    sel = tuple(sel)
    whole = data  # the filtered records (the caption of failed cases); the figures read a few of its columns
    data = data[[c for c in FIGURE_COLUMNS if c in data.columns]]
    # the crossovers of every pair once: the table below, and the pairs' order (those that cross first) from it
    table = memo(held, (*sel, "crossovers"), lambda: A.crossover_table(data, x=x, y=y, kinds=[kind])) \
        if len(chosen_devices) == 1 else pd.DataFrame()
    pairs = memo(held, (*sel, "pairs"), lambda: L.crossing_pairs(data, x, y, table)) if len(chosen_devices) == 1 \
        else []
    options = ["(none)"] + [f"{a}  vs  {b}" for a, b in pairs]
    choice = pick("Annotate the crossover of", options, key=f"sc_pair_{x}_{y}",
                  default=options[1] if len(options) > 1 else "(none)",
                  help="pairs of the same regularizer; those that cross are listed first")
    pair = tuple(choice.split("  vs  ")) if choice != "(none)" else None

    where = ", ".join(f"{AXIS_SHORT[k]}={fmt_value(v)}" for k, v in fixed.items())
    devs = " / ".join(chosen_devices)
    title = f"{Y_DISPLAY[y][1].split(' (')[0]} vs {AXIS_SHORT[x]} ({where}) on {devs}"
    fit_from = fit_from if sizes and fit_from != sizes[0] else None
    fig, fits, xover = memo(held, (*sel, "figure", pair, int(min_points), fit_from), lambda: scaling_figure(
        data, x, y, colours, title=title, pair=pair, suffix_device=len(chosen_devices) > 1,
        min_points=int(min_points), fit_from=fit_from))
    show(fig, "chart_scaling")
    failed = V.failed_otherwise(whole)
    if not failed.empty:
        st.caption(f"{len(failed)} case(s) failed otherwise ({M(', '.join(sorted(map(str, failed['status'].unique()))))}); "
                   "not plotted.")
    if pair is not None:
        if xover is not None:
            st.markdown(f"**Crossover**: {M(xover.lower_before)} is lower below {AXIS_SHORT[x]} ≈ {xover.x:.4g}, "
                        f"{M(xover.lower_after)} above it.")
        else:
            st.markdown(f"**No crossover** of {M(pair[0])} and {M(pair[1])} in the measured range.")
    c1, c2 = st.columns(2)
    with c1:
        st.subheader("Fitted exponents")
        if not fits.empty:
            shown = fits.drop(columns=["x", "y"]).assign(
                exponent=fits["exponent"].round(3), r2=fits["r2"].round(3),
                prefactor=[f"{v:.3g}" for v in fits["prefactor"]])
            st.dataframe(shown.rename(columns={"exponent": "α", "r2": "R²"}), hide_index=True, key="tbl_fits")
    with c2:
        st.subheader("Crossovers")
        if table.empty:
            st.caption("No pairs of series of the same regularizer here.")
        else:
            st.dataframe(table[["a", "b", "crossover", "note"]].assign(crossover=table["crossover"].round(1)),
                         hide_index=True, key="tbl_xover")


# ==============================================================================================================
# Accuracy
# ==============================================================================================================
def page_accuracy(df: pd.DataFrame, colours: dict) -> None:
    st.header("Accuracy: linear probe and kNN after pretraining")
    runs = V.accuracy_runs(df)
    if runs.empty:
        st.info("No training runs in these results (records of kind train). Produce some with:")
        st.code("sslbench train --regularizer barlow_twins          # -> results/train.jsonl\n"
                "sslbench sweep --kind train --regularizers barlow_twins vicreg --views 2 4 --fractions 0.25 1 "
                "--epochs 2   # -> results/sweeps/", language="bash")
        return
    sb = st.sidebar
    sb.subheader("Filters")
    # the study (the store one study or sweep wrote) with the most training first: V.training_order's rule
    seen = V.training_by(runs, "study")
    studies = list(seen.index)
    if studies:
        study = pick("Study", studies + ([V.ALL_STUDIES] if len(studies) > 1 else []), key="acc_study",
                     default=V.default_study(runs),
                     format_func=lambda s: s if s == V.ALL_STUDIES or pd.isna(seen.get(s)) else
                     f"{s} (median run: {seen[s]:,.0f} samples seen)",
                     help="the records' file; the one whose finished runs saw the most samples (median of steps × "
                          "batch) comes first and is the default")
        if study != V.ALL_STUDIES:
            runs = runs[runs["study"] == study]
    for col, label in (("dataset", "Data set"), ("epochs", "Epochs")):  # the most trained first, as for the study
        values = V.training_order(runs, col)
        if len(values) > 1:
            v = pick(label, values, key=f"acc_{col}", format_func=fmt_value)
            runs = runs[runs[col] == v]
    # devices beside each other: one series per device model (a GPU's runs are never pooled with a CPU's)
    devices = V.choices(runs["device_name"], by_count=True)
    if len(devices) > 1:
        chosen_devices = sb.multiselect("Devices", devices, default=devices, key="acc_devices")
        runs = V.keep(runs, "device_name", chosen_devices)
    metric = sb.radio("Accuracy", ["linear_top1", "knn_top1"], key="acc_metric", horizontal=True,
                      format_func=lambda m: {"linear_top1": "linear probe", "knn_top1": "kNN"}[m])
    x = sb.radio("Against", V.accuracy_axes(runs), key="acc_x", horizontal=True,
                 format_func=lambda a: AXIS_SHORT[a])
    fixed = {}
    for other in [a for a in V.ACCURACY_AXES if a != x]:
        values = V.choices(runs[other])
        if len(values) > 1:
            fixed[other] = pick(f"{AXIS_SHORT[other]} (fixed)", values, key=f"acc_fix_{x}_{other}",
                                default=V.default_accuracy_fixed(runs, other, x), format_func=fmt_value)
            runs = runs[runs[other] == fixed[other]]
    for extra in ("backbone",):
        values = runs[extra].dropna().astype(str).unique().tolist() if extra in runs.columns else []
        if len(values) > 1:
            v = pick(extra.capitalize(), sorted(values), key=f"acc_{extra}", default=str(V.most_common(runs[extra])))
            runs = runs[runs[extra].astype(str) == v]
    regs = sorted(V.choices(runs["regularizer"], by_count=True))
    chosen = sb.multiselect("Regularizers", regs, default=regs, key="acc_regs")
    runs = V.keep(runs, "regularizer", chosen)
    ok = V.finished_runs(runs, metric)
    if ok.empty:
        st.warning("No finished runs with this accuracy under these filters.")
        return
    name = {"linear_top1": "linear-probe top-1 (%)", "knn_top1": "kNN top-1 (%)"}[metric]
    several = ok["device_name"].nunique() > 1
    symbols = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(sorted(ok["device_name"].dropna().astype(str)
                                                                         .unique()))}

    def at(device) -> str:
        return f" @ {P(device)}" if several and device is not None else ""

    fig = go.Figure()
    for line in V.accuracy_series(ok, x, metric):
        variant = P(line["variant"]) + at(line["device"])
        fig.add_trace(go.Scatter(
            x=line["x"], y=line["mean"], mode="lines+markers", name=variant,
            error_y=dict(type="data", array=line["std"], visible=True, thickness=1),
            line=dict(color=colours.get(str(line["regularizer"])), dash=DASHES[line["index"] % len(DASHES)]),
            marker=dict(symbol=symbols.get(str(line["device"]), "circle")), customdata=line["runs"],
            hovertemplate=f"{variant}<br>{AXIS_SHORT[x]}=%{{x}}<br>%{{y:.2f}} % (%{{customdata}} run(s))"
                          "<extra></extra>"))
    for device, init in V.init_floors(ok, x, metric).items():
        fig.add_trace(go.Scatter(
            x=init.index.tolist(), y=init.tolist(), mode="lines+markers",
            name="at initialisation (floor)" + at(device),
            line=dict(color="grey", dash="dash"), marker=dict(symbol="square-open"),
            hovertemplate=f"untrained network<br>{AXIS_SHORT[x]}=%{{x}}<br>%{{y:.2f}} %<extra></extra>"))
    where = ", ".join(f"{AXIS_SHORT[k]}={fmt_value(v)}" for k, v in fixed.items())
    base_layout(fig, f"{name} vs {AXIS_SHORT[x]}" + (f" ({where})" if where else ""), AXIS_SHORT[x], name,
                log_x=x in ("dim", "fraction") and (ok[x] > 0).all(), log_y=False)
    show(fig, "chart_accuracy")

    fig2 = go.Figure()
    device_of = ok["device_name"].astype(object).where(ok["device_name"].notna(), None)
    for (reg, variant, device), g in ok.assign(_device=device_of.fillna("")).groupby(
            ["regularizer", "variant", "_device"], sort=True):
        g = g[g["train_time_s"] > 0]
        label = P(variant) + at(device or None)
        hover = [f"{label} {AXIS_SHORT[x]}={fmt_value(v)} seed={s}" for v, s in zip(g[x], g["seed"])]
        fig2.add_trace(go.Scatter(
            x=g["train_time_s"].tolist(), y=g[metric].tolist(), mode="markers", name=label,
            marker=dict(size=10, color=colours.get(str(reg)), symbol=symbols.get(str(device), "circle")), text=hover,
            hovertemplate="%{text}<br>%{x:.0f} s<br>%{y:.2f} %<extra></extra>"))
    timed = ok[ok["train_time_s"] > 0]
    for device, g in timed.groupby(device_of.fillna("").loc[timed.index], sort=True):
        floor = g[f"init_{metric}"].dropna()
        if not floor.empty:
            fig2.add_trace(go.Scatter(x=[g["train_time_s"].min(), g["train_time_s"].max()], y=[floor.mean()] * 2,
                                      mode="lines", name="at initialisation (floor)" + at(device or None),
                                      line=dict(color="grey", dash="dash")))
    base_layout(fig2, f"time to accuracy: {name} vs training time", "training time (s)", name, log_y=False)
    show(fig2, "chart_time_to_accuracy")

    st.subheader("Runs, seeds pooled" + (" (one row per device model)" if several else ""))
    st.dataframe(V.accuracy_by_device(runs), hide_index=True, key="tbl_accuracy")


# ==============================================================================================================
# Throughput
# ==============================================================================================================
LOOP_COLOURS = {"sslbench": PALETTE[0], "peer": PALETTE[1]}
#: bar patterns of the devices on one chart (side by side, never pooled)
PATTERNS = ("", "/", "x", ".", "\\", "+", "-", "|")
PHASE_COLOURS = {"data": "#8c8c8c", "augment": "#f2a541", "fwd_bwd": "#3a6ea5", "optimizer": "#7fb069"}
THROUGHPUT_COMMAND = ("python benchmarks/train_throughput.py           # the full grid on CUDA -> results/throughput/\n"
                      "python benchmarks/train_throughput.py --smoke   # a tiny CPU subset, seconds")


def throughput_bars(latest: pd.DataFrame, metric: str, *, title: str, y_title: str, scale: float = 1.0,
                    fmt: str = ".4g") -> go.Figure:
    """Grouped bars of ``metric`` per case: one trace per device and loop (colour: loop, pattern: device); a
    missing value leaves a gap, never a zero."""
    cases = list(dict.fromkeys(latest["case_label"].astype(str)))
    devices = sorted(latest["device_name"].unique())
    several = len(devices) > 1
    fig = go.Figure()
    for d_i, device in enumerate(devices):
        for loop in [lp for lp in V.THROUGHPUT_LOOPS if lp in set(latest["loop"])] + sorted(
                set(latest["loop"].astype(str)) - set(V.THROUGHPUT_LOOPS)):
            g = latest[(latest["device_name"] == device) & (latest["loop"] == loop)]
            if g.empty:
                continue
            values = dict(zip(g["case_label"].astype(str), g[metric]))
            ys = [None if pd.isna(values.get(c)) else float(values[c]) * scale for c in cases]
            name = P(loop) + (f" @ {P(device)}" if several else "")
            fig.add_trace(go.Bar(
                x=cases, y=ys, name=name, marker=dict(color=LOOP_COLOURS.get(loop, PALETTE[2]),
                                                      pattern=dict(shape=PATTERNS[d_i % len(PATTERNS)])),
                hovertemplate=f"{name}<br>%{{x}}<br>%{{y:{fmt}}}<extra></extra>"))
    base_layout(fig, title, "case (backbone, batch B, views V)", y_title, log_x=False, log_y=False)
    fig.update_layout(barmode="group", hovermode="x")
    return fig


def page_throughput(df: pd.DataFrame) -> None:
    st.header("Throughput: sslbench's training loop against a peer-style loop, same device, same run")
    tp = V.throughput_records(df)
    if tp.empty:
        st.info(f"No training-throughput measurements in these results (records of kind {V.THROUGHPUT_KIND}). "
                "Produce some with:")
        st.code(THROUGHPUT_COMMAND, language="bash")
        return
    sb = st.sidebar
    sb.subheader("Filters")
    devices = V.choices(tp["device_name"], by_count=True)
    chosen_devices = sb.multiselect("Devices", devices, default=devices, key="tp_devices",
                                    help="each device is its own series: never pooled nor averaged together")
    tp = V.keep(tp, "device_name", chosen_devices)
    if tp.empty:
        st.warning("Choose at least one device in the sidebar.")
        return
    runs = V.throughput_runs(tp)
    chosen_runs = sb.multiselect("Runs (files)", runs, default=V.throughput_latest_runs(tp), key="tp_runs",
                                 help="one invocation of the script writes one file; by default the latest of each "
                                      "device")
    tp = V.keep(tp, "run", chosen_runs)
    for col, label in (("backbone", "Backbones"), ("batch", "Batch sizes (B)"), ("views", "Views (V)")):
        values = V.choices(tp[col])
        if len(values) > 1:
            kept = sb.multiselect(label, values, default=values, key=f"tp_{col}", format_func=fmt_value)
            tp = V.keep(tp, col, kept)
    if tp.empty:
        st.warning("Nothing left with these filters.")
        return
    latest = V.throughput_latest(V.throughput_ok(tp))
    unplotted = V.throughput_unplotted(tp)
    shown_devices = sorted(latest["device_name"].unique()) if not latest.empty else []
    on = f" on {shown_devices[0]}" if len(shown_devices) == 1 else ""
    if latest.empty:
        st.warning("No finished measurement with a finite images/s under these filters.")
    else:
        show(throughput_bars(latest, "images_per_s", title=f"training throughput (images/s){on}",
                             y_title="images / s (samples; each with V views)", fmt=",.0f"), "chart_tp_images")
        repeats = int((latest["repeats"] > 1).sum())
        if repeats:
            st.caption(f"{repeats} bar(s) stand for a case measured more than once on one device in the chosen "
                       "runs: the latest measurement is shown (the table below lists how many).")
        ratios = V.throughput_ratios(tp)
        c1, c2 = st.columns(2)
        with c1:
            fig = throughput_bars(latest, "fraction_of_peak", title=f"fraction of peak (%){on}",
                                  y_title="% of the measured matmul peak", scale=100.0, fmt=".1f")
            show(fig, "chart_tp_peak")
        with c2:
            fig = go.Figure()
            if not ratios.empty:
                last = ratios.groupby(["device_name", "case_label"], sort=False).tail(1)
                cases = list(dict.fromkeys(latest["case_label"].astype(str)))
                for d_i, (device, g) in enumerate(last.groupby("device_name", sort=True)):
                    values = dict(zip(g["case_label"].astype(str), g["ratio"]))
                    fig.add_trace(go.Bar(
                        x=[P(c) for c in cases], y=[values.get(c) for c in cases], name=P(device),
                        marker=dict(color=PALETTE[3 + d_i % (len(PALETTE) - 3)],
                                    pattern=dict(shape=PATTERNS[d_i % len(PATTERNS)])),
                        hovertemplate=f"{P(device)}<br>%{{x}}<br>sslbench / peer = %{{y:.2f}}×<extra></extra>"))
                fig.add_hline(y=1.0, line=dict(color="black", dash="dot", width=1))
            base_layout(fig, "sslbench / peer (images/s, same run, same device)", "case", "ratio (×)",
                        log_x=False, log_y=False)
            fig.update_layout(barmode="group")
            show(fig, "chart_tp_ratio")
            if ratios.empty:
                st.caption("No case has both loops measured (ok) in one run on one device.")
        st.subheader("Time per step by phase (ms)")
        st.caption("The phases tile the step: data (the batch to the device), augment (sslbench's, on the "
                   "device; the peer's runs in its loader's workers, off the step: its cost per batch in one worker "
                   "is in the hover and the table), fwd_bwd (forward, loss, backward), optimizer (the step).")
        splits = V.throughput_phases(latest)
        for i in range(0, len(splits), 2):
            cols = st.columns(2)
            for col, split in zip(cols, splits[i:i + 2]):
                with col:
                    fig = go.Figure()
                    for phase, values in split["phases"].items():
                        fig.add_trace(go.Bar(
                            x=[[P(c) for c in split["case"]], [P(lp) for lp in split["loop"]]], y=values,
                            name=P(phase),
                            marker=dict(color=PHASE_COLOURS.get(phase)),
                            customdata=[[s, w]
                                        for s, w in zip(split["step_ms"], split["worker_augment_ms"])],
                            hovertemplate=(f"{P(phase)}: %{{y:.2f}} ms of %{{customdata[0]:.2f}} ms/step"
                                           "<br>worker augment: %{customdata[1]:.1f} ms/batch<extra></extra>")))
                    base_layout(fig, f"time per step by phase (ms) on {split['device']}", "case / loop",
                                "ms per step", log_x=False, log_y=False)
                    fig.update_layout(barmode="stack", height=460)
                    show(fig, f"chart_tp_phases_{i}_{split['device']}")
        if not ratios.empty:
            st.subheader("sslbench / peer, case by case")
            st.dataframe(ratios.assign(ratio=ratios["ratio"].round(3)), hide_index=True, key="tbl_tp_ratios")
        st.subheader("Measurements")
        cols = ["device_name", "run", "loop", "case_label", "repeats", "images_per_s", "view_images_per_s",
                "step_ms", *V.THROUGHPUT_PHASES, "worker_augment_ms", "flops_per_step", "tflops", "peak_tflops",
                "fraction_of_peak", *V.THROUGHPUT_SETTINGS, "image_shape", "regularizer", "projector", "optimizer"]
        st.dataframe(latest[[c for c in cols if c in latest.columns]], hide_index=True, key="tbl_tp")
    if not unplotted.empty:
        st.subheader(f"Not plotted: {len(unplotted)} measurement(s) without a result")
        st.dataframe(unplotted, hide_index=True, key="tbl_tp_unplotted")


# ==============================================================================================================
# Regressions
# ==============================================================================================================
def page_regressions(df: pd.DataFrame, colours: dict) -> None:
    st.header("Regressions: asv benchmarks across commits")
    threshold = st.sidebar.slider("Flag changes beyond (×)", 1.05, 3.0, 1.2, 0.05, key="rg_threshold")
    table = A.regressions(df, threshold=threshold)
    if table.empty:
        st.info("No asv results found (an asv results directory under the results folder, or .asv/results beside "
                "it, or the folders in $SSLBENCH_ASV). Measure commits with asv:")
        st.code("asv run --python=same --quick                 # the working tree\n"
                "asv run HEAD~5..HEAD                          # the last five commits\n"
                "sslbench dashboard --asv .asv/results         # then show them here", language="bash")
        return
    sb = st.sidebar
    sb.subheader("Filters")
    machines = table["machine"].dropna().astype(str).unique().tolist()
    if len(machines) > 1:
        m = pick("Machine", sorted(machines), key="rg_machine")
        table = table[table["machine"].astype(str) == m]
    benches = sorted(table["benchmark"].astype(str).unique().tolist())
    flagged_benches = V.flagged(table, "benchmark")
    bench = pick("Benchmark", benches, key="rg_bench", default=flagged_benches[0] if flagged_benches else None)
    t = table[table["benchmark"].astype(str) == bench]
    series_all = sorted(t["series"].astype(str).unique().tolist())
    default = V.flagged(t, "series")[:6] or series_all[:6]
    chosen = sb.multiselect("Parameter combinations", series_all, default=default, key=f"rg_series_{bench}")
    t = t[t["series"].astype(str).isin(chosen)]
    if t.empty:
        st.warning("Choose at least one parameter combination in the sidebar.")
        return
    commits = V.commit_order(table)
    order = {c: i for i, c in enumerate(commits)}
    unit = str(t["unit"].dropna().iloc[0]) if t["unit"].notna().any() else ""
    fig = go.Figure()
    for i, (series, g) in enumerate(t.groupby("series", sort=True)):
        g = g.sort_values("created", kind="stable")
        xs = [order[str(c)] for c in g["commit"]]
        label = P(str(g["params"].iloc[0]) or str(series))
        fig.add_trace(go.Scatter(
            x=xs, y=g["value"].tolist(), mode="lines+markers", name=label,
            line=dict(color=PALETTE[i % len(PALETTE)]), customdata=[P(c) for c in g["commit"].astype(str).str[:10]],
            hovertemplate=f"{label}<br>%{{customdata}}<br>%{{y:.4g}} {P(unit)}<extra></extra>"))
    for change, symbol, colour in (("regression", "triangle-up", "crimson"), ("improvement", "triangle-down",
                                                                             "seagreen")):
        hit = t[t["change"] == change]
        if hit.empty:
            continue
        fig.add_trace(go.Scatter(
            x=[order[str(c)] for c in hit["commit"]], y=hit["value"].tolist(), mode="markers",
            name=f"{change} (beyond ×{threshold:g})",
            marker=dict(symbol=symbol, size=16, color=colour, line=dict(width=1, color="black")),
            text=[P(f"{p}: ×{r:.2f} vs {str(pc)[:10]}") for p, r, pc in zip(hit["params"], hit["ratio"],
                                                                           hit["prev_commit"])],
            hovertemplate="%{text}<extra></extra>"))
    base_layout(fig, f"{bench} across commits", "commit (in commit order)", f"value ({unit})" if unit else "value",
                log_x=False, log_y=unit in ("seconds", "bytes"))
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(commits))), ticktext=[P(c[:8]) for c in commits])
    show(fig, "chart_regressions")
    st.subheader(f"Changes beyond ×{threshold:g} (all benchmarks)")
    flagged_rows = table[table["change"] != ""]
    if flagged_rows.empty:
        st.success("No benchmark changed by more than the threshold between consecutive commits.")
    else:
        shown = flagged_rows.assign(prev_commit=flagged_rows["prev_commit"].astype(str).str[:10],
                                    commit=flagged_rows["commit"].astype(str).str[:10],
                                    ratio=flagged_rows["ratio"].round(3))
        st.dataframe(shown[["benchmark", "params", "prev_commit", "commit", "prev_value", "value", "unit", "ratio",
                            "change"]], hide_index=True, key="tbl_regressions")


# ==============================================================================================================
# Runs
# ==============================================================================================================
def page_runs(df: pd.DataFrame, logs: pd.DataFrame, colours: dict) -> None:
    st.header("Runs: training curves")
    if logs.empty:
        st.info("No training logs in these results (sslbench train writes one JSON-lines log per run under its "
                "--log-dir, results/runs/ by default). Produce one with:")
        st.code("sslbench train --regularizer vicreg --epochs 2", language="bash")
        return
    status = V.run_statuses(df)

    def describe(run_id: str) -> str:
        return V.run_description(logs, run_id, status.get(run_id))

    run_ids = V.runs_latest_first(logs)
    sb = st.sidebar
    sb.subheader("Filters")
    chosen = sb.multiselect("Runs", run_ids, default=run_ids[:4], key="runs_chosen", format_func=describe)
    if not chosen:
        st.warning("Choose at least one run in the sidebar.")
        return
    steps = logs[(logs["run_id"].isin(chosen)) & (logs["event"] == "step")]
    terms = V.loss_terms(steps)
    x_axis = sb.radio("x axis", ["step", "elapsed_s"], key="runs_x", horizontal=True,
                      format_func=lambda a: {"step": "step", "elapsed_s": "wall time (s)"}[a])
    term = pick("Loss term", terms, key="runs_term") if terms else None
    log_y = sb.checkbox("Log y for the loss", value=False, key="runs_logy")
    names = {r: describe(r) for r in chosen}
    run_colour = {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(chosen)}

    def curves(column: str, title: str, y_title: str, events=("step",), key="", log=False, scale=1.0) -> None:
        data = logs[(logs["run_id"].isin(chosen)) & (logs["event"].isin(events))]
        if column not in data.columns or data[column].isna().all():
            st.caption(f"No {M(column)} in the logs of these runs.")
            return
        fig = go.Figure()
        for r in chosen:
            g = data[(data["run_id"] == r) & data[column].notna()].sort_values("step")
            if g.empty:
                continue
            fig.add_trace(go.Scatter(x=g[x_axis].tolist(), y=(g[column] / scale).tolist(), mode="lines+markers",
                                     name=P(names[r]), line=dict(color=run_colour[r]), marker=dict(size=4)))
        base_layout(fig, title, {"step": "step", "elapsed_s": "wall time since start (s)"}[x_axis], y_title,
                    log_x=False, log_y=log)
        fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0), height=460)
        show(fig, key)

    if term is not None:
        positive = bool((steps[term].dropna() > 0).all()) if term in steps.columns else False
        curves(term, f"{term} during training", term, key="chart_runs_loss", log=log_y and positive)
    c1, c2 = st.columns(2)
    with c1:
        curves("images_per_s", "throughput", "images / s", key="chart_runs_throughput")
    with c2:
        curves("memory_bytes", "memory", "MiB (CUDA allocated, or resident on the CPU)", key="chart_runs_memory",
               scale=2.0 ** 20)
    curves("knn_top1", "kNN accuracy during training", "kNN top-1 (%)", events=("eval",), key="chart_runs_knn")
    ends = logs[(logs["run_id"].isin(chosen)) & (logs["event"] == "end")]
    if not ends.empty:
        cols = [c for c in ("run_id", "step", "status", "metrics.linear_top1", "metrics.knn_top1",
                            "metrics.init_linear_top1", "metrics.init_knn_top1", "metrics.train_time_s",
                            "metrics.images_per_s") if c in ends.columns]
        st.subheader("Final figures")
        st.dataframe(ends[cols], hide_index=True, key="tbl_runs")


# ==============================================================================================================
# Claims
# ==============================================================================================================
def page_claims(df: pd.DataFrame, held: L.LiveResults | None = None) -> None:
    from sslbench.analysis import report as R  # pandas only: the verdicts are computed from the records, nothing is run

    st.title("Claims of the seed papers")
    st.caption("One row per claim: the verdict (supported / not supported / inconclusive / no data), the figures "
               "behind it and the rule that decided it, computed from the records of this results folder. "
               "`sslbench report` prints the same table; `sslbench sweep --study NAME` produces missing data.")
    c1, c2 = st.columns(2)
    studies = c1.multiselect("Studies", list(R.STUDIES), default=list(R.STUDIES), key="claims_studies")
    verdicts = c2.multiselect("Verdicts", list(R.VERDICTS), default=list(R.VERDICTS), key="claims_verdicts")
    earlier = st.checkbox("Show the earlier setting too (the SGD recipe, superseded; not counted)", value=False,
                          key="claims_earlier")
    rows = claim_rows(df, tuple(studies), held)
    shown = [r for r in rows if earlier or not R.is_earlier(r)]
    table = R.verdict_table(shown)
    table = table[table["verdict"].isin(verdicts)]
    now = [r for r in shown if not R.is_earlier(r)]
    st.markdown("Current settings: " + " · ".join(f"**{v}** {sum(r.verdict == v for r in now)}" for v in R.VERDICTS))
    old = [r for r in rows if R.is_earlier(r)]
    if old:
        st.caption(f"{len(old)} row(s) of the earlier setting (the SGD recipe) "
                   + ("shown, counted apart: " + ", ".join(f"{v} {sum(r.verdict == v for r in old)}"
                                                            for v in R.VERDICTS) if earlier
                      else "hidden: tick the box above to show them"))
    st.dataframe(table, hide_index=True, key="tbl_claims", column_config={
        "figures": st.column_config.TextColumn(width="large"), "rule": st.column_config.TextColumn(width="medium")})
    for name in studies:
        s = R.STUDIES[name]
        with st.expander(f"{name}: {s.title} ({s.paper})"):
            st.markdown(f"> {s.claim}")
            st.code("\n".join(f"{s.command(scale)}   # {s.cost(scale)}" for scale in s.scales()), language="bash")


def claim_rows(df: pd.DataFrame, studies: tuple[str, ...], held: L.LiveResults | None) -> list:
    """The verdict rows of ``studies`` (all when empty), computed once per version of the records and kept with
    them (:meth:`sslbench.analysis.live.LiveResults.derived`): a redraw or a new session reuses them. After an
    append they are computed again, but the comparisons and the rows of each setting whose runs did not change are
    taken from the last computation (:func:`sslbench.analysis.claims.common.remembering`)."""
    from sslbench.analysis import report as R
    from sslbench.analysis.claims.common import remembering

    def compute(frame: pd.DataFrame) -> list:
        with st.spinner("Computing the verdicts ..."), remembering():
            return R.verdicts(frame, list(studies) or None)
    return held.derived(("claims", studies), compute) if held is not None else compute(df)


# ==============================================================================================================
# The app
# ==============================================================================================================
def default_results() -> str:
    return os.environ.get(RESULTS_ENV) or str(ROOT / "results")


def main() -> None:
    st.set_page_config(page_title="sslbench dashboard", page_icon="📈", layout="wide")
    sb = st.sidebar
    sb.title("sslbench")
    page = sb.radio("Page", PAGES, key="page", bind="query-params")
    root = sb.text_input("Results folder", value=default_results(), key="results_dir",
                         help=f"every *.jsonl store, pytest-benchmark JSON and asv results directory under it "
                              f"(default: ${RESULTS_ENV} or results/ of the repository)")
    asv_env = os.environ.get(ASV_ENV)
    asv = tuple(p for p in asv_env.split(os.pathsep) if p) if asv_env else None
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        st.title("sslbench dashboard")
        st.warning(f"The results folder {M(root_path)} does not exist.")
        st.markdown(_help(root_path))
        return
    try:
        df, problems = load(str(root_path), asv)
        logs = load_logs(str(root_path), A.results_stamp(root_path, asv)) if page == "Runs" else pd.DataFrame()
    except Exception as exc:  # noqa: BLE001 -- a results folder that cannot be read must not take the app down
        st.title("sslbench dashboard")
        st.error(f"Could not read the results in {M(root_path)}: {type(exc).__name__}: {M(exc)}")
        return
    if problems:
        with sb.expander(f"{len(problems)} warning(s) while reading"):
            for p in problems:  # file names and a record's keys: strings from disk, escaped
                st.caption(M(p))
    if df.empty and (page != "Runs" or logs.empty):
        st.title("sslbench dashboard")
        st.info(f"No results in {M(root_path)} yet.")
        st.markdown(_help(root_path))
        return
    sb.caption(f"{len(df)} records from {df['source'].nunique()} file(s) in {M(root_path)}")
    colours = colour_map(df["label"].dropna()) if "label" in df.columns else {}
    colours.update({k: v for k, v in colour_map(df["regularizer"].dropna()).items() if k not in colours})
    held = results_of(str(root_path), asv)
    draw = {"Scaling": lambda: page_scaling(df, colours, held), "Accuracy": lambda: page_accuracy(df, colours),
            "Throughput": lambda: page_throughput(df),
            "Regressions": lambda: page_regressions(df, colours),
            "Claims": lambda: page_claims(df, held),
            "Runs": lambda: page_runs(df, logs, colours)}[page]
    try:
        draw()
    except Exception as exc:  # noqa: BLE001 -- one bad record must never take down a page, nor the others
        st.error(f"The {page} page could not be drawn: {type(exc).__name__}: {M(exc)}. The other pages still work; "
                 "the warnings in the sidebar name the files and lines that were skipped while reading.")


def _help(root: Path) -> str:
    text = A.HOW_TO_PRODUCE_RESULTS.format(root=root)
    head, _, rest = text.partition("\n")
    body, _, tail = rest.rpartition("\n\n")
    return f"{head}\n\n```bash\n{textwrap.dedent(body).strip(chr(10))}\n```\n\n{tail}"


main()
