"""What every study's rules share: the verdict row and the study's description, the thresholds of the accuracy
comparison and of the scaling fits, the training-run table (one row per run, grouped by setting without letting NaN
split a group), the accuracy comparison of two arms, the exact checks' latest record, and the screening of records
that hold something other than a number where a rule reads one.

pandas and numpy only (never torch): the dashboard calls these on loaded results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import secrets
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from sslbench.analysis import SCALING_KINDS, scaling_table
from sslbench.analysis.claims import stats
from sslbench.records.constants import CHECK_KIND, DEFAULT_PREDICTOR_HIDDEN, DEFAULT_WARMUP_EPOCHS, default_lr

VERDICTS = ("supported", "not supported", "inconclusive", "no data")
#: where ``sslbench sweep --study`` writes a study's records: ``<STUDIES_DIR>/<device>-<study>[-cpu2].jsonl`` (store_name)
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
#: accuracy (set 2026-12-05, before the records of the AdamW recipe, results/studies/configs/*-cpu2*.toml): the
#: default margin of an accuracy comparison, in points of top-1, for a study module that sets none of its own. About
#: 40 % of the pretraining gain of the default CPU recipe over the network at initialisation (+2.6 points linear,
#: +5 kNN): a difference under it is not worth a claim. It replaces the threshold "max(2 points, 2 × seed std)",
#: which was set after the SGD-recipe records had been seen (a rule changed after seeing data: said so in RULE_*).
ACC_MARGIN = 1.0
KNN_MARGIN = 2.0
#: the first seeds of the AdamW-recipe grids (results/studies/run-cpu2.sh); a "to settle" hint asks for more
CPU_SEEDS = 3


def rule_comparable(margin: float, metric: str = "linear top-1") -> str:
    """The rule text of a "comparable" claim (equivalence by two one-sided tests within ±margin)."""
    return (f"comparable = TOST equivalence of mean {metric} within ±{margin:g} points (both one-sided Welch t-tests "
            f"at {100 * stats.ALPHA:g} %, i.e. the 90 % interval inside ±{margin:g}); better beyond the margin counts "
            f"as comparable (no loss); not supported when the 95 % Welch interval lies below −{margin:g}; else, or "
            "fewer than 2 seeds in an arm, or every arm below the same network at initialisation: inconclusive, "
            "with the seeds per arm that would settle it (80 % power at the observed Δ and spread). Margin set "
            "2026-12-05 (before the AdamW-recipe runs; it replaces max(2 points, 2 × seed std), set after the "
            "SGD-recipe data had been seen)")


def rule_better(margin: float, metric: str = "linear top-1") -> str:
    """The rule text of a "better" claim (the 95 % interval against +margin)."""
    return (f"better = the 95 % Welch interval of the difference of mean {metric} lies above +{margin:g} points (it "
            f"excludes 0 and the margin); not supported when it lies below +{margin:g} (no gain of the margin's size); "
            "else, or fewer than 2 seeds in an arm, or every arm below the same network at initialisation: "
            "inconclusive, with the seeds per arm that would settle it (80 % power at the observed Δ and spread). "
            "Margin set 2026-12-05 (before the AdamW-recipe runs; it replaces max(2 points, 2 × seed std), set after "
            "the SGD-recipe data had been seen)")


RULE_COMPARABLE = rule_comparable(ACC_MARGIN)
RULE_BETTER = rule_better(ACC_MARGIN)


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
    #: minutes of one seed of every arm of the AdamW-recipe CPU grid (<study>-cpu2*.toml) on 2 idle cores (estimated:
    #: results/studies/README.md, "The AdamW recipe")
    cpu_seed_min: float = 0.0
    #: the same, measured: the sum over the grid's arms of each arm's median recorded wall time (training plus
    #: evaluation) in the study's AdamW-recipe store, with the number of runs it rests on (0: none recorded, the
    #: estimate :attr:`cpu_seed_min` is used). Set by ``sslbench.analysis.report.verdicts`` from the records.
    cpu_seed_measured: float = math.nan
    cpu_seed_runs: int = 0
    #: the CPU configs of the earlier setting (the SGD recipe), kept for their records (``cpu``: the AdamW recipe)
    cpu_earlier: list[str] = field(default_factory=list)

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

    def settle(self, d: "Decision", key: tuple, *regularizers: str, gpu: str = "", gpu_1h: str = "") -> str:
        """The "to settle" hint of an accuracy row decided by ``d`` in the setting ``key``: "" when it is settled;
        in the AdamW-recipe CPU setting, the command that adds the seeds :func:`settle_text` asks for (with its
        CPU time), then the GPU grid (:meth:`settle_command`); elsewhere the GPU grid."""
        if d.verdict != "inconclusive":
            return ""
        return self.with_cpu(d, key, self.settle_command(*regularizers, gpu=gpu, gpu_1h=gpu_1h))

    def with_cpu(self, d: "Decision", key: tuple, gpu_cmd: str) -> str:
        """``gpu_cmd``, preceded by :meth:`settle_cpu` in the AdamW-recipe CPU setting for an inconclusive ``d``."""
        if d.verdict != "inconclusive" or not recipe_cpu(key):
            return gpu_cmd
        return f"{self.settle_cpu(d)}   | GPU: {gpu_cmd}"

    def settle_cpu(self, d: "Decision") -> str:
        """The command that runs the seeds an inconclusive AdamW-recipe comparison needs, with its CPU time."""
        no_spread = d.comparison is not None and not d.comparison.has_interval
        if d.seeds is None and not no_spread:
            return f"# more seeds do not settle this: {settle_text(d)}"
        n = max(d.seeds or CPU_SEEDS, d.have + 1)
        line = self.settle_arms(d, n)
        if line:
            return line
        more = list(range(d.have, n))
        if self.cpu_seed_runs and math.isfinite(self.cpu_seed_measured):
            minutes, pace = len(more) * self.cpu_seed_measured, (
                f"at the median pace of its {self.cpu_seed_runs} recorded run(s) on this CPU")
        else:
            minutes, pace = len(more) * self.cpu_seed_min, "on 2 idle CPU cores (estimated)"
        return (f"STUDIES={self.name} SEEDS=\"{' '.join(map(str, more))}\" bash {CPU_SCRIPT}   # {n} seeds per arm: "
                f"{len(more)} more seed(s) of the study's CPU grid, ~{minutes:.0f} min {pace}")

    def settle_arms(self, d: "Decision", n: int) -> str:
        """The targeted form of :meth:`settle_cpu`: only the compared arms' runs, only the seeds each lacks to reach
        ``n`` (:mod:`sslbench.analysis.claims.targeted`), into the store they came from; "" when the arms' runs cannot
        be matched to the study's CPU configs (the caller gives the whole grid)."""
        from sslbench.analysis.claims import targeted

        frames = [r for r in (a.rows() for a in d.arms) if r is not None and not r.empty]
        if not frames or not self.cpu:
            return ""
        rows = pd.concat(frames)
        rows = rows[~rows.index.duplicated()]
        # the study's own store (an arm's runs may come from another study's store: the same runs, shared)
        stores = {os.path.basename(str(v)) for v in rows["source"]} if "source" in rows.columns else set()
        stores = {s for s in stores if s.endswith(f"-{self.name}-cpu2.jsonl")}
        if len(stores) != 1:
            return ""
        steps = targeted.plan(rows, n, targeted.read_configs(self.cpu) or {})
        if not steps:
            return ""
        return f"{targeted.command(steps, f'{STUDIES_DIR}/{stores.pop()}')}   # {targeted.summary(steps, n)}"

    def configs(self, scale: str = "cpu") -> list[str]:
        """The names of the sweep configs of ``scale`` (:data:`SCALES`: cpu, gpu or gpu-1h)."""
        _check_scale(scale)
        return {"cpu": self.cpu, "gpu": self.gpu, "gpu-1h": self.gpu_1h}[scale]

    def cost(self, scale: str = "cpu") -> str:
        """The estimated cost of ``scale``'s grids."""
        _check_scale(scale)
        return {"cpu": self.cost_cpu, "gpu": self.cost_gpu, "gpu-1h": self.cost_gpu_1h}[scale]

    def sweep_commands(self, scale: str = "cpu", device: str = "<device>") -> list[str]:
        return [f"sslbench sweep --config results/studies/configs/{c} --out "
                f"{STUDIES_DIR}/{store_name(device, self.name, scale)}" for c in self.configs(scale)]


