"""`sslbench report`: the seed papers' claims as a verdict table, with the figures behind each verdict.

One named study per claim (:data:`STUDIES`: ``fft``, ``sfrik``, ``views``, ``variance``, ``isoloss``, ``gram``).
Each has the claim as the paper states it (see ``/work/shared/regularizers.md``), the sweep grids that measure it
in a CPU-sized setting (Fashion-MNIST, minutes on 2 cores) and a GPU-sized one (CIFAR-10, ResNet-18), as TOML
configs of ``sslbench sweep`` under ``results/studies/configs/``, a few exact checks that need no training
(:func:`run_checks`, stored as records of kind ``claim_check``), and a verdict function.

* ``sslbench report [--results DIR] [--format text|markdown] [--study NAME ...]`` reads every record under DIR
  (``results/`` by default: the reference sweeps of ``results/sweeps/`` answer the cost claims, the study stores
  ``results/studies/<device>-<study>.jsonl`` the others) and prints one row per claim: the verdict, the figures
  behind it, the rule that decided it and the command that produces the data a verdict lacks.
* ``sslbench report --run STUDY [--scale cpu|gpu]`` runs the study's exact checks and the missing cases of its
  grids (through :mod:`sslbench.execution.sweep`, resumable) into ``results/studies/<device>-<study>.jsonl``, then reports.
* ``sslbench report --list``: the studies, their commands and estimated cost.

Verdicts (:data:`VERDICTS`): ``supported``, ``not supported``, ``inconclusive`` (the data exist but do not settle
the claim at this scale, e.g. a difference inside the seed noise, one seed only, or a noisy memory fit) and
``no data``. Every figure comes from the records; the thresholds are the constants below, printed with each row.

The verdict functions (:func:`verdicts`) import pandas and numpy only, so the dashboard can call them on loaded
results without torch work; the checks and ``--run`` import torch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["VERDICTS", "CHECK_KIND", "STUDIES", "Study", "Verdict", "verdicts", "verdict_table", "format_verdicts",
           "run_checks", "add_arguments", "run"]

VERDICTS = ("supported", "not supported", "inconclusive", "no data")
#: the record kind of the exact checks that need no training
CHECK_KIND = "claim_check"
STUDIES_DIR = "results/studies"
from sslbench.records.constants import DEFAULT_PREDICTOR_HIDDEN  # noqa: E402
CONFIG_DIR = Path(__file__).resolve().parents[2] / "results" / "studies" / "configs"

# ---- the thresholds (printed with every verdict) -------------------------------------------------------------
#: scaling fits of time / memory in D use D >= this (the asymptotic regime, without fixed overheads)
FIT_D_MIN = 512
#: O(N·D·log D) in D: exponent below this; O(N·D²): exponent above EXACT_ALPHA_MIN
LOGLINEAR_ALPHA_MAX = 1.4
QUADRATIC_ALPHA_MIN = 1.7
#: "linear in D": exponent in [LINEAR_ALPHA_LO, LINEAR_ALPHA_HI]
LINEAR_ALPHA_LO, LINEAR_ALPHA_HI = 0.7, 1.3
#: a memory exponent is trusted only when the log-log fit has at least this R² (CPU RSS deltas are noisy)
MEMORY_R2_MIN = 0.8
#: accuracy: a difference counts when it exceeds max(ACC_POINTS, ACC_STDS × the larger seed std)
ACC_POINTS = 2.0
ACC_STDS = 2.0
#: collapse: the variance term "prevents collapse" when effective rank and std of the normalised embeddings are
#: both at least COLLAPSE_RATIO × those without it; "no effect" when both ratios are below NO_EFFECT_RATIO
COLLAPSE_RATIO = 1.5
NO_EFFECT_RATIO = 1.1
#: a run "collapsed" when the mean per-feature std of its L2-normalised embeddings is below this / √D (a
#: spread-out embedding has about 1/√D; SimSiam without its predictor measured 0.08/√D at D = 128)
COLLAPSED_STD = 0.25
#: exact Gram form: relative difference of values and gradients (float32 / float64) and of logged training losses
GRAM_TOL_F32 = 1e-4
GRAM_TOL_F64 = 1e-10
GRAM_CURVE_TOL = 1e-3
#: a speed-up counts when above this
SPEEDUP_MIN = 1.2
#: degree-2 truncation vs covariance penalty: affine fit R² and slope against the derived D/(D−1)·w₂
AFFINE_R2_MIN = 0.9999
SLOPE_REL_TOL = 1e-3
#: permutation trick on structured batches: Pearson r of relaxed vs exact off-diagonal penalty
PERM_R_MIN = 0.9
NOPERM_R_MAX = 0.5

RULES = {
    "loglinear": f"exponent of time in D (D ≥ {FIT_D_MIN}): relaxed < {LOGLINEAR_ALPHA_MAX} and exact > "
                 f"{QUADRATIC_ALPHA_MIN} supported; relaxed ≥ {QUADRATIC_ALPHA_MIN} not supported; else (e.g. the "
                 "exact loss not growing as D² either: fixed costs dominate) inconclusive",
    "memory": f"as time, on the step's memory; inconclusive when a fit has R² < {MEMORY_R2_MIN}",
    "comparable": f"comparable = mean linear top-1 not below the reference by more than max({ACC_POINTS:g} points, "
                  f"{ACC_STDS:g} × seed std); ≥ 2 seeds each, else inconclusive; inconclusive too when every arm is "
                  "below the same network at initialisation",
    "better": f"better / worse = difference beyond max({ACC_POINTS:g} points, {ACC_STDS:g} × seed std) "
              f"(one seed: {ACC_POINTS:g} points); inside it, or every arm below the network at initialisation: "
              "inconclusive",
}


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


@dataclass
class Study:
    name: str
    title: str
    paper: str
    claim: str  # as the paper states it (regularizers.md)
    cpu: list[str]  # config file names under CONFIG_DIR
    gpu: list[str]
    cost_cpu: str
    cost_gpu: str
    verdict: Callable[[pd.DataFrame, "Study"], list[Verdict]] = field(repr=False, default=None)
    checks: tuple[str, ...] = ()  # names of the exact checks (run_checks) of this study

    def command(self, scale: str = "cpu") -> str:
        return f"sslbench report --run {self.name}" + (" --scale gpu" if scale == "gpu" else "")

    def sweep_commands(self, scale: str = "cpu", device: str = "<device>") -> list[str]:
        return [f"sslbench sweep --config results/studies/configs/{c} --out {STUDIES_DIR}/{device}-{self.name}.jsonl"
                for c in (self.cpu if scale == "cpu" else self.gpu)]


# ==============================================================================================================
# Helpers on the loaded results
# ==============================================================================================================
def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.{digits}g}"


def _bench(df: pd.DataFrame) -> pd.DataFrame:
    if df is None or df.empty or "kind" not in df.columns:
        return pd.DataFrame()
    return df[df["kind"].isin(("regularizer_bench", "side_by_side", "pytest_benchmark"))]


def _checks(df: pd.DataFrame, study: str, check: str) -> pd.DataFrame:
    if df is None or df.empty or "kind" not in df.columns or "case.study" not in df.columns:
        return pd.DataFrame()
    out = df[(df["kind"] == CHECK_KIND) & (df["case.study"] == study) & (df["case.check"] == check)
             & (df["status"] == "ok")]
    return out.sort_values("created") if "created" in out.columns else out


def _metric(row: pd.Series, name: str) -> float:
    v = row.get(f"metrics.{name}")
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _hp(text: Any) -> dict:
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
_SETTING = ("dataset", "fraction", "dim", "views", "batch", "epochs", "backbone", "projector", "optimizer", "lr",
            "warmup_epochs", "device_name")


def _train(df: pd.DataFrame) -> pd.DataFrame:
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
    out["hp"] = [_hp(v) for v in runs.get("case.hparams", pd.Series([None] * len(runs), index=runs.index))]
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
    ident = out.apply(lambda r: json.dumps([str(r.get(k)) for k in _SETTING + ("regularizer", "seed", "ema_tau",
                                                                               "warmup_epochs", "predictor_hidden")]
                                           + [r["hp"]], sort_keys=True, default=str), axis=1)
    out = out.assign(_ident=ident).sort_values("created", na_position="first", kind="stable")
    return out.drop_duplicates("_ident", keep="last").drop(columns="_ident")


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _plain(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the methods as published: without the variance add-on and, for byol, with its predictor (the
    add-on study's arms are not "BYOL" elsewhere)."""
    if runs.empty:
        return runs
    pred = runs["predictor_hidden"]
    return runs[(runs["variance_addon"] == 0) & ((runs["regularizer"] != "byol") | (pred > 0))]


