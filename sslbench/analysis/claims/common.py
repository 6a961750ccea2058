"""What every study's rules share: the verdict row and the study's description, the thresholds of the accuracy
comparison and of the scaling fits, the training-run table (one row per run, grouped by setting without letting NaN
split a group), the accuracy comparison of two arms, the exact checks' latest record, and the screening of records
that hold something other than a number where a rule reads one.

pandas and numpy only (never torch): the dashboard calls these on loaded results.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from sslbench.analysis import SCALING_KINDS, scaling_table
from sslbench.records.constants import CHECK_KIND, DEFAULT_PREDICTOR_HIDDEN, DEFAULT_WARMUP_EPOCHS

VERDICTS = ("supported", "not supported", "inconclusive", "no data")
#: where ``sslbench sweep --study`` writes a study's records: ``<STUDIES_DIR>/<device>-<study>.jsonl``
STUDIES_DIR = "results/studies"

# ---- the shared thresholds (printed with every verdict) ------------------------------------------------------
#: scaling fits of time / memory in D use D >= this (the asymptotic regime, without fixed overheads)
FIT_D_MIN = 512
#: O(N·D²) (or O(N²) in N): exponent above this
QUADRATIC_ALPHA_MIN = 1.7
#: "linear in D": exponent in [LINEAR_ALPHA_LO, LINEAR_ALPHA_HI]
LINEAR_ALPHA_LO, LINEAR_ALPHA_HI = 0.7, 1.3
#: a memory exponent is trusted only when the log-log fit has at least this R² (CPU RSS deltas are noisy)
MEMORY_R2_MIN = 0.8
#: accuracy: a difference counts when it exceeds max(ACC_POINTS, ACC_STDS × the larger seed std)
ACC_POINTS = 2.0
ACC_STDS = 2.0

RULE_COMPARABLE = (f"comparable = mean linear top-1 not below the reference by more than max({ACC_POINTS:g} points, "
                   f"{ACC_STDS:g} × seed std); ≥ 2 seeds each, else inconclusive; inconclusive too when every arm "
                   "is below the same network at initialisation")
RULE_BETTER = (f"better / worse = difference beyond max({ACC_POINTS:g} points, {ACC_STDS:g} × seed std) "
               f"(one seed: {ACC_POINTS:g} points); inside it, or every arm below the network at initialisation: "
               "inconclusive")


# ==============================================================================================================
# Verdict rows and studies
# ==============================================================================================================
@dataclass
class Verdict:
    study: str
    claim: str
    verdict: str
    figures: str = ""
    rule: str = ""
    command: str = ""
    setting: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r}: choose one of {', '.join(VERDICTS)}")


#: the scales of ``sslbench sweep --study NAME --scale``: the CPU-sized grids (Fashion-MNIST, minutes), the GPU-sized
#: grids at the full budget (CIFAR-10, ResNet-18, 200 epochs) and the GPU-sized grids of one GPU-hour (the same arms,
#: fewer epochs; results/studies/README.md, "Projected GPU time of the claim studies")
SCALES = ("cpu", "gpu", "gpu-1h")


@dataclass
class Study:
    name: str
    title: str
    paper: str
    claim: str  # as the paper states it (regularizers.md)
    cpu: list[str]  # config file names under results/studies/configs
    gpu: list[str]
    cost_cpu: str
    cost_gpu: str
    verdict: Callable[[pd.DataFrame, "Study"], list[Verdict]] = field(repr=False, default=None)
    checks: tuple[str, ...] = ()  # names of the exact checks of this study (sslbench.execution.studies)
    gpu_1h: list[str] = field(default_factory=list)  # the one-GPU-hour grids (<study>-gpu-1h*.toml)
    cost_gpu_1h: str = ""
    #: the regularizers the GPU grids (gpu and gpu-1h alike) train (tests/test_report.py checks the config files)
    gpu_regularizers: tuple[str, ...] = ()

    def scales(self) -> tuple[str, ...]:
        """The scales of :data:`SCALES` this study has: every one, but gpu-1h only with one-GPU-hour grids (a study
        without training grids, e.g. gram, has none)."""
        return tuple(s for s in SCALES if s != "gpu-1h" or self.gpu_1h)

    def command(self, scale: str = "cpu") -> str:
        _check_scale(scale)
        return f"sslbench sweep --study {self.name}" + (f" --scale {scale}" if scale != "cpu" else "")

    def settle_command(self, *regularizers: str, gpu: str = "", gpu_1h: str = "") -> str:
        """The "to settle" hint of a training claim about the arms of ``regularizers``, one line that pastes as it is
        (the notes are a shell comment): the one-GPU-hour grid first (the full grid's arms with the seeds the rules
        need: results/studies/README.md, "Projected GPU time of the claim studies"), the full grid named after it.
        ``gpu`` / ``gpu_1h``: why that grid cannot settle the claim, "" when it can (e.g. :data:`ONE_SEED`); a
        regularizer outside :attr:`gpu_regularizers` is a reason for both (:func:`no_arm`). When neither grid can,
        the line is only a comment saying why."""
        if not self.gpu_1h:
            return self.command("gpu")
        missing = [r for r in regularizers if r not in self.gpu_regularizers]
        if missing:
            gpu = gpu_1h = no_arm(", ".join(missing))
        if not gpu_1h:
            full = f"the full grid (--scale gpu) cannot settle this: {gpu}" if gpu else "the full grid: --scale gpu"
            return f"{self.command('gpu-1h')}   # one GPU-hour; {full}"
        if not gpu:
            return (f"{self.command('gpu')}   # the full grid; the one-GPU-hour grid (--scale gpu-1h) cannot settle "
                    f"this: {gpu_1h}")
        why = gpu if gpu == gpu_1h else f"--scale gpu-1h: {gpu_1h}; --scale gpu: {gpu}"
        return f"# no GPU grid of study {self.name} settles this: {why}"

    def configs(self, scale: str = "cpu") -> list[str]:
        """The names of the sweep configs of ``scale`` (:data:`SCALES`: cpu, gpu or gpu-1h)."""
        _check_scale(scale)
        return {"cpu": self.cpu, "gpu": self.gpu, "gpu-1h": self.gpu_1h}[scale]

    def cost(self, scale: str = "cpu") -> str:
        """The estimated cost of ``scale``'s grids."""
        _check_scale(scale)
        return {"cpu": self.cost_cpu, "gpu": self.cost_gpu, "gpu-1h": self.cost_gpu_1h}[scale]

    def sweep_commands(self, scale: str = "cpu", device: str = "<device>") -> list[str]:
        return [f"sslbench sweep --config results/studies/configs/{c} --out {STUDIES_DIR}/{device}-{self.name}.jsonl"
                for c in self.configs(scale)]