#: the suffix of a study's store per scale: the AdamW-recipe CPU grids (<study>-cpu2*.toml) write new stores, apart
#: from the earlier setting's ``<device>-<study>.jsonl`` (results/studies/README.md, "The AdamW recipe")
STORE_SUFFIX = {"cpu": "-cpu2"}


def store_name(device: str, study: str, scale: str, grids: bool = True) -> str:
    """``<device>-<study>[-cpu2].jsonl``: the store of ``study``'s grids at ``scale`` (:data:`STORE_SUFFIX`); a study
    without training grids (``grids`` False: exact checks only, e.g. gram) keeps ``<device>-<study>.jsonl``."""
    return f"{device}-{study}{STORE_SUFFIX.get(scale, '') if grids else ''}.jsonl"


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


#: the columns of the bench records that the rules read (the scaling fits, the crossovers, the Gram form's speed-up)
BENCH_COLUMNS = ("kind", "status", "label", "regularizer", "algorithm", "device_name", "threads", "dtype", "dim",
                 "batch", "views", "time_s", "memory_bytes")


def bench_records(df: pd.DataFrame) -> pd.DataFrame:
    """The records of the scaling kinds, with the columns of :data:`BENCH_COLUMNS` only (a copy of every column of
    two thirds of a large store was the report's largest transient: issue 21); built once inside
    :func:`shared_runs`."""
    if df is None or df.empty or "kind" not in df.columns:
        return pd.DataFrame()
    return _shared(df, ("bench_records",), lambda: df.loc[df["kind"].isin(SCALING_KINDS).to_numpy(dtype=bool),
                                                          [c for c in BENCH_COLUMNS if c in df.columns]])


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


#: while :func:`shared_runs` is active: [(frame, name, value)], what the studies of one report derive from the same
#: frame (the training-run table, the bench records, the scaling fits), built once rather than once per study (six
#: times over every record: issue 21)
_SHARED: list[tuple[pd.DataFrame, tuple, Any]] | None = None


@contextlib.contextmanager
def shared_runs() -> Iterator[None]:
    """Within this block :func:`train_runs`, :func:`bench_records` and :func:`scaling` of the same frame object
    return the same table, built once (``sslbench.analysis.report.verdicts`` runs every study's rules inside one).
    The frame must not change inside the block; the studies only read these tables (they select from them, never
    write to them)."""
    global _SHARED
    outer, _SHARED = _SHARED, []
    try:
        yield
    finally:
        _SHARED = outer