def _default_variance(runs: pd.DataFrame) -> pd.Series:
    """False for the VICReg runs without their variance term (study variance): they are not "VICReg" elsewhere."""
    return runs["hp"].map(lambda h: float(h.get("std_coeff", 1.0) or 0.0) > 0)


def _setting_key(row: pd.Series) -> tuple:
    return tuple(None if _isnan(row.get(k)) else row.get(k) for k in _SETTING)  # NaN != NaN would split groups


def _setting_text(key: tuple) -> str:
    d = dict(zip(_SETTING, key))
    dev = str(d.get("device_name") or "?")
    dev = "CPU" if "xeon" in dev.lower() or "epyc" in dev.lower() or "cpu" in dev.lower() else dev
    return (f"{d.get('dataset')} frac {_num(d.get('fraction'))} D={_int(d.get('dim'))} V={_int(d.get('views'))} "
            f"B={_int(d.get('batch'))} {_int(d.get('epochs'))} ep{_warmup(d.get('warmup_epochs'))} lr "
            f"{_num(d.get('lr'))} {dev}")


def _warmup(w: Any) -> str:
    """" (warm-up W ep)" unless it is TrainConfig's default (1 epoch) or unknown."""
    return "" if w is None or _isnan(w) or float(w) == 1.0 else f" (warm-up {_num(w)} ep)"


def _int(v: Any) -> str:
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return str(v)


@dataclass
class _Arm:
    mean: float
    std: float
    n: int
    runs: int
    init: float = math.nan  # the same network at initialisation (the floor), mean over the ok runs

    def text(self, what: str = "lin") -> str:
        s = f"±{_num(self.std, 2)}" if self.n > 1 and math.isfinite(self.std) else ""
        bad = f", {self.runs - self.n} failed" if self.runs > self.n else ""
        return f"{_num(self.mean, 4)}{s} ({self.n} seed{'s' if self.n != 1 else ''}{bad})"


def _arm(rows: pd.DataFrame, metric: str = "linear_top1") -> _Arm:
    ok = rows[rows["ok"]]
    vals = ok[metric].to_numpy(float)
    vals = vals[np.isfinite(vals)]
    init = ok["init_linear_top1"].to_numpy(float) if metric == "linear_top1" else np.array([])
    init = init[np.isfinite(init)]
    return _Arm(float(vals.mean()) if vals.size else math.nan, float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
                int(vals.size), int(len(rows)), float(init.mean()) if init.size else math.nan)


def _below_floor(*arms: _Arm) -> str:
    """A note when every arm's accuracy is below the same network at initialisation: the setting did not train a
    useful representation, so accuracy differences between the arms settle nothing."""
    if arms and all(math.isfinite(a.init) and a.mean < a.init for a in arms):
        return (f"; all below the network at initialisation ({_num(min(a.init for a in arms), 4)}-"
                f"{_num(max(a.init for a in arms), 4)}): the setting trains no useful representation")
    return ""


def _margin(a: _Arm, b: _Arm) -> float:
    stds = [s for s in (a.std, b.std) if math.isfinite(s)]
    return max(ACC_POINTS, ACC_STDS * max(stds)) if stds else ACC_POINTS


def _difference(test: _Arm, ref: _Arm) -> tuple[float, float, str, str | None]:
    """(Δ = test − ref, margin, figures, early verdict): the early verdict is "no data" when an arm is empty and
    "inconclusive" when every arm is below the network at initialisation; else None (the caller decides)."""
    if test.n == 0 or ref.n == 0:
        return math.nan, math.nan, "", "no data"
    d, m = test.mean - ref.mean, _margin(test, ref)
    fig = f"Δ = {d:+.2f} points (margin {m:.2f})"
    floor = _below_floor(test, ref)
    return d, m, fig + floor, "inconclusive" if floor else None


def _comparable(test: _Arm, ref: _Arm) -> tuple[str, str]:
    """(verdict, figures) of "test's accuracy is comparable to ref's" (not below by more than the margin)."""
    d, m, fig, early = _difference(test, ref)
    if early:
        return early, fig
    if d < -m:
        return "not supported", fig
    if test.n < 2 or ref.n < 2:
        return "inconclusive", fig + "; fewer than 2 seeds"
    return "supported", fig


def _better(test: _Arm, ref: _Arm) -> tuple[str, str]:
    """(verdict, figures) of "test's accuracy is better than ref's" (beyond the margin)."""
    d, m, fig, early = _difference(test, ref)
    if early:
        return early, fig
    if d > m:
        return "supported", fig
    if d < -m:
        return "not supported", fig
    return "inconclusive", fig + "; inside the noise margin"


def _combine(verdicts: Sequence[str]) -> str:
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


def _no_data(study: Study, claim: str, rule: str = "", why: str = "") -> Verdict:
    return Verdict(study.name, claim, "no data", why or "no records for this claim", rule, study.command())


# ==============================================================================================================
# Cost claims from bench records (scaling exponents, crossovers)
# ==============================================================================================================
def _scaling(df: pd.DataFrame, x: str, x_min: float | None) -> pd.DataFrame:
    from sslbench.analysis import scaling_table

    b = _bench(df)
    if b.empty:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scaling_table(b, x=x, x_min=x_min)


_FIT_SETTING = ("device_name", "threads", "dtype", "batch", "views", "dim")


def _fit(table: pd.DataFrame, label: str, y: str = "time_s") -> list[tuple[tuple, float, float]]:
    """[(setting, exponent, r2)] of one series in every setting where it was fitted; the setting is
    (device_name, threads, dtype, batch, views, dim) with None for the fitted axis."""
    if table.empty or "label" not in table.columns:
        return []
    rows = table[table["label"] == label]
    return [(tuple(r[c] if c in rows.columns else None for c in _FIT_SETTING), float(r[f"alpha_{y}"]),
             float(r[f"r2_{y}"])) for _, r in rows.iterrows()]


def _device_short(name: Any) -> str:
    s = str(name)
    return "CPU" if any(w in s.lower() for w in ("xeon", "epyc", "cpu", "ryzen", "core")) else s


def _pair_exponents(df: pd.DataFrame, pairs: Sequence[tuple[str, str]], y: str) -> list[tuple[str, dict]]:
    """For each setting (device, threads, dtype, N, V) with both series of every pair fitted: the exponents."""
    table = _scaling(df, "dim", FIT_D_MIN)
    found: dict[tuple, dict] = {}
    for a, b in pairs:
        fa = {s: (al, r2) for s, al, r2 in _fit(table, a, y)}
        fb = {s: (al, r2) for s, al, r2 in _fit(table, b, y)}
        for s in fa.keys() & fb.keys():
            found.setdefault(s, {})[(a, b)] = (fa[s], fb[s])
    out = []
    for s, d in sorted(found.items(), key=lambda kv: str(kv[0])):
        if len(d) == len(pairs) or not out:
            out.append((f"{_device_short(s[0])}, {_int(s[1])} thread(s), {s[2]}, N={_int(s[3])}, V={_int(s[4])}", d))
    return out


FFT_PAIRS = (("barlow_twins_fft", "barlow_twins[cross_correlation]"), ("vicreg_fft", "vicreg[cross_correlation]"))