#: why a GPU grid cannot settle a "comparable" claim (:meth:`Study.settle_command`): one seed per arm
ONE_SEED = "one seed per arm, and the rule needs 2 to say supported"


def no_arm(regularizer: str) -> str:
    """Why a GPU grid cannot settle a claim about ``regularizer``'s arms (:meth:`Study.settle_command`)."""
    return f"it trains no {regularizer}"


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r}: choose one of {', '.join(SCALES)}")


# ==============================================================================================================
# Helpers on the loaded results
# ==============================================================================================================
def num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.{digits}g}"


def bench_records(df: pd.DataFrame) -> pd.DataFrame:
    if df is None or df.empty or "kind" not in df.columns:
        return pd.DataFrame()
    return df[df["kind"].isin(SCALING_KINDS)]


def metric(row: pd.Series, name: str) -> float:
    v = row.get(f"metrics.{name}")
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def hparams_of(text: Any) -> dict:
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        return {}
    try:
        out = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return out if isinstance(out, dict) else {}


#: the columns that make two training runs comparable (apart from what a study varies)
SETTING = ("dataset", "fraction", "dim", "views", "batch", "epochs", "backbone", "projector", "optimizer", "lr",
           "warmup_epochs", "device_name")


def train_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Training records, one row each, with plain columns: the case's keys, ``hp`` (a dict), the metrics used
    here, ``ok`` (status ok and finite linear accuracy)."""
    if df is None or df.empty or "kind" not in df.columns:
        return pd.DataFrame()
    runs = df[df["kind"] == "train"]
    if runs.empty:
        return pd.DataFrame()
    out = pd.DataFrame(index=runs.index)
    for k in ("regularizer", "dataset", "fraction", "dim", "views", "batch", "epochs", "backbone", "projector",
              "optimizer", "lr", "ema_tau", "seed", "warmup_epochs"):
        out[k] = runs.get(f"case.{k}")
    out["device_name"] = runs.get("device_name", runs.get("env.device_name"))
    out["hp"] = [hparams_of(v) for v in runs.get("case.hparams", pd.Series([None] * len(runs), index=runs.index))]
    # the variance add-on's weight (0 when off or absent) and byol's predictor width (records before 2026-11-28
    # lack it: they used TrainConfig's default)
    out["variance_addon"] = out["hp"].map(lambda h: float(h.get("variance_coeff") or 0.0))
    pred = pd.to_numeric(runs.get("case.predictor_hidden", pd.Series([None] * len(runs), index=runs.index)),
                         errors="coerce")
    out["predictor_hidden"] = pred.where(pred.notna() | (out["regularizer"] != "byol"), DEFAULT_PREDICTOR_HIDDEN)
    for m in ("linear_top1", "knn_top1", "effective_rank", "std_normalized", "rankme", "backbone_effective_rank",
              "init_linear_top1", "final_loss"):
        col = runs.get(f"metrics.{m}")
        out[m] = pd.to_numeric(col, errors="coerce") if col is not None else math.nan
    out["status"] = runs["status"]
    out["ok"] = (runs["status"] == "ok") & np.isfinite(out["linear_top1"])
    out["source"] = runs.get("source")
    out["created"] = runs.get("created")
    # the same run recorded twice (e.g. the same case in two stores, or re-run): the latest record counts once
    ident = out.apply(lambda r: json.dumps([str(r.get(k)) for k in SETTING + ("regularizer", "seed", "ema_tau",
                                                                              "warmup_epochs", "predictor_hidden")]
                                           + [r["hp"]], sort_keys=True, default=str), axis=1)
    out = out.assign(_ident=ident).sort_values("created", na_position="first", kind="stable")
    return out.drop_duplicates("_ident", keep="last").drop(columns="_ident")


def isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def as_published(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the methods as published: without the variance add-on and, for byol, with its predictor (the
    add-on study's arms are not "BYOL" elsewhere)."""
    if runs.empty:
        return runs
    pred = runs["predictor_hidden"]
    return runs[(runs["variance_addon"] == 0) & ((runs["regularizer"] != "byol") | (pred > 0))]