def _shared(df: pd.DataFrame, name: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, kept for the frame ``df`` (its identity) and ``name`` inside :func:`shared_runs`."""
    if _SHARED is None:
        return compute()
    for frame, key, value in _SHARED:
        if frame is df and key == name:
            return value
    value = compute()
    _SHARED.append((df, name, value))
    return value


def train_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Training records, one row each, with plain columns: the case's keys, ``hp`` (a dict), the metrics used
    here, ``ok`` (status ok and finite linear accuracy). Inside :func:`shared_runs`, built once per frame."""
    return _shared(df, ("train_runs",), lambda: _train_runs(df))


def _train_runs(df: pd.DataFrame) -> pd.DataFrame:
    out, raw_hp = _train_table(df)
    if out.empty:
        return out
    # the same run recorded twice (e.g. the same case in two stores, or re-run): the latest record counts once
    # the rows ordered by ``created`` (stable, missing first) and the latest of each identity kept, as positions:
    # one take of the table (sorting, deduplicating and dropping a column of it made a copy each: issue 21's peak)
    ident = pd.Series(run_identity(out, raw_hp), dtype=object)
    order = out["created"].reset_index(drop=True).sort_values(na_position="first", kind="stable").index.to_numpy()
    keep = order[~ident.take(order).duplicated(keep="last").to_numpy()]
    # consolidated (one block per dtype): the studies take a group's rows hundreds of times, and a take costs a call
    # per block
    return out.take(keep).copy()


#: the case fields of a training run that :func:`train_runs` keeps as plain columns
_RUN_FIELDS = ("regularizer", "dataset", "fraction", "dim", "views", "batch", "epochs", "backbone", "projector",
               "optimizer", "lr", "ema_tau", "seed", "warmup_epochs")
_RUN_METRICS = ("linear_top1", "knn_top1", "effective_rank", "std_normalized", "rankme", "backbone_effective_rank",
                "init_linear_top1", "init_knn_top1", "final_loss", "train_time_s", "eval_time_s")


def _train_table(df: pd.DataFrame | None) -> tuple[pd.DataFrame, list]:
    """(the table of :func:`train_runs` before duplicates are dropped, each row's ``case.hparams`` as read)."""
    if df is None or df.empty or "kind" not in df.columns:
        return pd.DataFrame(), []
    read = [f"case.{k}" for k in _RUN_FIELDS] + ["device_name", "env.device_name", "case.hparams",
                                                 "case.predictor_hidden", "status", "source", "created"]
    read += [f"metrics.{m}" for m in _RUN_METRICS]
    # the training rows of the columns read here only, a column at a time (not a copy of the store's every column,
    # nor of these: at 10^6 records the table's columns all at once were the report's peak)
    runs = _Rows(df, np.flatnonzero((df["kind"] == "train").to_numpy(dtype=bool, na_value=False)), read)
    if runs.empty:
        return pd.DataFrame(), []
    out = pd.DataFrame(index=runs.index)
    for k in _RUN_FIELDS:
        out[k] = runs.get(f"case.{k}")
    out["device_name"] = runs.get("device_name", runs.get("env.device_name"))
    raw_hp = runs.get("case.hparams", pd.Series([None] * len(runs), index=runs.index)).tolist()
    parsed: dict[str, dict] = {}  # a store repeats a handful of hparams texts: each is parsed once
    out["hp"] = [(parsed[v] if v in parsed else parsed.setdefault(v, hparams_of(v))) if isinstance(v, str)
                 else hparams_of(v) for v in raw_hp]
    # the variance add-on's weight (0 when off or absent) and byol's predictor width (records before 2026-11-28
    # lack it: they used TrainConfig's default)
    out["variance_addon"] = out["hp"].map(lambda h: float(h.get("variance_coeff") or 0.0))
    pred = pd.to_numeric(runs.get("case.predictor_hidden", pd.Series([None] * len(runs), index=runs.index)),
                         errors="coerce")
    out["predictor_hidden"] = pred.where(pred.notna() | (out["regularizer"] != "byol"), DEFAULT_PREDICTOR_HIDDEN)
    for m in _RUN_METRICS:
        col = runs.get(f"metrics.{m}")
        out[m] = pd.to_numeric(col, errors="coerce") if col is not None else math.nan
    out["status"] = runs["status"]
    out["ok"] = (runs["status"] == "ok") & np.isfinite(out["linear_top1"])
    out["source"] = runs.get("source")
    out["created"] = runs.get("created")
    # text columns as Python objects: the studies select a group's rows hundreds of times, and taking rows of an
    # Arrow-backed text column costs a call into Arrow each time (the same values, the same comparisons)
    for k in out.columns:
        if isinstance(out[k].dtype, pd.StringDtype):
            out[k] = _as_objects(out[k])
    return out, raw_hp


class _Rows:
    """The rows ``pos`` of the columns ``names`` of ``df`` (those it has), as ``df.loc[rows, names]`` gives them
    (``get``, ``[]``, ``index``, ``empty``), each column taken when asked for."""

    def __init__(self, df: pd.DataFrame, pos: np.ndarray, names: Sequence[str]):
        self.df, self.pos, self.names = df, pos, {n for n in names if n in df.columns}
        self.index = df.index[pos]
        self.empty = not len(pos) or not self.names

    def __len__(self) -> int:
        return len(self.pos)

    def get(self, name: str, default=None):
        return self.df[name].iloc[self.pos] if name in self.names else default

    def __getitem__(self, name: str) -> pd.Series:
        if name not in self.names:
            raise KeyError(name)
        return self.df[name].iloc[self.pos]


def _as_objects(col: pd.Series) -> pd.Series:
    """``col.astype(object)`` of a text column, one Python string per distinct text shared by its rows (a string
    per cell, as ``astype`` makes them, held a third of a million copies of a few texts at 10^6 records)."""
    codes, uniques = pd.factorize(col)  # missing: -1, the column's own missing value
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = uniques.astype(object).tolist() if len(uniques) else []
    table[-1] = col.dtype.na_value
    return pd.Series(table[codes], index=col.index, name=col.name, dtype=object)


#: the fields that make two training records the same run (with its hyper-parameters): :func:`run_identity`
RUN_IDENTITY = SETTING + ("regularizer", "seed", "ema_tau", "warmup_epochs", "predictor_hidden")


def cells(df: pd.DataFrame, name: str) -> list:
    """The cells of column ``name`` as Python objects, as a row of a frame of mixed columns holds them
    (``df.apply(f, axis=1)``, ``iterrows``): a float column's as floats, an int column's as ints; ``None`` for
    each row when there is no such column."""
    return df[name].to_numpy(dtype=object).tolist() if name in df.columns else [None] * len(df)


def run_identity(out: pd.DataFrame, raw_hp: Sequence | None = None) -> list[tuple]:
    """One hashable identity per row of a :func:`train_runs` table: two rows are the same run exactly when their
    identities are equal. It is, column by column, the identity the table was deduplicated on before (the JSON text
    of ``[str(field) for field in RUN_IDENTITY] + [hp]``, built row by row; tests/test_claims_vectorised.py keeps it
    as the reference): the ``str`` of each field, and the hyper-parameters' JSON text (keys sorted), each distinct
    ``case.hparams`` text (``raw_hp``, row by row) converted once."""
    fields = [_texts(cells(out, k)) for k in RUN_IDENTITY]
    hps = out["hp"].tolist()
    texts: dict[str, str] = {}
    hp_text = []
    for raw, h in zip(raw_hp if raw_hp is not None else [None] * len(hps), hps):
        if isinstance(raw, str):
            t = texts.get(raw)
            if t is None:
                t = texts[raw] = json.dumps(h, sort_keys=True, default=str)
        else:
            t = json.dumps(h, sort_keys=True, default=str)
        hp_text.append(t)
    return list(zip(*fields, hp_text))


_SAME_TEXT = (str, int, bool, type(None))  # equal values of one of these types have the same str


def _texts(values: list) -> list[str]:
    """``[str(v) for v in values]``, one string object per distinct text (a column of a third of a million cells
    holds a few values: a string per cell was the report's peak at 10^6 records, issue 21). Equal floats of
    different sign (0.0, -0.0) are kept apart, NaN is ``"nan"``; other types are converted cell by cell."""
    memo: dict = {}
    out = []
    for v in values:
        t = type(v)
        if t in _SAME_TEXT:
            key = (t, v)
        elif isinstance(v, float):
            if v != v:
                key = (t, "nan")
            else:
                key = (t, v, math.copysign(1.0, v))
        else:
            out.append(str(v))
            continue
        text = memo.get(key)
        if text is None:
            text = memo[key] = str(v)
        out.append(text)
    return out


def isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def as_published(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the methods as published: without the variance add-on and, for byol, with its predictor (the
    add-on study's arms are not "BYOL" elsewhere)."""
    if runs.empty:
        return runs

    def select() -> pd.DataFrame:
        pred = runs["predictor_hidden"]
        return runs[(runs["variance_addon"] == 0) & ((runs["regularizer"] != "byol") | (pred > 0))]
    return _shared(runs, ("as_published",), select)  # the same selection for four studies of one report


def default_variance(runs: pd.DataFrame) -> pd.Series:
    """False for the VICReg runs without their variance term (study variance): they are not "VICReg" elsewhere."""
    return runs["hp"].map(lambda h: float(h.get("std_coeff", 1.0) or 0.0) > 0)


def setting_key(row: pd.Series) -> tuple:
    return tuple(None if isnan(row.get(k)) else row.get(k) for k in SETTING)  # NaN != NaN would split groups


def setting_keys(runs: pd.DataFrame, fields: Sequence[str] = SETTING) -> list[tuple]:
    """:func:`setting_key` of every row (of ``fields``), column by column: the same tuples as
    ``runs.apply(setting_key, axis=1)`` without building a Series per row."""
    cols = [_key_cells(runs, k) for k in fields]
    return list(zip(*cols)) if cols else [()] * len(runs)


def _key_cells(runs: pd.DataFrame, name: str) -> list:
    """The cells of column ``name`` as :func:`cells` gives them, NaN as None: a float column's NaNs found by numpy
    (its cells are Python floats, NaN exactly where ``isnan``), any other column's cell by cell."""
    col = runs[name] if name in runs.columns else None
    if col is not None and isinstance(col.dtype, np.dtype) and col.dtype.kind == "f":
        values = col.to_numpy()
        out = values.astype(object)
        out[np.isnan(values)] = None
        return out.tolist()
    return [None if isnan(v) else v for v in cells(runs, name)]


def setting_text(key: tuple) -> str:
    d = dict(zip(SETTING, key))
    dev = str(d.get("device_name") or "?")
    dev = "CPU" if "xeon" in dev.lower() or "epyc" in dev.lower() or "cpu" in dev.lower() else dev
    return (f"{d.get('dataset')} frac {num(d.get('fraction'))} D={int_text(d.get('dim'))} V={int_text(d.get('views'))} "
            f"B={int_text(d.get('batch'))} {int_text(d.get('epochs'))} ep{warmup_text(d.get('warmup_epochs'))} lr "
            f"{lr_text(d.get('lr'))}{optimizer_text(d.get('optimizer'))} {dev}{earlier_text(key)}")


def lr_text(lr: Any) -> str:
    return lr if lr == OWN_DEFAULT_LR else num(lr)


def optimizer_text(opt: Any) -> str:
    return f" {opt}" if isinstance(opt, str) and opt else ""


#: the script that runs the AdamW-recipe CPU grids (results/studies/configs/<study>-cpu2*.toml), resumable
CPU_SCRIPT = "results/studies/run-cpu2.sh"
#: the optimizer of the CPU recipe the studies use now (sslbench train's default since 2026-11-30)
RECIPE_OPTIMIZER = "adamw"
#: the CPU training settings of these optimizers are the earlier setting: the SGD recipe of 2026-11-28, superseded
#: by the AdamW recipe (most of its arms ended below the network at initialisation). Their rows stay in the report,
#: marked with :data:`EARLIER` in the setting, and are counted apart (:func:`sslbench.analysis.report.format_verdicts`)
EARLIER_OPTIMIZERS = ("sgd",)
EARLIER = " [earlier setting: the SGD recipe]"


def _on_cpu(d: dict) -> bool:
    return device_short(d.get("device_name")) == "CPU"


def recipe_cpu(key: tuple) -> bool:
    """The setting ``key`` (:data:`SETTING`) is the AdamW recipe on a CPU (its "to settle" hints run more seeds)."""
    d = dict(zip(SETTING, key))
    return _on_cpu(d) and d.get("optimizer") == RECIPE_OPTIMIZER


def earlier_text(key: tuple) -> str:
    """:data:`EARLIER` for a CPU setting of the earlier recipe (:data:`EARLIER_OPTIMIZERS`), else ""."""
    d = dict(zip(SETTING, key))
    return EARLIER if _on_cpu(d) and d.get("optimizer") in EARLIER_OPTIMIZERS else ""


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
    values: tuple[float, ...] = ()  # the per-seed values (the comparisons' samples)
    #: (the table of runs, the selection of its rows: a bool mask, ascending positions, or None for all) the arm was
    #: taken from, for the "to settle" hint's targeted command (:meth:`rows`); not part of its value
    where: Any = field(default=None, compare=False, repr=False)

    def rows(self) -> pd.DataFrame | None:
        """The training-run rows of the arm, every status (None when it was built without them)."""
        if self.where is None:
            return None
        table, sel = self.where
        if sel is None:
            return table
        sel = np.asarray(sel)
        return table.iloc[np.flatnonzero(sel) if sel.dtype == bool else sel]

    def text(self, what: str = "lin") -> str:
        s = f"±{num(self.std, 2)}" if self.n > 1 and math.isfinite(self.std) else ""
        bad = f", {self.runs - self.n} failed" if self.runs > self.n else ""
        return f"{num(self.mean, 4)}{s} ({self.n} seed{'s' if self.n != 1 else ''}{bad})"


#: the metric of the network at initialisation that is the floor of each accuracy metric
INIT_METRIC = {"linear_top1": "init_linear_top1", "knn_top1": "init_knn_top1"}


#: statuses of a run that will be resumed, not a failed seed (records.schema: not final)
PENDING_STATUSES = ("interrupted", "killed")


def arm(rows: pd.DataFrame, metric: str = "linear_top1") -> Arm:
    """The ok runs' values of ``metric``; ``runs`` counts the seeds that ended (an interrupted or killed run is
    resumed by the next sweep, so it is pending, not failed)."""
    # masks over the columns read, not copies of the rows (an arm is built hundreds of times per study)
    ended = (~rows["status"].isin(PENDING_STATUSES)).to_numpy(dtype=bool) if "status" in rows.columns else \
        np.ones(len(rows), dtype=bool)
    ok = ended & rows["ok"].to_numpy(dtype=bool)
    vals = rows[metric].to_numpy(float)[ok]
    vals = vals[np.isfinite(vals)]
    init_col = INIT_METRIC.get(metric)
    init = rows[init_col].to_numpy(float)[ok] if init_col in rows.columns else np.array([])
    init = init[np.isfinite(init)]
    return Arm(float(vals.mean()) if vals.size else math.nan, float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
               int(vals.size), int(ended.sum()), float(init.mean()) if init.size else math.nan,
               tuple(float(v) for v in vals), (rows, None))


class ArmTable:
    """The columns :func:`arm` reads of one table of runs, taken out as numpy arrays once, so that the arms of many
    selections of its rows cost no DataFrame each: ``ArmTable(g).arm(mask, metric) == arm(g[mask], metric)``
    (tests/test_claims_vectorised.py). A study selects hundreds of arms per setting, and a frame per selection
    (a take of every column) was most of ``sslbench report``'s time on a large store (issue 21)."""

    def __init__(self, rows: pd.DataFrame):
        self.rows = rows
        self.ended = (~rows["status"].isin(PENDING_STATUSES)).to_numpy(dtype=bool) if "status" in rows.columns \
            else np.ones(len(rows), dtype=bool)
        self.ok = self.ended & rows["ok"].to_numpy(dtype=bool)
        self._float: dict[str, np.ndarray] = {}

    def values(self, name: str) -> np.ndarray:
        """Column ``name`` as floats (KeyError when the table has none, as ``rows[name]``)."""
        if name not in self._float:
            self._float[name] = self.rows[name].to_numpy(float)
        return self._float[name]

    def arm(self, mask: np.ndarray | None = None, metric: str = "linear_top1") -> Arm:
        """:func:`arm` of the rows where ``mask`` (a bool array over the table's rows; None: every row) is true, or
        of the rows at the positions ``mask`` (an integer array, ascending: the rows in the table's order)."""
        ended, ok = (self.ended, self.ok) if mask is None else (self.ended[mask], self.ok[mask])
        col = self.values(metric)
        vals = (col if mask is None else col[mask])[ok]
        vals = vals[np.isfinite(vals)]
        init_col = INIT_METRIC.get(metric)
        if init_col in self.rows.columns:
            icol = self.values(init_col)
            init = (icol if mask is None else icol[mask])[ok]
        else:
            init = np.array([])
        init = init[np.isfinite(init)]
        return Arm(float(vals.mean()) if vals.size else math.nan,
                   float(vals.std(ddof=1)) if vals.size > 1 else math.nan, int(vals.size), int(ended.sum()),
                   float(init.mean()) if init.size else math.nan, tuple(float(v) for v in vals), (self.rows, mask))


def below_floor(*arms: Arm) -> str:
    """A note when every arm's accuracy is below the same network at initialisation: the setting did not train a
    useful representation, so accuracy differences between the arms settle nothing."""
    if arms and all(math.isfinite(a.init) and a.mean < a.init for a in arms):
        return (f"; all below the network at initialisation ({num(min(a.init for a in arms), 4)}-"
                f"{num(max(a.init for a in arms), 4)}): the setting trains no useful representation")
    return ""


@dataclass
class Decision:
    """The verdict of one accuracy comparison, its figures (Δ with its interval, the margin, the test), the
    comparison itself, and for an inconclusive one the seeds per arm that would settle it (None: unknown, e.g. one
    seed gives no spread, or out of reach: the observed Δ sits on the boundary) against the seeds it has."""
    verdict: str
    figures: str
    comparison: stats.Comparison | None = None
    seeds: int | None = None
    have: int = 0
    why: str = ""  # why more seeds cannot settle it (seeds None), when known
    #: the arms compared (their rows name the runs the targeted "to settle" command adds: Study.settle_cpu)
    arms: tuple = field(default=(), compare=False, repr=False)


def _compare(test: Arm, ref: Arm, margin: float) -> tuple[stats.Comparison | None, str, Decision | None]:
    """(Welch comparison, figures, early decision): "no data" without a value in an arm; "inconclusive" when every
    arm is below the network at initialisation or an arm has fewer than 2 seeds; else None (the caller decides)."""
    if test.n == 0 or ref.n == 0:
        return None, "", Decision("no data", "")
    c = stats.welch(test.values, ref.values)
    fig = f"{c.text()}, margin {margin:g}"
    have = min(test.n, ref.n)
    floor = below_floor(test, ref)
    if floor:
        return c, fig + floor, Decision("inconclusive", fig + floor, c, None, have,
                                        "the setting trains nothing useful: more seeds do not help")
    if not c.has_interval:
        return c, fig, Decision("inconclusive", fig, c, None, have)
    return c, fig, None


def comparable(test: Arm, ref: Arm, margin: float = ACC_MARGIN) -> Decision:
    """:func:`decide_comparable`, remembered (:func:`_remembered`)."""
    return dataclasses.replace(_remembered("comparable", test, ref, margin, decide_comparable), arms=(test, ref))


def decide_comparable(test: Arm, ref: Arm, margin: float = ACC_MARGIN) -> Decision:
    """"test's accuracy is comparable to ref's": TOST equivalence within ±margin (Welch), or better beyond the
    margin (no loss); not supported when the 95 % interval lies below −margin (:func:`rule_comparable`)."""
    c, fig, early = _compare(test, ref, margin)
    if early:
        return early
    p = stats.tost(c, margin)
    fig += f", TOST p = {num(p, 2)}"
    if p < stats.ALPHA:
        return Decision("supported", fig + " (equivalent)", c)
    if c.lo > margin:
        return Decision("supported", fig + " (better beyond the margin: no loss)", c)
    if c.hi < -margin:
        return Decision("not supported", fig + " (worse beyond the margin)", c)
    # outside ±margin: showing it beyond (below: not supported; above: better, so no loss)
    n = stats.seeds_to_settle_equivalence(c, margin)
    return Decision("inconclusive", fig, c, _more(n, test, ref), min(test.n, ref.n))


def _more(n: int | None, test: Arm, ref: Arm) -> int | None:
    """``n`` seeds per arm, but more than the arms have (an unsettled comparison needs at least one more)."""
    return None if n is None else max(n, min(test.n, ref.n) + 1)


def better(test: Arm, ref: Arm, margin: float = ACC_MARGIN) -> Decision:
    """:func:`decide_better`, remembered (:func:`_remembered`)."""
    return dataclasses.replace(_remembered("better", test, ref, margin, decide_better), arms=(test, ref))


def decide_better(test: Arm, ref: Arm, margin: float = ACC_MARGIN) -> Decision:
    """"test's accuracy is better than ref's": the 95 % interval above +margin; not supported when it lies below
    +margin (:func:`rule_better`)."""
    c, fig, early = _compare(test, ref, margin)
    if early:
        return early
    if c.lo > margin:
        return Decision("supported", fig, c)
    if c.hi < margin:
        return Decision("not supported", fig, c)
    return Decision("inconclusive", fig, c, _more(stats.seeds_to_settle(c, margin), test, ref), min(test.n, ref.n))


# ---- remembered across reports: what the dashboard computes again after an append -------------------------------
#: inside :func:`remembering`: the values kept from one report to the next (:func:`_recall`), least recently used
#: first, keyed by their inputs; None outside (``sslbench report`` computes each once and keeps nothing)
_KEPT: dict[str, Any] | None = None
_KEPT_LOCK = threading.Lock()
#: how many values :func:`remembering` keeps (a report of a 10^5-record store makes about 4 000 comparisons and
#: 700 settings' rows)
KEPT_MAX = 1 << 14
#: the key of the keyed hash (SipHash) of the text cells of :func:`row_hashes`: drawn per process, so a store cannot
#: be written to make two different runs hash alike
_HASH_KEY = secrets.token_hex(8)


@contextlib.contextmanager
def remembering() -> Iterator[None]:
    """Within this block the comparisons (:func:`comparable`, :func:`better`) and the rows of each setting of the
    accuracy studies (:func:`remember_setting`) are kept, keyed by their inputs, and a later report with the same
    inputs takes them rather than computing them again. The dashboard computes every verdict again after records
    are appended, where most settings' runs are unchanged (issue 21): only the settings whose runs changed are
    computed again. The kept values outlive the block (at most :data:`KEPT_MAX`)."""
    global _KEPT, _KEPT_DEPTH
    with _KEPT_LOCK:  # sessions of one server compute in threads: kept on while any of them is inside
        _KEPT_DEPTH += 1
        _KEPT = _KEPT_STORE
    try:
        yield
    finally:
        with _KEPT_LOCK:
            _KEPT_DEPTH -= 1
            if _KEPT_DEPTH == 0:
                _KEPT = None


_KEPT_STORE: dict[str, Any] = {}
_KEPT_DEPTH = 0


def forget() -> None:
    """Drop every value kept by :func:`remembering`."""
    with _KEPT_LOCK:
        _KEPT_STORE.clear()


def _recall(key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, or the value kept for ``key`` inside :func:`remembering` (a pure function of what ``key``
    names)."""
    kept = _KEPT
    if kept is None:
        return compute()
    with _KEPT_LOCK:
        value = kept.pop(key, _MISSING)
        if value is not _MISSING:
            kept[key] = value  # the most recently used last
            return value
    value = compute()
    with _KEPT_LOCK:
        kept[key] = value
        while len(kept) > KEPT_MAX:
            del kept[next(iter(kept))]
    return value


_MISSING = object()


def _remembered(rule: str, test: Arm, ref: Arm, margin: float, decide: Callable[[Arm, Arm, float], Decision]) \
        -> Decision:
    """``decide(test, ref, margin)``, a pure function of the two arms' fields and the margin, computed once for the
    same inputs inside :func:`remembering`: the statistics of the comparisons (Welch interval, TOST, the seeds to
    settle) were about half of the verdicts' time. The key is the ``repr`` of every field (exact for floats: -0.0
    and 0.0 apart, every NaN alike); each caller gets its own copy."""
    if _KEPT is None:
        return decide(test, ref, margin)
    key = repr(("decision", rule, float(margin), test.mean, test.std, test.n, test.runs, test.init, test.values,
                ref.mean, ref.std, ref.n, ref.runs, ref.init, ref.values))
    return dataclasses.replace(_recall(key, lambda: decide(test, ref, margin)))


def remember(name: str, inputs: tuple, compute: Callable[[], list[Verdict]]) -> list[Verdict]:
    """``compute()``, verdict rows that are a pure function of ``inputs`` (numbers, text, :class:`Arm`, and tuples,
    lists and dicts of them: their ``repr`` is the key, exact for floats), kept inside :func:`remembering`."""
    if _KEPT is None:
        return compute()
    return [dataclasses.replace(v) for v in _recall(repr(("pure", name, inputs)), compute)]


def row_hashes(table: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of ``table`` over every column: numbers by their bits (pandas' hash of the bits:
    -0.0 and 0.0 apart), every other cell by its ``repr`` (so 1, 1.0, "1" and True differ, and a dict by its keys
    and values) under a keyed hash (SipHash, key drawn per process). Built once per table inside
    :func:`shared_runs`."""
    def build() -> np.ndarray:
        h = np.zeros(len(table), dtype=np.uint64)
        for name in table.columns:
            col = table[name]
            if isinstance(col.dtype, np.dtype) and col.dtype.kind == "f":  # the bits: -0.0 and 0.0 apart
                bits = np.ascontiguousarray(col.to_numpy(), dtype=np.float64).view(np.uint64)
                ch = pd.util.hash_array(bits, hash_key=_HASH_KEY, categorize=False)
            elif isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub":
                ch = pd.util.hash_array(col.to_numpy(), hash_key=_HASH_KEY, categorize=False)
            elif not (isinstance(col.dtype, np.dtype) and col.dtype.kind == "O"):  # times, typed text: by value
                ch = pd.util.hash_pandas_object(col, index=False, hash_key=_HASH_KEY, categorize=True).to_numpy()
            else:
                cells = col.to_numpy(dtype=object)
                if pd.api.types.infer_dtype(cells, skipna=False) != "string":  # text only: hashed as it is
                    seen: dict[int, str] = {}  # a table repeats the same objects (the parsed hparams): each once
                    cells = np.array([seen[id(v)] if id(v) in seen else seen.setdefault(id(v), repr(v))
                                      for v in cells], dtype=object)
                ch = pd.util.hash_array(cells, hash_key=_HASH_KEY, categorize=True)
            h = (h * np.uint64(0x100000001B3)) ^ ch  # wraps: a running hash, column by column
        return h
    return _shared(table, ("row_hashes",), build)


def remember_setting(name: str, key: tuple, g: pd.DataFrame, table: pd.DataFrame, st: "Study",
                     compute: Callable[[], list[Verdict]]) -> list[Verdict]:
    """``compute()``: the verdict rows of study ``st``'s rule ``name`` in the setting ``key`` from the runs ``g`` (a
    selection of the rows of ``table``, the :func:`train_runs` table, with columns derived from them), kept inside
    :func:`remembering` and taken again while the setting's runs are the same: the key is ``name``, ``key``, the
    study (its ``repr``: the measured pace of its CPU grid is part of the hints), ``g``'s columns and the hashes of
    its rows in order (:func:`row_hashes`). ``compute`` must read nothing but ``key``, ``g`` and ``st``."""
    if _KEPT is None or _SHARED is None:
        return compute()
    at = table.index.get_indexer(g.index)
    if (at < 0).any():  # rows of another table: nothing to key them by
        return compute()
    digest = hashlib.blake2b(row_hashes(table)[at].tobytes(), digest_size=16).hexdigest()
    k = repr(("setting", name, key, repr(st), tuple(map(str, g.columns)), len(g), digest))
    return [dataclasses.replace(v) for v in _recall(k, compute)]


def settle_text(d: Decision) -> str:
    """The seeds an inconclusive decision needs, in words ("" for a settled one)."""
    if d.verdict != "inconclusive":
        return ""
    if d.comparison is not None and not d.comparison.has_interval:
        return f"≥ 2 seeds per arm ({CPU_SEEDS} planned) to estimate the spread"
    if d.seeds is None:
        return d.why or f"more than {stats.MAX_SEEDS} seeds per arm at the observed spread (Δ sits on the margin)"
    return f"{d.seeds} seeds per arm would settle it (80 % power at the observed Δ and spread)"


def combine_decisions(ds: Sequence[Decision]) -> Decision:
    """One decision for a row made of several comparisons (:func:`combine` of their verdicts): for an inconclusive
    row, the most seeds any inconclusive part needs (unknown when one part's need is), the comparison of the first
    such part, and the fewest seeds an arm has."""
    v = combine([d.verdict for d in ds])
    open_ = [d for d in ds if d.verdict == "inconclusive"]
    if v != "inconclusive" or not open_:
        return Decision(v, "")
    seeds = None if any(d.seeds is None for d in open_) else max(d.seeds for d in open_)
    first = next((d for d in open_ if d.seeds is None), open_[0])
    return Decision(v, "", first.comparison, seeds, min(d.have for d in open_), first.why,
                    tuple(a for d in open_ for a in d.arms))


def settle_note(d: Decision) -> str:
    """"; to settle: …" for the figures of an inconclusive decision (:func:`settle_text`), else ""."""
    t = settle_text(d)
    return f"; to settle: {t}" if t else ""


def combine(verdicts: Sequence[str]) -> str:
    """All supported → supported; any not supported → not supported; all no data → no data; else (some settled,
    some not) inconclusive."""
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



def scaling(df: pd.DataFrame, x: str, x_min: float | None, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """The scaling exponents in ``x`` of the bench records (:func:`sslbench.analysis.scaling_table`): of the series
    of ``labels`` only when given (each series is fitted on its own rows: the same rows as in the table of every
    series, without fitting the series a rule does not read; the table is computed again after every append)."""
    b = bench_records(df)
    if b.empty:
        return pd.DataFrame()
    labels = tuple(labels) if labels is not None else None

    def fit() -> pd.DataFrame:
        mine = b if labels is None or "label" not in b.columns else b[b["label"].isin(labels).to_numpy(dtype=bool)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return scaling_table(mine, x=x, x_min=x_min)
    return _shared(df, ("scaling", x, x_min, labels), fit)


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


def device_flag(name: Any) -> str:
    """The ``--device`` of ``sslbench sweep`` that measures again on the device a record names (cpu or cuda)."""
    return "cpu" if device_short(name) == "CPU" else "cuda"


#: the D of the scaling sweeps a "to settle" hint asks for (above the fit's floor :data:`FIT_D_MIN`, up to where the
#: exact losses' D x D matrices dominate every fixed cost)
SETTLE_DIMS = (512, 1024, 2048, 4096, 8192, 16384)
#: the batch size N of those sweeps where, at the published N = 256, fixed costs hide the growth in D
SETTLE_BATCH = 4096


def settle_scaling(regularizers: Sequence[str], device: Any, why: str, *, batch: int | None = None,
                   dims: Sequence[int] = SETTLE_DIMS) -> str:
    """The "to settle" hint of an inconclusive scaling-in-D row: ``why`` it is inconclusive (a shell comment), then the
    one sweep (results/sweeps/configs/scaling-dim.toml with the command line's overrides) that measures the series
    again where the rule can decide: the same device, ``dims`` and, when fixed costs dominated, a larger ``batch``."""
    n_cases = len(regularizers) * len(dims)
    return (f"sslbench sweep --config results/sweeps/configs/scaling-dim.toml --regularizers {' '.join(regularizers)} "
            f"--algorithms cross_correlation --dims {' '.join(str(d) for d in dims)}"
            + (f" --batches {batch}" if batch else "") + f" --device {device_flag(device)}"
            f"   # {why}; {n_cases} bench cases (minutes)")


#: the ``lr`` of a setting key whose arms each ran at their own method's default learning rate (:func:`groups`)
OWN_DEFAULT_LR = "each method's default"


def groups(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """The runs grouped by setting (:data:`SETTING`). Arms at different learning rates share a group when each ran
    at its own method's default (``sslbench train`` gives VICReg 1e-3 and the others 2e-3 under AdamW: one budget,
    each method as it is tuned); the key's ``lr`` is then :data:`OWN_DEFAULT_LR`. A group whose runs all belong to a
    larger group of the same setting is left out, so a comparison is made once, on the most arms."""
    if runs.empty:
        return []
    return _shared(runs, ("groups",), lambda: _groups(runs))  # the same groups for two studies of one report


def _groups(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    keys = setting_keys(runs)
    i_lr, i_opt = SETTING.index("lr"), SETTING.index("optimizer")
    at: dict[tuple, list[int]] = {}  # one pass (runs[keys == k] for every k was O(runs x settings), issue 21)
    own: dict[tuple, list[int]] = {}
    regs = runs["regularizer"] if "regularizer" in runs.columns else [None] * len(runs)
    for pos, (k, reg) in enumerate(zip(keys, regs)):
        at.setdefault(k, []).append(pos)
        lr, default = k[i_lr], default_lr(k[i_opt], reg)
        if lr is not None and default is not None and math.isclose(float(lr), default, rel_tol=1e-9):
            own.setdefault(k[:i_lr] + (OWN_DEFAULT_LR,) + k[i_lr + 1:], []).append(pos)
    for k, pos in own.items():  # a budget of its own only where it spans several learning rates
        if len({keys[p][i_lr] for p in pos}) > 1:
            at[k] = pos
    sets = {k: set(v) for k, v in at.items()}
    base = {k: k[:i_lr] + k[i_lr + 1:] for k in at}
    same_base: dict[tuple, list[tuple]] = {}  # a group is compared with the groups of its setting only, not every
    for k in at:                              # group (that was quadratic in the number of settings)
        same_base.setdefault(base[k], []).append(k)
    kept = [k for k in at if not any(o != k and sets[k] < sets[o] for o in same_base[base[k]])]
    return [(k, runs.iloc[sorted(at[k])]) for k in sorted(kept, key=str)]


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
    file, the record and the field, so that one bad record cannot take a study's table down.

    Column by column: a column of numbers holds no non-number, so only the other columns' cells are looked at,
    and each distinct hyper-parameters text is parsed once; the records, fields and warnings are those of the
    former row-by-row screening (kept as the reference in tests/test_claims_vectorised.py)."""
    if df is None or df.empty or "kind" not in df.columns:
        return df if df is not None else pd.DataFrame()
    metrics = [c for c in df.columns if c.startswith("metrics.")]
    kinds = df["kind"].to_numpy(dtype=object)
    bad = []
    for kind, case_fields in NUMERIC_CASE.items():
        fields = [f"case.{k}" for k in case_fields if f"case.{k}" in df.columns] + metrics
        pos = np.flatnonzero(kinds == kind)
        if not pos.size:
            continue
        problem: list[str | None] = [None] * len(pos)

        def at(col: str) -> list:  # the kind's cells of a column, without copying the kind's rows of every column
            return df[col].iloc[pos].to_numpy(dtype=object).tolist() if col in df.columns else [None] * len(pos)

        for col in fields:
            if _numeric_dtype(df[col]):
                continue  # numbers (NaN for the absent) only
            for i, v in enumerate(at(col)):
                if problem[i] is None and not _is_number(v):
                    problem[i] = f"{col} = {v!r}"
        if kind == "train":
            hp_problem: dict[str, str | None] = {}
            for i, raw in enumerate(at("case.hparams")):
                if problem[i] is None:
                    if isinstance(raw, str):
                        if raw not in hp_problem:
                            hp_problem[raw] = _hparam_problem(hparams_of(raw))
                        problem[i] = hp_problem[raw]
                    else:
                        problem[i] = _hparam_problem(hparams_of(raw))
        flagged = [i for i, text in enumerate(problem) if text]  # the names of the records skipped only
        sources, ids, index = (_cells_at(df, "source", pos[flagged]), _cells_at(df, "id", pos[flagged]),
                               df.index[pos[flagged]])
        for j, i in enumerate(flagged):
            where = describe_record({"source": sources[j], "id": ids[j], "kind": kind})
            warnings.warn(f"{where}: {problem[i]} is not a number; skipped", RuntimeWarning, stacklevel=2)
            bad.append(index[j])
    # without the bad values, a column of numbers held as objects becomes numeric again (as it loads from clean
    # stores: the rules compare and group by these values)
    return df.drop(index=bad).infer_objects() if bad else df


def _cells_at(df: pd.DataFrame, col: str, pos: np.ndarray) -> list:
    """The cells of column ``col`` at positions ``pos`` as Python objects (None each when there is no such column)."""
    return df[col].iloc[pos].to_numpy(dtype=object).tolist() if col in df.columns else [None] * len(pos)


def _numeric_dtype(col: pd.Series) -> bool:
    """A column of numbers: a numpy float, integer or bool dtype (NaN its only missing value)."""
    return isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiub"


def _hparam_problem(hp: dict) -> str | None:
    for k in NUMERIC_HPARAMS:
        if not _is_number(hp.get(k)):
            return f"hyper-parameter {k} = {hp.get(k)!r}"
    return None