def _fft_cost(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    for y, claim, rule in (("time_s", "loss time grows as O(N·D·log D) (relaxed) against O(N·D²) (exact)",
                            RULES["loglinear"]),
                           ("memory_bytes", "loss memory grows as O(N·D·log D)-ish (relaxed) against O(D²) (exact)",
                            RULES["memory"])):
        found = _pair_exponents(df, FFT_PAIRS, y)
        if not found:
            out.append(Verdict(st.name, claim, "no data", "no scaling-in-D bench records of the relaxed and exact "
                               "losses", rule, "sslbench sweep --config results/sweeps/configs/scaling-dim.toml"))
            continue
        for setting, d in found:
            figs, vs = [], []
            for (a, b), ((aa, ra), (ab, rb)) in d.items():
                figs.append(f"{a} α={_num(aa)} (R² {_num(ra, 2)}) vs {b} α={_num(ab)} (R² {_num(rb, 2)})")
                if y == "memory_bytes" and min(ra, rb) < MEMORY_R2_MIN:
                    vs.append("inconclusive")
                elif aa < LOGLINEAR_ALPHA_MAX and ab > QUADRATIC_ALPHA_MIN:
                    vs.append("supported")
                elif aa >= QUADRATIC_ALPHA_MIN:  # the relaxed loss grows as fast as the exact one
                    vs.append("not supported")
                else:  # e.g. the exact loss does not grow as D² either: fixed costs dominate (a GPU at small N)
                    vs.append("inconclusive")
            out.append(Verdict(st.name, claim, _combine(vs), "; ".join(figs), rule, "", setting))
    # crossover D
    from sslbench.analysis import crossovers

    b = _bench(df)
    claim = "the relaxed loss is faster / smaller than the exact one above a crossover D"
    rule = "a crossing where the relaxed series becomes the lower one (log-log interpolation), or lower throughout"
    if b.empty or "dim" not in b.columns:
        return out + [Verdict(st.name, claim, "no data", "", rule,
                              "sslbench sweep --config results/sweeps/configs/scaling-dim.toml")]
    rows = []
    for key, g in b.groupby(["device_name", "threads", "dtype", "batch", "views"], dropna=False):
        if not all(g["label"].eq(x).any() for pair in FFT_PAIRS for x in pair) or g["dim"].nunique() < 3:
            continue
        figs, vs = [], []
        for a, c in FFT_PAIRS:
            for y, unit in (("time_s", "time"), ("memory_bytes", "memory")):
                found = crossovers(g, a, c, x="dim", y=y)
                gg = g[g["label"].isin((a, c)) & (g["status"] == "ok")]
                top = gg["dim"].max()
                at_top = gg[gg["dim"] == top].groupby("label")[y].median()
                lower_top = at_top.idxmin() if len(at_top) == 2 else None
                if found:
                    last = found[-1]
                    figs.append(f"{a.split('_fft')[0]} {unit}: crossover D≈{_num(last.x)} "
                                f"({last.lower_after} lower above)")
                else:
                    figs.append(f"{a.split('_fft')[0]} {unit}: no crossing; {lower_top} lower at D={_int(top)}")
                if lower_top is None:
                    vs.append("inconclusive")
                else:
                    ratio = at_top.max() / at_top.min() if at_top.min() > 0 else math.nan
                    figs[-1] += f", ×{_num(ratio, 3)} at D={_int(top)}"
                    vs.append("supported" if lower_top == a else "not supported")
        rows.append(Verdict(st.name, claim, _combine(vs), "; ".join(figs), rule, "",
                            f"{_device_short(key[0])}, {_int(key[1])} thread(s), {key[2]}, N={_int(key[3])}, V={_int(key[4])}"))
    return out + (rows or [Verdict(st.name, claim, "no data", "", rule,
                                   "sslbench sweep --config results/sweeps/configs/scaling-dim.toml")])


# ==============================================================================================================
# Accuracy claims from training records
# ==============================================================================================================
def _groups(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    if runs.empty:
        return []
    keys = runs.apply(_setting_key, axis=1)
    return [(k, runs[keys == k]) for k in sorted(set(keys), key=str)]


#: the coefficients the relaxed and the exact losses share (compared only at equal values)
_FFT_COEFFS = ("lambd", "scale", "sim_coeff", "std_coeff", "cov_coeff")


def _coeff_text(rows: pd.DataFrame) -> str:
    h = rows["hp"].iloc[0]
    parts = [f"{k} {_num(h[k])}" for k in ("lambd",) if h.get(k) is not None]
    return f" (both {', '.join(parts)})" if parts else ""


def _fft_arms(g: pd.DataFrame, key: tuple, st: Study, claim: str, claim_p: str) -> list[Verdict]:
    """The accuracy rows of one setting and one set of coefficients: relaxed vs exact, permute vs not."""
    out = []
    for relaxed, exact in (("barlow_twins_fft", "barlow_twins"), ("vicreg_fft", "vicreg")):
        gr = g[(g["regularizer"] == relaxed) & g["_perm"] & _default_variance(g)]
        ge = g[(g["regularizer"] == exact) & _default_variance(g)]
        if gr.empty or ge.empty:
            continue
        a, b = _arm(gr), _arm(ge)
        v, fig = _comparable(a, b)
        out.append(Verdict(st.name, claim, v, f"{relaxed} {a.text()} vs {exact} {b.text()}{_coeff_text(gr)}: {fig}",
                           RULES["comparable"], "" if v != "inconclusive" else st.command("gpu"), _setting_text(key)))
    for relaxed in ("barlow_twins_fft", "vicreg_fft"):
        g1 = g[(g["regularizer"] == relaxed) & g["_perm"]]
        g0 = g[(g["regularizer"] == relaxed) & ~g["_perm"]]
        if g1.empty or g0.empty:
            continue
        a, b = _arm(g1), _arm(g0)
        v, fig = _better(a, b)
        out.append(Verdict(st.name, claim_p + " [training]", v, f"{relaxed} permute {a.text()} vs no permute "
                           f"{b.text()}: {fig}", RULES["better"], "" if v != "inconclusive" else st.command("gpu"),
                           _setting_text(key)))
    return out


def _fft_accuracy(df: pd.DataFrame, st: Study) -> list[Verdict]:
    runs = _plain(_train(df))
    claim = "downstream accuracy comparable to the exact losses"
    claim_p = "the permutation trick helps (accuracy with vs without it)"
    out = []
    if not runs.empty:
        # the relaxed and the exact loss are compared at the same coefficients (lambd, ...), never pooled across them
        runs = runs.assign(_perm=runs["hp"].map(lambda h: bool(h.get("permute", True))),
                           _coeffs=runs["hp"].map(lambda h: json.dumps([h.get(k) for k in _FFT_COEFFS])))
        for key, g in _groups(runs):
            for _, same in g.groupby("_coeffs", sort=True):
                out += _fft_arms(same, key, st, claim, claim_p)
    if not any(v.claim == claim for v in out):
        out.append(_no_data(st, claim, RULES["comparable"]))
    if not any(v.claim.startswith(claim_p + " [training]") for v in out):
        out.append(_no_data(st, claim_p + " [training]", RULES["better"]))
    # the mechanism, without training
    chk = _checks(df, st.name, "permutation")
    rule = (f"structured batches (alternating-sign correlations on one wrapped diagonal, the relaxation's blind "
            f"spot): Pearson r of relaxed (with: mean over permutation draws) vs exact off-diagonal penalty ≥ "
            f"{PERM_R_MIN} with, ≤ {NOPERM_R_MAX} without permutation")
    claim_m = claim_p + " [mechanism: spurious minima of the relaxation]"
    if chk.empty:
        out.append(_no_data(st, claim_m, rule))
    else:
        r = chk.iloc[-1]
        rp, rn = _metric(r, "r_permute_structured"), _metric(r, "r_no_permute_structured")
        rpr, rnr = _metric(r, "r_permute_random"), _metric(r, "r_no_permute_random")
        v = ("supported" if rp >= PERM_R_MIN and rn <= NOPERM_R_MAX else
             "not supported" if rp < NOPERM_R_MAX or rn >= PERM_R_MIN else "inconclusive")
        out.append(Verdict(st.name, claim_m, v,
                           f"structured: r = {_num(rp)} with, {_num(rn)} without permutation; random batches: "
                           f"{_num(rpr)} / {_num(rnr)} ({int(_metric(r, 'batches'))} batches, "
                           f"{_int(_metric(r, 'draws'))} draws, "
                           f"D={int(_metric(r, 'dim'))}, N={int(_metric(r, 'batch'))})", rule, "", "exact check"))
    return out


def verdict_fft(df: pd.DataFrame, st: Study) -> list[Verdict]:
    return _fft_cost(df, st) + _fft_accuracy(df, st)


def verdict_sfrik(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    # cost linear in D at fixed N
    claim = "cost linear in D at fixed N"
    rule = f"exponent of time in D (D ≥ {FIT_D_MIN}) in [{LINEAR_ALPHA_LO}, {LINEAR_ALPHA_HI}]"
    fits = _fit(_scaling(df, "dim", FIT_D_MIN), "sfrik")
    for s, al, r2 in fits:
        v = "supported" if LINEAR_ALPHA_LO <= al <= LINEAR_ALPHA_HI else (
            "not supported" if al > QUADRATIC_ALPHA_MIN else "inconclusive")
        out.append(Verdict(st.name, claim, v, f"sfrik α_D = {_num(al)} (R² {_num(r2, 2)})", rule, "",
                           f"{_device_short(s[0])}, {_int(s[1])} thread(s), N={_int(s[3])}, V={_int(s[4])}"))
    if not fits:
        out.append(Verdict(st.name, claim, "no data", "", rule,
                           "sslbench sweep --config results/sweeps/configs/scaling-dim.toml"))
    claim = "memory O(N²) (and time O(N²·D)) in the batch size N"
    rule = (f"exponent of memory in N ≥ {QUADRATIC_ALPHA_MIN} (R² ≥ {MEMORY_R2_MIN}) supported, ≤ "
            f"{LINEAR_ALPHA_HI} not supported, between: inconclusive (the N·D inputs dominate at small N)")
    table = _scaling(df, "batch", None)
    fm = _fit(table, "sfrik", "memory_bytes")
    ft = {s: (a, r) for s, a, r in _fit(table, "sfrik", "time_s")}
    for s, al, r2 in fm:
        if r2 < MEMORY_R2_MIN:
            v = "inconclusive"
        else:
            v = "supported" if al >= QUADRATIC_ALPHA_MIN else "not supported" if al <= LINEAR_ALPHA_HI else "inconclusive"
        ta, tr = ft.get(s, (math.nan, math.nan))
        out.append(Verdict(st.name, claim, v, f"sfrik memory α_N = {_num(al)} (R² {_num(r2, 2)}); time α_N = "
                           f"{_num(ta)} (R² {_num(tr, 2)})", rule, "" if v == "supported" else
                           "larger N: sslbench sweep --config results/sweeps/configs/scaling-batch.toml --batches "
                           "1024 2048 4096 8192 --regularizers sfrik", f"{_device_short(s[0])}, D={_int(s[5])}, V={_int(s[4])}"))
    if not fm:
        out.append(Verdict(st.name, claim, "no data", "", rule,
                           "sslbench sweep --config results/sweeps/configs/scaling-batch.toml"))
    # accuracy
    claim = "accuracy comparable to VICReg and to uniformity at equal budget"
    runs = _plain(_train(df))
    for key, g in _groups(runs):
        gs = g[g["regularizer"] == "sfrik"]
        if gs.empty:
            continue
        a = _arm(gs)
        figs, vs = [f"sfrik {a.text()}"], []
        for other in ("vicreg", "uniformity"):
            go = g[(g["regularizer"] == other) & _default_variance(g)]
            if go.empty:
                continue
            b = _arm(go)
            v, fig = _comparable(a, b)
            figs.append(f"{other} {b.text()}: {fig} [{v}]")
            vs.append(v)
        if vs:
            v = _combine(vs)
            out.append(Verdict(st.name, claim, v, "; ".join(figs), RULES["comparable"],
                               "" if v == "supported" else st.command("gpu"), _setting_text(key)))
    if not any(v.claim == claim for v in out):
        out.append(_no_data(st, claim, RULES["comparable"]))
    # degree-2 truncation
    claim = "the degree-2 truncation is a covariance (information-maximisation) penalty"
    rule = (f"over random batches of unit-norm embeddings, mmd with weights (0, w₂) against ‖EᵀE/N − I/D‖_F²: "
            f"affine fit R² ≥ {AFFINE_R2_MIN} and slope within {SLOPE_REL_TOL:g} (relative) of the derived "
            f"w₂·D/(D−1) (mean P₂ = (D‖C‖² − 1)/(D − 1), tr C = 1)")
    chk = _checks(df, st.name, "degree2")
    if chk.empty:
        out.append(_no_data(st, claim, rule))
    else:
        r = chk.iloc[-1]
        r2, slope, pred, icpt = (_metric(r, k) for k in ("r2", "slope", "slope_derived", "intercept"))
        rel = abs(slope - pred) / abs(pred) if pred else math.nan
        v = "supported" if r2 >= AFFINE_R2_MIN and rel <= SLOPE_REL_TOL else "not supported"
        out.append(Verdict(st.name, claim, v, f"R² = {r2:.6f}, slope {_num(slope, 6)} vs derived {_num(pred, 6)} "
                           f"(rel. diff {_num(rel)}), intercept {_num(icpt)}; {int(_metric(r, 'batches'))} batches, "
                           f"D={int(_metric(r, 'dim'))}, N={int(_metric(r, 'batch'))}", rule, "", "exact check"))
    return out


def _better_pairs(acc: dict, pairs: list, labels: Callable) -> tuple[list[str], list[str]]:
    """(verdicts, figures) of "arm a beats arm b" for each (a, b) of ``pairs`` (keys of ``acc``, (V, fraction));
    ``labels(a, b)`` names the two arms in the figure."""
    vv, figs = [], []
    for a, b in pairs:
        v, fig = _better(acc[a], acc[b])
        la, lb = labels(a, b)
        figs.append(f"{la} {_num(acc[a].mean, 4)} vs {lb} {_num(acc[b].mean, 4)} ({fig.split(' (')[0]})")
        vv.append(v)
    return vv, figs


def verdict_views(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    runs = _plain(_train(df))
    claims = ("more views improve accuracy at equal data",
              "more views reach the accuracy of 2 views with up to 4× less data",
              "more views at fixed compute (V × data constant) beat 2 views")
    if not runs.empty:
        runs = runs[runs["ok"] | (runs["status"] != "ok")]
        nov = [k for k in _SETTING if k not in ("views", "fraction")]
        runs = runs.assign(_lambd=runs["hp"].map(lambda h: h.get("lambd")))
        # NaN (a missing lambd, e.g. VICReg's) → None: NaN != NaN would put every such run in a group of its own
        keys = runs.apply(lambda r: tuple(None if _isnan(x) else x for x in
                                          [r.get(k) for k in nov] + [r["regularizer"], r["_lambd"]]), axis=1)
        for key in sorted(set(keys), key=str):
            g = runs[keys == key]
            vs, fr = sorted(set(g["views"].dropna())), sorted(set(g["fraction"].dropna()))
            if 2 not in vs or len(vs) < 2:
                continue
            d = dict(zip(nov, key))
            lam = f" lambd {_num(key[-1])}" if key[-1] is not None else ""
            setting = (f"{key[-2]}{lam} {d['dataset']} D={_int(d['dim'])} B={_int(d['batch'])} "
                       f"{_int(d['epochs'])} ep{_warmup(d.get('warmup_epochs'))} "
                       f"lr {_num(d['lr'])} {_device_short(d['device_name'])}")
            acc = {(v, f): _arm(g[(g["views"] == v) & (g["fraction"] == f)]) for v in vs for f in fr}
            acc = {k: a for k, a in acc.items() if a.n > 0}
            vmax = max(vs)
            # equal data
            vv, figs = _better_pairs(acc, [((vmax, f), (2, f)) for f in fr if (2, f) in acc and (vmax, f) in acc],
                                     lambda a, b: (f"frac {_num(a[1])}: V={_int(a[0])}", "V=2"))
            if vv:
                out.append(Verdict(st.name, claims[0], _combine(vv), "; ".join(figs) + _below_floor(*acc.values()),
                                   RULES["better"], st.command("gpu"), setting))
            # less data
            if len(fr) >= 2 and (2, fr[-1]) in acc:
                full = acc[(2, fr[-1])]
                small = fr[0]
                ratio = fr[-1] / small
                best = max(((v, acc[(v, small)]) for v in vs if v > 2 and (v, small) in acc),
                           key=lambda t: t[1].mean, default=None)
                if best is not None and (2, small) in acc:
                    two_small = acc[(2, small)]
                    data_matters = two_small.mean < full.mean - _margin(two_small, full)
                    v_cmp, fig = _comparable(best[1], full)
                    note = f" ({ratio:g}× less data)"
                    if not data_matters:
                        v = "inconclusive"
                        note += f"; V=2 loses only {full.mean - two_small.mean:+.2f} points with {ratio:g}× less data"
                    elif best[1].mean >= full.mean - _margin(best[1], full):
                        v = "supported"
                    else:  # more than 4× less data is more than the claim: a miss there settles nothing
                        v = "not supported" if ratio <= 4 + 1e-9 else "inconclusive"
                    out.append(Verdict(st.name, claims[1], v,
                                       f"V={_int(best[0])} at frac {_num(small)} {_num(best[1].mean, 4)} vs V=2 at frac "
                                       f"{_num(fr[-1])} {_num(full.mean, 4)} ({fig}); V=2 at frac {_num(small)} "
                                       f"{_num(two_small.mean, 4)}{note}",
                                       RULES["comparable"] + "; needs V=2 to lose accuracy with less data, else "
                                       "inconclusive", st.command("gpu"), setting))
            # fixed compute: V·fraction constant
            pairs = [((v, f), (2, f2)) for (v2, f2) in acc if v2 == 2 for (v, f) in acc
                     if v > 2 and abs(v * f - 2 * f2) < 1e-9]
            vv, figs = _better_pairs(acc, pairs, lambda a, b: (f"V={_int(a[0])} frac {_num(a[1])}",
                                                               f"V=2 frac {_num(b[1])}"))
            if vv:
                out.append(Verdict(st.name, claims[2], _combine(vv), "; ".join(figs) + _below_floor(*acc.values()),
                                   RULES["better"], st.command("gpu"), setting))
    for c in claims:
        if not any(v.claim == c for v in out):
            out.append(_no_data(st, c, RULES["better"]))
    # low-dimensional projector with lambd ≈ 1/D against D = 2048
    claim = "D = 128 with lambd ≈ 1/D matches D = 2048"
    found = False
    if not runs.empty:
        bt = runs[runs["regularizer"] == "barlow_twins"]
        lam = bt["hp"].map(lambda h: h.get("lambd", math.nan)).astype(float)
        low = bt[(bt["dim"] == 128) & (np.abs(lam * 128 - 1) < 0.05)]
        high = bt[bt["dim"] == 2048]
        nod = [k for k in _SETTING if k not in ("dim", "projector")]  # the projector's spec ends with D
        for _, lo_row in low.drop_duplicates(subset=nod).iterrows():
            same = lambda t: t[np.logical_and.reduce([(t[k] == lo_row[k]) | (t[k].isna() & pd.isna(lo_row[k]))
                                                      for k in nod])]
            a_rows, b_rows = same(low), same(high)
            if b_rows.empty:
                continue
            a, b = _arm(a_rows), _arm(b_rows)
            v, fig = _comparable(a, b)
            out.append(Verdict(st.name, claim, v, f"D=128 lambd 1/128 {a.text()} vs D=2048 lambd "
                               f"{_num(b_rows['hp'].iloc[0].get('lambd'))} {b.text()}: {fig}", RULES["comparable"],
                               "" if v == "supported" else st.command("gpu"),
                               _setting_text(_setting_key(lo_row)).replace("D=128 ", "")))
            found = True
    if not found:
        out.append(_no_data(st, claim, RULES["comparable"]))
    return out


COLLAPSE_RULE = (f"prevents collapse = the effective rank of the backbone's representation with the term ≥ "
                 f"{COLLAPSE_RATIO}× that without it, or the effective rank and the std of the normalised embeddings "
                 f"(projector output) both ≥ {COLLAPSE_RATIO}×; not supported when every ratio < {NO_EFFECT_RATIO}; "
                 "else inconclusive (all on the test set). The representation is measured because normalised "
                 "embeddings cannot show a collapse of scale: without its variance term VICReg shrinks its "
                 "embeddings, whose normalised directions then look spread out while the backbone's rank drops")


def _collapse(on: pd.DataFrame, off: pd.DataFrame) -> tuple[str, list[str]]:
    """(verdict, figures) of "the runs ``on`` are less collapsed than the runs ``off``" (:data:`COLLAPSE_RULE`)."""
    figs, ratio = [], {}
    for m in ("backbone_effective_rank", "effective_rank", "std_normalized"):
        a, b = _arm(on, m), _arm(off, m)
        if a.n == 0 or b.n == 0:
            continue
        ratio[m] = a.mean / b.mean if b.mean > 0 else math.inf
        figs.append(f"{m} {_num(a.mean)} vs {_num(b.mean)} (×{_num(ratio[m])})")
    if "effective_rank" not in ratio or "std_normalized" not in ratio:
        return "no data", figs
    if (ratio.get("backbone_effective_rank", 0) >= COLLAPSE_RATIO
            or min(ratio["effective_rank"], ratio["std_normalized"]) >= COLLAPSE_RATIO):
        return "supported", figs
    if max(ratio.values()) < NO_EFFECT_RATIO:
        return "not supported", figs
    return "inconclusive", figs


def verdict_variance(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    claim = "the variance term prevents collapse (effective rank of the representation and of the embeddings, std)"
    rule = "with std_coeff > 0 against std_coeff = 0: " + COLLAPSE_RULE
    runs = _train(df)
    if not runs.empty:
        runs = runs[runs["regularizer"].isin(("vicreg", "vicreg_fft"))]
        std = runs["hp"].map(lambda h: h.get("std_coeff", math.nan)).astype(float)
        runs = runs.assign(_std=std)
        for key, g in _groups(runs):
            for reg in ("vicreg", "vicreg_fft"):
                g_on = g[(g["regularizer"] == reg) & (g["_std"] > 0)]
                g_off = g[(g["regularizer"] == reg) & (g["_std"] == 0)]
                if g_on.empty or g_off.empty:
                    continue
                v, figs = _collapse(g_on, g_off)
                la, lb = _arm(g_on), _arm(g_off)
                figs.append(f"linear top-1 {la.text()} vs {lb.text()}")
                out.append(Verdict(st.name, claim, v, f"{reg} std_coeff {_num(g_on['_std'].iloc[0])} vs 0: "
                                   + "; ".join(figs), rule, "" if v == "supported" else st.command("gpu"),
                                   _setting_text(key)))
    if not out:
        out.append(_no_data(st, claim, rule))
    return out + _variance_add_on(_train(df), st)


def _variance_add_on(runs: pd.DataFrame, st: Study) -> list[Verdict]:
    """Claim 4b: VICReg's variance term added to another method (``variance_coeff`` > 0) against the same method
    without it, in the same setting (same EMA decay and predictor)."""
    claim_c = "the variance term prevents the collapse of another method when added to it"
    claim_a = "adding the variance term keeps the accuracy of a method that does not collapse without it"
    rule_c = (f"arms where the method without the add-on collapsed (std of the normalised embeddings < "
              f"{COLLAPSED_STD:g}/√D), with against without the add-on: " + COLLAPSE_RULE)
    rule_a = "arms where the method without the add-on did not collapse: " + RULES["comparable"]
    out: list[Verdict] = []
    if not runs.empty:
        runs = runs[~runs["regularizer"].isin(("vicreg", "vicreg_fft"))]
    for key, g in _groups(runs):
        arms = g.assign(_pred=g["predictor_hidden"].fillna(-1), _ema=g["ema_tau"].astype(float).fillna(0.0))
        for (reg, ema, pred), a in arms.groupby(["regularizer", "_ema", "_pred"], sort=True):
            off = a[a["variance_addon"] == 0]
            for coeff in sorted(set(a["variance_addon"]) - {0.0}):
                on = a[a["variance_addon"] == coeff]
                if off.empty or on.empty:
                    continue
                what = f"{reg}" + (f" EMA {_num(ema)}" if reg in ("byol", "directpred", "isoloss") else "") + (
                    (" no predictor" if pred == 0 else f" predictor {int(pred)}") if reg == "byol" else "")
                dim = float(key[_SETTING.index("dim")] or math.nan)
                std_off = _arm(off, "std_normalized")
                collapsed = std_off.n > 0 and std_off.mean < COLLAPSED_STD / math.sqrt(dim)
                collapse_v, figs = _collapse(on, off)
                la, lb = _arm(on), _arm(off)
                acc_v, acc_fig = _comparable(la, lb)
                figs.append(f"linear top-1 {la.text()} vs {lb.text()}: {acc_fig}")
                head = f"{what}: variance_coeff {_num(coeff)} vs 0: "
                if collapsed:
                    out.append(Verdict(st.name, claim_c, collapse_v, head + "; ".join(figs), rule_c,
                                       "" if collapse_v == "supported" else st.command("gpu"), _setting_text(key)))
                else:
                    out.append(Verdict(st.name, claim_a, acc_v, head + "; ".join(figs), rule_a,
                                       "" if acc_v == "supported" else st.command("gpu"), _setting_text(key)))
    if not any(v.claim == claim_c for v in out):
        out.append(_no_data(st, claim_c, rule_c, "no run of a collapsing method with and without the add-on"))
    return out


def verdict_isoloss(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    claim = "IsoLoss learns robustly without the EMA target, where DirectPred / BYOL need it"
    rule = ("for each method: drop in linear top-1 from EMA (tau > 0) to none (tau = 0), counted beyond "
            f"max({ACC_POINTS:g} points, {ACC_STDS:g} × seed std). Supported: IsoLoss does not drop and DirectPred "
            "or BYOL does; not supported: IsoLoss drops; inconclusive: none drops (the setting does not stress them)")
    runs = _plain(_train(df))
    if not runs.empty:
        runs = runs[runs["regularizer"].isin(("isoloss", "directpred", "byol"))]
        for key, g in _groups(runs):
            ema = g["ema_tau"].astype(float)
            res, figs = {}, []
            for reg in ("isoloss", "directpred", "byol"):
                on, off = g[(g["regularizer"] == reg) & (ema > 0)], g[(g["regularizer"] == reg) & (ema == 0)]
                if on.empty or off.empty:
                    continue
                a, b = _arm(off), _arm(on)
                d, m = a.mean - b.mean, _margin(a, b)
                ra, rb = _arm(off, "effective_rank"), _arm(on, "effective_rank")
                res[reg] = (d < -m) if (a.n and b.n) else None
                if a.n == 0 and a.runs:  # every run without EMA failed (diverged): that is a drop
                    res[reg] = True
                figs.append(f"{reg}: no EMA {a.text()} vs EMA {b.text()} (Δ {d:+.2f}, margin {m:.2f}; eff. rank "
                            f"{_num(ra.mean)} vs {_num(rb.mean)})")
            if "isoloss" not in res or len(res) < 2:
                continue
            floor = _arm(g)
            if math.isfinite(floor.init):
                figs.append(f"network at initialisation {_num(floor.init, 4)}")
            if res["isoloss"] is None:
                v = "inconclusive"
            elif res["isoloss"]:
                v = "not supported"
            elif any(res.get(r) for r in ("directpred", "byol")):
                v = "supported"
            else:
                v = "inconclusive"
            out.append(Verdict(st.name, claim, v, "; ".join(figs), rule, "" if v != "inconclusive" else
                               st.command("gpu"), _setting_text(key)))
    if not out:
        out.append(_no_data(st, claim, rule))
    return out


def verdict_gram(df: pd.DataFrame, st: Study) -> list[Verdict]:
    out = []
    claim = "the Gram form gives the same loss values and gradients as the cross-correlation form"
    rule = f"max relative difference ≤ {GRAM_TOL_F32:g} (float32) and ≤ {GRAM_TOL_F64:g} (float64)"
    chk = _checks(df, st.name, "values")
    if chk.empty:
        out.append(_no_data(st, claim, rule))
    else:
        r = chk.iloc[-1]
        f32 = max(_metric(r, "value_rel_diff_float32"), _metric(r, "grad_rel_diff_float32"))
        f64 = max(_metric(r, "value_rel_diff_float64"), _metric(r, "grad_rel_diff_float64"))
        v = "supported" if f32 <= GRAM_TOL_F32 and f64 <= GRAM_TOL_F64 else "not supported"
        out.append(Verdict(st.name, claim, v, f"barlow_twins, vicreg over {int(_metric(r, 'shapes'))} shapes: value "
                           f"{_num(_metric(r, 'value_rel_diff_float32'))} / grad "
                           f"{_num(_metric(r, 'grad_rel_diff_float32'))} (float32); value "
                           f"{_num(_metric(r, 'value_rel_diff_float64'))} / grad "
                           f"{_num(_metric(r, 'grad_rel_diff_float64'))} (float64)", rule, "", "exact check"))
    claim = "the Gram form gives the same training curves"
    rule = (f"two training runs with the same seed, algorithm gram vs cross_correlation: max relative difference of "
            f"the logged losses ≤ {GRAM_CURVE_TOL:g}")
    chk = _checks(df, st.name, "curves")
    if chk.empty:
        out.append(_no_data(st, claim, rule))
    else:
        r = chk.iloc[-1]
        d = _metric(r, "loss_rel_diff")
        v = "supported" if d <= GRAM_CURVE_TOL else "not supported"
        out.append(Verdict(st.name, claim, v, f"max rel. diff {_num(d)} over {int(_metric(r, 'steps'))} steps × "
                           f"{int(_metric(r, 'runs'))} regularizers (synthetic data, D={int(_metric(r, 'dim'))}, "
                           f"N={int(_metric(r, 'batch'))})", rule, "", "exact check"))
    # the measured speed-up
    claim = "the Gram form is faster where N < D (its measured speed-up)"
    rule = f"speed-up = time(cross_correlation) / time(gram) at the same shape; supported when > {SPEEDUP_MIN} at some N < D"
    b = _bench(df)
    rows = []
    if not b.empty and "algorithm" in b.columns:
        b = b[(b["status"] == "ok") & b["regularizer"].isin(("barlow_twins", "vicreg"))]
        for key, g in b.groupby(["device_name", "threads", "dtype"], dropna=False):
            piv = g.pivot_table(index=["regularizer", "batch", "dim", "views"], columns="algorithm", values="time_s",
                                aggfunc="median")
            if not {"gram", "cross_correlation"} <= set(piv.columns):
                continue
            piv = piv.dropna(subset=["gram", "cross_correlation"])
            if piv.empty:
                continue
            sp = (piv["cross_correlation"] / piv["gram"]).rename("speedup").reset_index()
            narrow = sp[sp["batch"] < sp["dim"]]
            wide = sp[sp["batch"] > sp["dim"]]
            figs = []
            if not narrow.empty:
                best = narrow.loc[narrow["speedup"].idxmax()]
                figs.append(f"best ×{_num(best['speedup'])} ({best['regularizer']}, N={_int(best['batch'])}, D={_int(best['dim'])})")
                n256 = narrow[(narrow["batch"] == 256)]
                if not n256.empty:
                    figs.append("N=256: " + ", ".join(f"{r_['regularizer']} D={_int(r_['dim'])} ×{_num(r_['speedup'], 2)}"
                                                      for _, r_ in n256[n256["dim"] >= 1024].iterrows()))
            if not wide.empty:
                worst = wide.loc[wide["speedup"].idxmin()]
                figs.append(f"N > D: down to ×{_num(worst['speedup'])} (N={_int(worst['batch'])}, D={_int(worst['dim'])}, "
                            "the cross-correlation form is the faster there)")
            v = ("supported" if not narrow.empty and narrow["speedup"].max() > SPEEDUP_MIN else
                 "not supported" if not narrow.empty else "inconclusive")
            rows.append(Verdict(st.name, claim, v, "; ".join(figs), rule, "",
                                f"{_device_short(key[0])}, {_int(key[1])} thread(s), {key[2]}"))
    out += rows or [Verdict(st.name, claim, "no data", "", rule,
                            "sslbench sweep --config results/sweeps/configs/scaling-dim.toml")]
    return out


# ==============================================================================================================
# The registry
# ==============================================================================================================
#: the add-on arms of study "variance": SimSiam (BYOL without EMA) without / with its predictor, without / with
#: the variance term
_ADD_ON_ARMS = ("nopred", "nopred-var", "pred", "pred-var")

STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("fft", "FFT-relaxed Barlow Twins / VICReg", "Shigeto et al., CVPR 2023",
          "comparable downstream accuracy to Barlow Twins / VICReg, less memory and faster training when D is large; "
          "the permutation trick breaks the spurious minima that the relaxation creates",
          ["fft-cpu-exact.toml", "fft-cpu-permute-true.toml", "fft-cpu-permute-false.toml", "fft-cpu-vicreg.toml",
           "fft-cpu-vicreg-permute-false.toml", "fft-cpu-bt-full.toml", "fft-cpu-bt-full-permute-false.toml"],
          ["fft-gpu-exact.toml", "fft-gpu-permute-true.toml", "fft-gpu-permute-false.toml"],
          "9 runs of ~30 s, 9 of ~80 s and 6 of ~9 min (~70 min on one core), plus the scaling sweeps of "
          "results/sweeps",
          "9 runs of ~1 h (CIFAR-10, ResNet-18, 200 epochs)", verdict_fft, ("permutation",)),
    Study("sfrik", "SFRIK", "Zheng et al. 2022",
          "cost O(N²·D) through the Gram matrix, memory O(N²); accuracy comparable to VICReg and uniformity; the "
          "degree-2 truncation penalises ‖EᵀE‖_F², an information-maximisation (covariance) regulariser",
          ["sfrik-cpu.toml"], ["sfrik-gpu.toml"], "9 runs of ~80 s (~12 min)",
          "9 runs of ~1 h (CIFAR-10, ResNet-18, 200 epochs)", verdict_sfrik, ("degree2",)),
    Study("views", "Many augmentations, low-dimensional projectors", "Agrawal et al.",
          "more augmentations per sample improve sample efficiency (the same accuracy with up to 4× less pretraining "
          "data) and convergence; low-dimensional projectors (D = 128, lambd = 1/128) work when the orthogonality "
          "pressure is raised", ["views-cpu.toml", "views-cpu-d2048.toml", "views-cpu-vicreg.toml",
                                     "views-cpu-full-d128.toml", "views-cpu-full-d2048.toml"],
          ["views-gpu.toml", "views-gpu-d2048.toml"],
          "10 runs of 10-60 s, 12 of 1-5 min and 4 of ~9 min (~70 min on one core)", "10 runs of 0.5-4 h (CIFAR-10, ResNet-18, 100 epochs)", verdict_views),
    Study("variance", "VICReg's variance term", "Bardes, Ponce, LeCun 2022",
          "the variance term prevents collapse, and stabilises other methods when added to them",
          ["variance-cpu-std25.toml", "variance-cpu-std0.toml"] + [f"variance-cpu-addon-{a}.toml" for a in _ADD_ON_ARMS],
          ["variance-gpu-std25.toml", "variance-gpu-std0.toml"] + [f"variance-gpu-addon-{a}.toml" for a in _ADD_ON_ARMS],
          "12 runs of ~80 s (~16 min)", "8 runs of ~1 h (CIFAR-10, ResNet-18, 200 epochs)", verdict_variance),
    Study("isoloss", "IsoLoss vs DirectPred vs BYOL", "Halvagal, Laborieux, Zenke, NeurIPS 2023",
          "IsoLoss learns robustly where DirectPred/BYOL need tuning (e.g. without EMA); comparable accuracy",
          ["isoloss-cpu-ema.toml", "isoloss-cpu-noema.toml"], ["isoloss-gpu-ema.toml", "isoloss-gpu-noema.toml"],
          "12 runs of ~80 s (~16 min)", "6 runs of ~1 h (CIFAR-10, ResNet-18, 200 epochs)", verdict_isoloss),
    Study("gram", "The exact Gram form", "sslbench (regularizers.md §1)",
          "Σ_{k,l} C_kl² = ‖AAᵀ ⊙ BBᵀ‖_sum / N²: the same value at O(N²·D) time, O(N² + N·D) memory",
          [], [], "exact checks, ~20 s (speed-up from the scaling sweeps of results/sweeps)",
          "the scaling sweeps on the GPU: sslbench sweep --config results/sweeps/configs/scaling-dim.toml "
          "--device cuda", verdict_gram, ("values", "curves")),
)}


def verdicts(df: pd.DataFrame | None, studies: Sequence[str] | None = None) -> list[Verdict]:
    """Every claim's verdict rows (in :data:`STUDIES` order) from the loaded results (``load_results``)."""
    df = df if df is not None else pd.DataFrame()
    out = []
    for name in studies or list(STUDIES):
        st = STUDIES[name]
        try:
            out += st.verdict(df, st)
        except (KeyError, ValueError, TypeError) as exc:  # a malformed store must not hide the other studies
            out.append(Verdict(name, st.title, "inconclusive", f"could not evaluate: {type(exc).__name__}: {exc}",
                               "", st.command()))
    return out


def verdict_table(rows: Sequence[Verdict]) -> pd.DataFrame:
    cols = ["study", "claim", "verdict", "setting", "figures", "rule", "command"]
    return pd.DataFrame([[getattr(r, c) for c in cols] for r in rows], columns=cols)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_verdicts(rows: Sequence[Verdict], fmt: str = "text") -> str:
    if fmt == "markdown":
        lines = ["| study | claim | verdict | setting | figures | to settle |", "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.study} | {_md(r.claim)} | **{r.verdict}** | {_md(r.setting)} | {_md(r.figures)} | "
                         f"{'`' + _md(r.command) + '`' if r.command else ''} |")
        # in study order, then in the order the rows first state them (a set's order changes between processes)
        rules = list(dict.fromkeys((r.study, r.rule) for r in rows if r.rule))
        rules.sort(key=lambda t: list(STUDIES).index(t[0]) if t[0] in STUDIES else 99)
        lines += ["", "Rules:", ""] + [f"- {s}: {_md(rule)}" for s, rule in rules]
        return "\n".join(lines)
    if fmt != "text":
        raise ValueError(f"fmt={fmt!r}: choose text or markdown")
    lines = []
    current = None
    for r in rows:
        if r.study != current:
            current = r.study
            st = STUDIES.get(r.study)
            lines.append("")
            lines.append(f"== {r.study}: {st.title} ({st.paper})" if st else f"== {r.study}")
            if st:
                lines.append(f"   claim: {st.claim}")
        lines.append(f"  [{r.verdict.upper()}] {r.claim}" + (f"  ({r.setting})" if r.setting else ""))
        if r.figures:
            lines.append(f"      figures: {r.figures}")
        if r.rule:
            lines.append(f"      rule: {r.rule}")
        if r.command:
            lines.append(f"      to settle: {r.command}")
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    lines.append("")
    lines.append("verdicts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return "\n".join(lines).lstrip("\n")


# ==============================================================================================================
# Exact checks that need no training (torch)
# ==============================================================================================================
def _rel(a, b) -> float:
    import torch

    d = (a - b).abs().max().item()
    s = max(a.abs().max().item(), b.abs().max().item())
    return d / s if s > 0 else d


def check_gram_values(seed: int = 0) -> dict:
    """Loss and gradients of algorithm gram vs cross_correlation (barlow_twins, vicreg) on random inputs."""
    import torch

    from sslbench import regularizers

    g = torch.Generator().manual_seed(seed)
    shapes = [(64, 32), (32, 128), (128, 128), (256, 64)]
    out = {}
    for dtype in (torch.float32, torch.float64):
        tag = str(dtype).split(".")[-1]
        vmax = gmax = 0.0
        for name in ("barlow_twins", "vicreg"):
            for n, d in shapes:
                za = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
                zb = (za + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype))
                res = []
                for algo in ("cross_correlation", "gram"):
                    a, b = za.clone().requires_grad_(True), zb.clone().requires_grad_(True)
                    loss = regularizers.create(name, algorithm=algo)(a, b).loss
                    loss.backward()
                    res.append((loss.detach(), torch.cat([a.grad.flatten(), b.grad.flatten()])))
                vmax = max(vmax, _rel(res[0][0].reshape(1), res[1][0].reshape(1)))
                gmax = max(gmax, _rel(res[0][1], res[1][1]))
        out[f"value_rel_diff_{tag}"] = vmax
        out[f"grad_rel_diff_{tag}"] = gmax
    out["shapes"] = len(shapes)
    return out


def check_gram_curves(steps: int = 8, seed: int = 0) -> dict:
    """Two short training runs per regularizer (same seed, synthetic data), gram vs cross_correlation: the max
    relative difference of the per-step losses."""
    import torch

    from sslbench.training.train import TrainConfig, train

    dim, batch = 64, 64
    worst = 0.0
    for name in ("barlow_twins", "vicreg"):
        curves = []
        for algo in ("cross_correlation", "gram"):
            losses: list[float] = []
            cfg = TrainConfig(regularizer=name, hparams={"algorithm": algo}, dataset="synthetic",
                              data_options={"num_samples": 256, "height": 16, "width": 16}, backbone="convnet",
                              projector="64", dim=dim, batch_size=batch, epochs=1, max_steps=steps, seed=seed,
                              device="cpu", eval=False, eval_init=False, out=None, log_dir=None,
                              checkpoint_dir=None, progress=False, verbose=False, warmup_epochs=0.0, lr=0.05)
            torch.manual_seed(seed)
            train(cfg, on_step=lambda info: losses.append(float(info.output.loss.detach())))
            curves.append(torch.tensor(losses, dtype=torch.float64))
        if curves[0].numel() != curves[1].numel() or curves[0].numel() == 0:
            raise RuntimeError(f"{name}: the two runs logged {curves[0].numel()} and {curves[1].numel()} steps")
        worst = max(worst, float(((curves[0] - curves[1]).abs() / curves[0].abs().clamp_min(1e-12)).max()))
    return {"loss_rel_diff": worst, "steps": steps, "runs": 2, "dim": dim, "batch": batch}


def check_degree2(batches: int = 24, n: int = 256, d: int = 64, seed: int = 0) -> dict:
    """SFRIK's MMD with only the degree-2 weight against ‖EᵀE/N − I/D‖_F² over random batches of unit-norm
    embeddings of varying anisotropy: the affine fit."""
    import torch

    from sslbench.regularizers.sfrik import mmd_uniform

    g = torch.Generator().manual_seed(seed)
    w2 = 40.0
    xs, ys = [], []
    for b in range(batches):
        scale = torch.logspace(0, -3 * b / max(batches - 1, 1), d, dtype=torch.float64)  # isotropic → anisotropic
        mean = torch.randn(d, generator=g, dtype=torch.float64) * (b % 3) * 0.5
        z = torch.randn(n, d, generator=g, dtype=torch.float64) * scale + mean
        e = z / z.norm(dim=1, keepdim=True)
        c = e.T @ e / n
        xs.append(float(((c - torch.eye(d, dtype=torch.float64) / d) ** 2).sum()))
        ys.append(float(mmd_uniform(e, (0.0, w2))))
    x, y = np.array(xs), np.array(ys)
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    r2 = 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    return {"r2": r2, "slope": float(slope), "intercept": float(icpt), "slope_derived": w2 * d / (d - 1),
            "batches": batches, "dim": d, "batch": n}


def check_permutation(batches: int = 16, n: int = 512, d: int = 128, draws: int = 8, seed: int = 0) -> dict:
    """The FFT relaxation's off-diagonal penalty against the exact one (Barlow Twins), with and without the
    permutation, over (a) structured batches whose correlations sit on one wrapped diagonal with alternating signs
    (their sum, all the unpermuted relaxation sees, cancels: a spurious minimum) and (b) random mixtures. With the
    permutation, the relaxed penalty is averaged over ``draws`` permutations (training draws a fresh one per step,
    so the expectation over steps is what the optimiser follows)."""
    import torch

    from sslbench import regularizers

    g = torch.Generator().manual_seed(seed)
    exact = regularizers.create("barlow_twins", algorithm="cross_correlation")
    res: dict[str, list] = {k: [] for k in ("ex_s", "p_s", "np_s", "ex_r", "p_r", "np_r")}
    sign = torch.tensor([1.0 if k % 2 == 0 else -1.0 for k in range(d)], dtype=torch.float64)
    for b in range(batches):
        c = 0.6 * b / max(batches - 1, 1)
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        m = torch.eye(d, dtype=torch.float64) + c * torch.diag(sign[:-1], 1)
        m[-1, 0] = c * sign[-1]
        mr = torch.eye(d, dtype=torch.float64) + c * torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        for tag, mix in (("s", m), ("r", mr)):
            za, zb = x, x @ mix
            res[f"ex_{tag}"].append(float(exact(za, zb).terms["off_diagonal"]))
            for key, permute in (("p", True), ("np", False)):
                reg = regularizers.create("barlow_twins_fft", permute=permute,
                                          generator=torch.Generator().manual_seed(seed + b))
                k = draws if permute else 1
                res[f"{key}_{tag}"].append(sum(float(reg(za, zb).terms["off_diagonal"]) for _ in range(k)) / k)

    def r(a, b) -> float:
        a, b = np.array(a), np.array(b)
        if a.std() == 0 or b.std() == 0:
            return 0.0
        return float(np.corrcoef(a, b)[0, 1])

    return {"r_permute_structured": r(res["p_s"], res["ex_s"]), "r_no_permute_structured": r(res["np_s"], res["ex_s"]),
            "r_permute_random": r(res["p_r"], res["ex_r"]), "r_no_permute_random": r(res["np_r"], res["ex_r"]),
            "batches": batches, "dim": d, "batch": n, "draws": draws}


CHECKS: dict[tuple[str, str], Callable[[], dict]] = {
    ("fft", "permutation"): check_permutation,
    ("sfrik", "degree2"): check_degree2,
    ("gram", "values"): check_gram_values,
    ("gram", "curves"): check_gram_curves,
}


def run_checks(study: str, out: str | Path) -> list[dict]:
    """Run the exact checks of ``study`` and append one ``claim_check`` record each to ``out``."""
    import time

    import torch

    from sslbench.records import append_record, make_record

    records = []
    for check in STUDIES[study].checks:
        t0 = time.perf_counter()
        with torch.no_grad() if check in ("permutation", "degree2") else _nullcontext():
            metrics = CHECKS[(study, check)]()
        metrics["wall_s"] = time.perf_counter() - t0
        rec = make_record(CHECK_KIND, {"study": study, "check": check}, metrics)
        append_record(out, rec)
        records.append(rec)
        print(f"check {study}/{check}: " + ", ".join(f"{k}={_num(v)}" for k, v in metrics.items()), flush=True)
    return records


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ==============================================================================================================
# Command line
# ==============================================================================================================
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="the folder of records to read (recursively). Default: results")
    parser.add_argument("--format", choices=("text", "markdown"), default="text", help="output format. Default: text")
    parser.add_argument("--study", nargs="+", choices=list(STUDIES), metavar="NAME",
                        help=f"only these studies ({', '.join(STUDIES)}). Default: all")
    parser.add_argument("--list", action="store_true", help="list the studies, their commands and estimated cost")
    parser.add_argument("--run", nargs="+", choices=list(STUDIES) + ["all"], metavar="STUDY",
                        help="run the studies' exact checks and the missing cases of their grids into "
                             f"{STUDIES_DIR}/<device>-<study>.jsonl, then report")
    parser.add_argument("--scale", choices=("cpu", "gpu"), default="cpu",
                        help="with --run: the CPU-sized (minutes) or the GPU-sized setting. Default: cpu")
    parser.add_argument("--dry-run", action="store_true", help="with --run: list the cases, run nothing")


def _list() -> str:
    lines = []
    for st in STUDIES.values():
        lines.append(f"{st.name}: {st.title} ({st.paper})")
        lines.append(f"    claim: {st.claim}")
        if st.checks:
            lines.append(f"    exact checks (no training): {', '.join(st.checks)}")
        for scale, cost in (("cpu", st.cost_cpu), ("gpu", st.cost_gpu)):
            lines.append(f"    {scale}: {st.command(scale)}    [{cost}]")
            for c in st.sweep_commands(scale):
                lines.append(f"         = {c}")
    return "\n".join(lines)


def _run_study(name: str, scale: str, dry_run: bool) -> int:
    from sslbench.execution import sweep

    st = STUDIES[name]
    device = "cuda" if scale == "gpu" else "cpu"
    if scale == "gpu":
        import torch

        if not torch.cuda.is_available() and not dry_run:
            print(f"sslbench report: error: --scale gpu needs a CUDA device; none is available here. Run it on a "
                  f"GPU machine, or use --scale cpu", file=sys.stderr)
            return 2
    out = Path(STUDIES_DIR) / f"{sweep.device_slug(device)}-{name}.jsonl"
    rc = 0
    if st.checks and dry_run:
        print(f"{name}: exact checks {', '.join(st.checks)} (no training) -> {out}")
    elif st.checks:
        out.parent.mkdir(parents=True, exist_ok=True)
        run_checks(name, out)
    for cfg in (st.cpu if scale == "cpu" else st.gpu):
        path = CONFIG_DIR / cfg
        if not path.is_file():
            print(f"sslbench report: error: the config {path} is missing", file=sys.stderr)
            return 2
        try:
            shown = path.relative_to(Path.cwd())
        except ValueError:
            shown = path
        argv = ["--config", str(shown), "--out", str(out), "--no-progress"] + (["--dry-run"] if dry_run else [])
        print(f"$ sslbench sweep {' '.join(argv)}", flush=True)
        rc = max(rc, sweep.main(argv))
    return rc


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(_list())
        return 0
    if args.run:
        names = list(STUDIES) if "all" in args.run else list(dict.fromkeys(args.run))
        for name in names:
            rc = _run_study(name, args.scale, args.dry_run)
            if rc == 2 or rc == 130:
                return rc
        if args.dry_run:
            return 0
        args.study = names
    from sslbench.analysis import load_results

    root = Path(args.results)
    if not root.exists():
        print(f"sslbench report: error: --results {root} does not exist", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        df = load_results(root)
    for w in caught:
        print(f"sslbench report: warning: {w.message}", file=sys.stderr)
    if df.empty:
        print(f"sslbench report: no records under {root}: every claim is 'no data'. Produce them with "
              f"`sslbench report --run STUDY` (see `sslbench report --list`) or point --results at another "
              f"folder.", file=sys.stderr)
    print(format_verdicts(verdicts(df, args.study), args.format))
    return 0