def default_variance(runs: pd.DataFrame) -> pd.Series:
    """False for the VICReg runs without their variance term (study variance): they are not "VICReg" elsewhere."""
    return runs["hp"].map(lambda h: float(h.get("std_coeff", 1.0) or 0.0) > 0)


def setting_key(row: pd.Series) -> tuple:
    return tuple(None if isnan(row.get(k)) else row.get(k) for k in SETTING)  # NaN != NaN would split groups


def setting_text(key: tuple) -> str:
    d = dict(zip(SETTING, key))
    dev = str(d.get("device_name") or "?")
    dev = "CPU" if "xeon" in dev.lower() or "epyc" in dev.lower() or "cpu" in dev.lower() else dev
    return (f"{d.get('dataset')} frac {num(d.get('fraction'))} D={int_text(d.get('dim'))} V={int_text(d.get('views'))} "
            f"B={int_text(d.get('batch'))} {int_text(d.get('epochs'))} ep{warmup_text(d.get('warmup_epochs'))} lr "
            f"{num(d.get('lr'))} {dev}")


def warmup_text(w: Any) -> str:
    """" (warm-up W ep)" unless it is TrainConfig's default or unknown."""
    return "" if w is None or isnan(w) or float(w) == DEFAULT_WARMUP_EPOCHS else f" (warm-up {num(w)} ep)"


def int_text(v: Any) -> str:
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return str(v)


@dataclass
class Arm:
    mean: float
    std: float
    n: int
    runs: int
    init: float = math.nan  # the same network at initialisation (the floor), mean over the ok runs

    def text(self, what: str = "lin") -> str:
        s = f"±{num(self.std, 2)}" if self.n > 1 and math.isfinite(self.std) else ""
        bad = f", {self.runs - self.n} failed" if self.runs > self.n else ""
        return f"{num(self.mean, 4)}{s} ({self.n} seed{'s' if self.n != 1 else ''}{bad})"


def arm(rows: pd.DataFrame, metric: str = "linear_top1") -> Arm:
    ok = rows[rows["ok"]]
    vals = ok[metric].to_numpy(float)
    vals = vals[np.isfinite(vals)]
    init = ok["init_linear_top1"].to_numpy(float) if metric == "linear_top1" else np.array([])
    init = init[np.isfinite(init)]
    return Arm(float(vals.mean()) if vals.size else math.nan, float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
               int(vals.size), int(len(rows)), float(init.mean()) if init.size else math.nan)


def below_floor(*arms: Arm) -> str:
    """A note when every arm's accuracy is below the same network at initialisation: the setting did not train a
    useful representation, so accuracy differences between the arms settle nothing."""
    if arms and all(math.isfinite(a.init) and a.mean < a.init for a in arms):
        return (f"; all below the network at initialisation ({num(min(a.init for a in arms), 4)}-"
                f"{num(max(a.init for a in arms), 4)}): the setting trains no useful representation")
    return ""


def margin(a: Arm, b: Arm) -> float:
    stds = [s for s in (a.std, b.std) if math.isfinite(s)]
    return max(ACC_POINTS, ACC_STDS * max(stds)) if stds else ACC_POINTS


def difference(test: Arm, ref: Arm) -> tuple[float, float, str, str | None]:
    """(Δ = test − ref, margin, figures, early verdict): the early verdict is "no data" when an arm is empty and
    "inconclusive" when every arm is below the network at initialisation; else None (the caller decides)."""
    if test.n == 0 or ref.n == 0:
        return math.nan, math.nan, "", "no data"
    d, m = test.mean - ref.mean, margin(test, ref)
    fig = f"Δ = {d:+.2f} points (margin {m:.2f})"
    floor = below_floor(test, ref)
    return d, m, fig + floor, "inconclusive" if floor else None


def comparable(test: Arm, ref: Arm) -> tuple[str, str]:
    """(verdict, figures) of "test's accuracy is comparable to ref's" (not below by more than the margin)."""
    d, m, fig, early = difference(test, ref)
    if early:
        return early, fig
    if d < -m:
        return "not supported", fig
    if test.n < 2 or ref.n < 2:
        return "inconclusive", fig + "; fewer than 2 seeds"
    return "supported", fig


def better(test: Arm, ref: Arm) -> tuple[str, str]:
    """(verdict, figures) of "test's accuracy is better than ref's" (beyond the margin)."""
    d, m, fig, early = difference(test, ref)
    if early:
        return early, fig
    if d > m:
        return "supported", fig
    if d < -m:
        return "not supported", fig
    return "inconclusive", fig + "; inside the noise margin"


def combine(verdicts: Sequence[str]) -> str:
    """All supported → supported; any not supported → not supported; any no data → no data; else inconclusive."""
    vs = list(verdicts)
    if not vs:
        return "no data"
    if "not supported" in vs:
        return "not supported"
    if all(v == "supported" for v in vs):
        return "supported"
    if all(v == "no data" for v in vs):
        return "no data"
    return "inconclusive"


def no_data(study: Study, claim: str, rule: str = "", why: str = "") -> Verdict:
    return Verdict(study.name, claim, "no data", why or "no records for this claim", rule, study.command())



def scaling(df: pd.DataFrame, x: str, x_min: float | None) -> pd.DataFrame:
    """The scaling exponents in ``x`` of the bench records (:func:`sslbench.analysis.scaling_table`)."""
    b = bench_records(df)
    if b.empty:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scaling_table(b, x=x, x_min=x_min)


FIT_SETTING = ("device_name", "threads", "dtype", "batch", "views", "dim")


def fit_rows(table: pd.DataFrame, label: str, y: str = "time_s") -> list[tuple[tuple, float, float]]:
    """[(setting, exponent, r2)] of one series in every setting where it was fitted; the setting is
    (device_name, threads, dtype, batch, views, dim) with None for the fitted axis."""
    if table.empty or "label" not in table.columns:
        return []
    rows = table[table["label"] == label]
    return [(tuple(r[c] if c in rows.columns else None for c in FIT_SETTING), float(r[f"alpha_{y}"]),
             float(r[f"r2_{y}"])) for _, r in rows.iterrows()]


def device_short(name: Any) -> str:
    s = str(name)
    return "CPU" if any(w in s.lower() for w in ("xeon", "epyc", "cpu", "ryzen", "core")) else s


def groups(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    if runs.empty:
        return []
    keys = runs.apply(setting_key, axis=1)
    at: dict[tuple, list[int]] = {}  # one pass (runs[keys == k] for every k was O(runs x settings), issue 21)
    for pos, k in enumerate(keys):
        at.setdefault(k, []).append(pos)
    return [(k, runs.iloc[at[k]]) for k in sorted(at, key=str)]


# ==============================================================================================================
# The exact checks' records
# ==============================================================================================================
def last_check(df: pd.DataFrame | None, study: str, check: str, needs: Sequence[str]) -> dict[str, float] | None:
    """The metrics (name → float, NaN when absent) of the latest ``ok`` record of the exact check ``study/check``
    whose metrics ``needs`` are all finite numbers, or None when there is none. A later record lacking one of them
    is skipped with a ``RuntimeWarning`` naming it (its rule cannot be applied)."""
    if df is None or df.empty or "kind" not in df.columns or "case.study" not in df.columns:
        return None
    rows = df[(df["kind"] == CHECK_KIND) & (df["case.study"] == study) & (df["case.check"] == check)
              & (df["status"] == "ok")]
    if "created" in rows.columns:
        rows = rows.sort_values("created")
    names = [c.removeprefix("metrics.") for c in df.columns if c.startswith("metrics.")]
    for _, row in rows.iloc[::-1].iterrows():
        m = {name: metric(row, name) for name in names}
        missing = [k for k in needs if not math.isfinite(m.get(k, math.nan))]
        if not missing:
            return m
        warnings.warn(f"{describe_record(row)}: the exact check {study}/{check} has no finite "
                      f"{', '.join(missing)}; skipped", RuntimeWarning, stacklevel=2)
    return None


def check_verdict(df: pd.DataFrame | None, st: Study, check: str, claim: str, rule: str, needs: Sequence[str],
                  judge: Callable[[dict[str, float]], tuple[str, str]]) -> Verdict:
    """The row of a claim decided by an exact check: "no data" without a usable record of it, else ``judge``'s
    (verdict, figures) on the latest one (:func:`last_check`)."""
    m = last_check(df, st.name, check, needs)
    if m is None:
        return no_data(st, claim, rule)
    verdict, figures = judge(m)
    return Verdict(st.name, claim, verdict, figures, rule, "", "exact check")


# ==============================================================================================================
# Screening: a record holding something else where a rule reads a number is skipped, with a warning naming it
# ==============================================================================================================
#: the record kinds the rules read, and the case fields they read as numbers (every metric is read as one)
NUMERIC_CASE = {"train": ("dim", "views", "batch", "epochs", "fraction", "lr", "ema_tau", "seed", "warmup_epochs",
                          "predictor_hidden"),
                **{kind: ("dim", "batch", "views") for kind in SCALING_KINDS}, CHECK_KIND: ()}
#: the hyper-parameters of training runs that the rules read as numbers
NUMERIC_HPARAMS = ("lambd", "std_coeff", "variance_coeff")


def _is_number(v: Any) -> bool:
    """A number (NaN included: the rules treat it as a missing figure), a bool, or absent."""
    return v is None or isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_))


def describe_record(row: Mapping) -> str:
    """"<source>: record <id> (<kind>)": where a warning about one record points."""
    return f"{row.get('source') or '?'}: record {row.get('id') or '?'} ({row.get('kind')})"


def _first_non_number(row: pd.Series, fields: Sequence[str]) -> str | None:
    for col in fields:
        v = row.get(col)
        if not _is_number(v):
            return f"{col} = {v!r}"
    hp = hparams_of(row.get("case.hparams")) if row.get("kind") == "train" else {}
    for k in NUMERIC_HPARAMS:
        if not _is_number(hp.get(k)):
            return f"hyper-parameter {k} = {hp.get(k)!r}"
    return None


def usable_records(df: pd.DataFrame | None) -> pd.DataFrame:
    """``df`` without the records the rules would read a non-number from (a case field of :data:`NUMERIC_CASE`,
    a metric, a hyper-parameter of :data:`NUMERIC_HPARAMS`), each skipped with one ``RuntimeWarning`` naming the
    file, the record and the field, so that one bad record cannot take a study's table down."""
    if df is None or df.empty or "kind" not in df.columns:
        return df if df is not None else pd.DataFrame()
    metrics = [c for c in df.columns if c.startswith("metrics.")]
    bad = []
    for kind, case_fields in NUMERIC_CASE.items():
        fields = [f"case.{k}" for k in case_fields if f"case.{k}" in df.columns] + metrics
        for idx, row in df[df["kind"] == kind].iterrows():
            problem = _first_non_number(row, fields)
            if problem:
                warnings.warn(f"{describe_record(row)}: {problem} is not a number; skipped", RuntimeWarning,
                              stacklevel=2)
                bad.append(idx)
    # without the bad values, a column of numbers held as objects becomes numeric again (as it loads from clean
    # stores: the rules compare and group by these values)
    return df.drop(index=bad).infer_objects() if bad else df
