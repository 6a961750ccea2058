"""`sslbench report`: the seed papers' claims as a verdict table, with the figures behind each verdict.

One named study per claim (:data:`STUDIES`: ``fft``, ``sfrik``, ``views``, ``variance``, ``isoloss``, ``gram``).
Each has the claim as the paper states it (see the spec, ``regularizers.md``), the sweep grids that measure it
in a CPU-sized setting (Fashion-MNIST, minutes on 2 cores) and a GPU-sized one (CIFAR-10, ResNet-18), as TOML
configs of ``sslbench sweep`` under ``results/studies/configs/``, a few exact checks that need no training
(``sslbench.execution.studies.run_checks``, stored as records of kind ``claim_check``), and a verdict function.

* ``sslbench report [--results DIR] [--format text|markdown] [--study NAME ...]`` reads every record under DIR
  (``results/`` by default: the reference sweeps of ``results/sweeps/`` answer the cost claims, the study stores
  ``results/studies/<device>-<study>.jsonl`` the others) and prints one row per claim: the verdict, the figures
  behind it, the rule that decided it and the command that produces the data a verdict lacks.
* ``sslbench report --list``: the studies, their commands and estimated cost.

The report only reads. Running a study is the torch side's: ``sslbench sweep --study NAME [--scale cpu|gpu|gpu-1h]``
(:mod:`sslbench.execution.studies`) runs its exact checks and the missing cases of its grids (resumable; with
``--dry-run``, ``--executor local|slurm``) into ``results/studies/<device>-<study>.jsonl``. ``gpu`` is the full GPU
budget (``<study>-gpu*.toml``, 200 epochs, views 100), ``gpu-1h`` the same arms in one GPU-hour at the assumed
throughput of ``results/studies/README.md`` (``<study>-gpu-1h*.toml``, fewer epochs); both write the same store,
and the report keeps settings with different epochs apart. ``report --run``, the old spelling, says so in one line.

Verdicts (:data:`VERDICTS`): ``supported``, ``not supported``, ``inconclusive`` (the data exist but do not settle
the claim at this scale, e.g. a difference inside the seed noise, one seed only, or a noisy memory fit) and
``no data``. Every figure comes from the records; the thresholds are constants of the study's claims module,
printed with each row.

Each study's rules and thresholds live in its module of :mod:`sslbench.analysis.claims`; this module holds the
command, the registry of the studies (:data:`STUDIES`: what each runs, read by ``sslbench sweep --study`` too) and
the rendering. It imports pandas and numpy only, with every option, so the dashboard calls :func:`verdicts` on
loaded results.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd

from sslbench.analysis import load_results
from sslbench.analysis.claims import fft, gram, isoloss, sfrik, variance, views
from sslbench.analysis.claims.common import (
    _RUN_METRICS,
    CPU_SCRIPT,
    EARLIER,
    VERDICTS,
    Study,
    Verdict,
    shared_runs,
    usable_records,
)
from sslbench.analysis.claims.targeted import CONFIG_DIR
from sslbench.records.constants import CHECK_KIND
from sslbench.records.text import markdown_cell, one_line, terminal

__all__ = ["VERDICTS", "CHECK_KIND", "STUDIES", "REPORT_COLUMNS", "REPORT_METRICS", "Study", "Verdict", "verdicts",
           "verdict_table",
           "format_verdicts", "add_arguments", "run"]

#: the flattened columns the studies' rules read besides the base and derived ones of ``load_results``: the case, every
#: metric (a record holding a non-number in any metric is screened out, :func:`usable_records`) and the device model.
#: ``load_results(root, columns=REPORT_COLUMNS)`` gives the same verdicts without the store's other columns
#: (tests/test_analysis_columns.py)
REPORT_COLUMNS = ("case.", "metrics.", "env.device_name")

#: the metrics the studies' rules read (the training runs' table, the CPU grid's wall time, the exact checks' needs):
#: ``sslbench report`` loads these and, of the other metrics, only the columns that hold something other than a
#: number somewhere (``load_results(..., unless_numbers=("metrics.",))``), which :func:`usable_records` screens
#: for; the verdicts and warnings are those of the whole of :data:`REPORT_COLUMNS` (tests/test_report_memory.py),
#: in about two thirds of the memory at 10^6 records
REPORT_METRICS = tuple(f"metrics.{m}" for m in dict.fromkeys(
    (*_RUN_METRICS, "draws", *fft.PERMUTATION_NEEDS, *gram.VALUES_NEEDS,
     *gram.CURVES_NEEDS, *sfrik.DEGREE2_NEEDS)))



# ==============================================================================================================
# The registry
# ==============================================================================================================
#: the add-on arms of study "variance": SimSiam (BYOL without EMA) without / with its predictor, without / with
#: the variance term
_ADD_ON_ARMS = ("nopred", "nopred-var", "pred", "pred-var")


def _earlier(study: str) -> list[str]:
    """The CPU configs of the earlier setting (the SGD recipe, 2026-11-28: <study>-cpu*.toml but -cpu2): kept for
    their records, which the report shows apart; superseded by the AdamW-recipe grids."""
    return sorted(p.name for p in CONFIG_DIR.glob(f"{study}-cpu*.toml") if not p.name.startswith(f"{study}-cpu2"))


def _cpu_cost(runs: int, per_run: str, total_min: int) -> str:
    """The cost note of an AdamW-recipe CPU grid (<study>-cpu2*.toml, 3 seeds), ESTIMATED for 2 idle cores from the
    default recipe's measured 0.21 s per step and ~70 s of evaluation on all of the data (results/sweeps/cpu-default;
    results/studies/README.md, "The AdamW recipe")."""
    return (f"{runs} runs of ~{per_run} (half of Fashion-MNIST, 4 epochs, 468 steps), ~{total_min} min on 2 idle "
            "cores (estimated)")


def _gpu_cost(runs: int, epochs: int, per_run: str, projected: str) -> str:
    """The cost note of a GPU grid (the full budget or one GPU-hour): its projection by
    ``benchmarks/project_studies.py`` at the assumed throughput of results/studies/README.md, a per-run time and the
    study's total (tests/test_report.py keeps the figures the script's)."""
    return (f"{runs} runs of {epochs} epochs (CIFAR-10, ResNet-18): projected {per_run} each, {projected} in all, on "
            "one GPU at an ASSUMED 17 000 images/s (python benchmarks/project_studies.py --assume-images-per-s 17000)")


STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("fft", "FFT-relaxed Barlow Twins / VICReg", "Shigeto et al., CVPR 2023",
          "comparable downstream accuracy to Barlow Twins / VICReg, less memory and faster training when D is large; "
          "the permutation trick breaks the spurious minima that the relaxation creates",
          ["fft-cpu2-exact.toml", "fft-cpu2-bt-lambd.toml", "fft-cpu2-permute-true.toml", "fft-cpu2-permute-false.toml"],
          ["fft-gpu-exact.toml", "fft-gpu-permute-true.toml", "fft-gpu-permute-false.toml"],
          _cpu_cost(21, "2.4 min", 50) + ", plus the scaling sweeps of results/sweeps",
          _gpu_cost(9, 200, "10.8 min", "1 h 37 min"), fft.verdict, ("permutation",),
          ["fft-gpu-1h-exact.toml", "fft-gpu-1h-permute-true.toml", "fft-gpu-1h-permute-false.toml"],
          _gpu_cost(9, 100, "5.9 min", "53.0 min"), gpu_regularizers=("barlow_twins", "barlow_twins_fft"),
          cpu_seed_min=17, cpu_earlier=_earlier("fft")),
    Study("sfrik", "SFRIK", "Zheng et al. 2022",
          "cost O(N²·D) through the Gram matrix, memory O(N²); accuracy comparable to VICReg and uniformity; the "
          "degree-2 truncation penalises ‖EᵀE‖_F², an information-maximisation (covariance) regulariser",
          ["sfrik-cpu2.toml"], ["sfrik-gpu.toml"], _cpu_cost(9, "2.4 min", 22),
          _gpu_cost(9, 200, "10.8 min", "1 h 37 min"), sfrik.verdict, ("degree2",), ["sfrik-gpu-1h.toml"],
          _gpu_cost(9, 100, "5.9 min", "53.0 min"), gpu_regularizers=("sfrik", "uniformity", "vicreg"), cpu_seed_min=7,
          cpu_earlier=_earlier("sfrik")),
    Study("views", "Many augmentations, low-dimensional projectors", "Agrawal et al.",
          "more augmentations per sample improve sample efficiency (the same accuracy with up to 4× less pretraining "
          "data) and convergence; low-dimensional projectors (D = 128, lambd = 1/128) work when the orthogonality "
          "pressure is raised", ["views-cpu2.toml", "views-cpu2-d128.toml", "views-cpu2-d2048.toml"],
          ["views-gpu.toml", "views-gpu-d2048.toml"],
          _cpu_cost(24, "1-5 min", 49),
          _gpu_cost(10, 100, "2.2 min–20.6 min", "1 h 15 min"), views.verdict,
          gpu_1h=["views-gpu-1h.toml", "views-gpu-1h-d2048.toml", "views-gpu-1h-d128-seed1.toml"],
          cost_gpu_1h=_gpu_cost(12, 50, "1.6 min–10.8 min", "49.2 min"),
          gpu_regularizers=("barlow_twins",), cpu_seed_min=16, cpu_earlier=_earlier("views")),
    Study("variance", "VICReg's variance term", "Bardes, Ponce, LeCun 2022",
          "the variance term prevents collapse, and stabilises other methods when added to them",
          ["variance-cpu2-std25.toml", "variance-cpu2-std0.toml"]
          + [f"variance-cpu2-addon-{a}.toml" for a in _ADD_ON_ARMS],
          ["variance-gpu-std25.toml", "variance-gpu-std0.toml"] + [f"variance-gpu-addon-{a}.toml" for a in _ADD_ON_ARMS],
          _cpu_cost(18, "2.4-2.9 min", 49), _gpu_cost(8, 200, "10.8 min", "1 h 26 min"), variance.verdict,
          gpu_1h=["variance-gpu-1h-std25.toml", "variance-gpu-1h-std0.toml"]
          + [f"variance-gpu-1h-addon-{a}.toml" for a in _ADD_ON_ARMS],
          cost_gpu_1h=_gpu_cost(10, 90, "5.4 min", "54.0 min"),
          gpu_regularizers=("vicreg", "byol"), cpu_seed_min=16, cpu_earlier=_earlier("variance")),
    Study("isoloss", "IsoLoss vs DirectPred vs BYOL", "Halvagal, Laborieux, Zenke, NeurIPS 2023",
          "IsoLoss learns robustly where DirectPred/BYOL need tuning (e.g. without EMA); comparable accuracy",
          ["isoloss-cpu2-ema.toml", "isoloss-cpu2-noema.toml"], ["isoloss-gpu-ema.toml", "isoloss-gpu-noema.toml"],
          _cpu_cost(18, "2.9 min", 52), _gpu_cost(6, 200, "10.8 min", "1 h 05 min"), isoloss.verdict,
          gpu_1h=["isoloss-gpu-1h-ema.toml", "isoloss-gpu-1h-noema.toml"],
          cost_gpu_1h=_gpu_cost(12, 70, "4.4 min", "53.1 min"),
          gpu_regularizers=("isoloss", "directpred", "byol"), cpu_seed_min=17,
          cpu_earlier=_earlier("isoloss")),
    Study("gram", "The exact Gram form", "sslbench (regularizers.md §1)",
          "Σ_{k,l} C_kl² = ‖AAᵀ ⊙ BBᵀ‖_sum / N²: the same value at O(N²·D) time, O(N² + N·D) memory",
          [], [], "exact checks, ~20 s (speed-up from the scaling sweeps of results/sweeps)",
          "the scaling sweeps on the GPU: sslbench sweep --config results/sweeps/configs/scaling-dim.toml "
          "--device cuda", gram.verdict, ("values", "curves")),
)}


def verdicts(df: pd.DataFrame | None, studies: Sequence[str] | None = None) -> list[Verdict]:
    """Every claim's verdict rows (in :data:`STUDIES` order) from the loaded results (``load_results``). Records
    holding something other than a number where a rule reads one are skipped first, each with a ``RuntimeWarning``
    naming it (:func:`~sslbench.analysis.claims.common.usable_records`)."""
    df = usable_records(df)
    with shared_runs():  # the training-run table built once for every study, not once per study
        return _verdicts(df, studies)


def _verdicts(df: pd.DataFrame | None, studies: Sequence[str] | None) -> list[Verdict]:
    out = []
    for name in studies or list(STUDIES):
        st = STUDIES[name]
        if st.cpu:
            measured, runs = measured_seed_min(df, name)
            st = dataclasses.replace(st, cpu_seed_measured=measured, cpu_seed_runs=runs)
        try:
            out += _with_pending(st, st.verdict(df, st), df)
        except (KeyError, ValueError, TypeError) as exc:  # a malformed store must not hide the other studies
            out.append(Verdict(name, st.title, "inconclusive", f"could not evaluate: {type(exc).__name__}: {exc}",
                               "", st.command()))
    return out


def is_earlier(row: Verdict) -> bool:
    """A row of the earlier CPU setting (the SGD recipe, :data:`~sslbench.analysis.claims.common.EARLIER`): shown,
    not counted."""
    return EARLIER in row.setting


def _recipe_runs(df: pd.DataFrame | None, study: str) -> int:
    """The finished (ok) training runs in the study's AdamW-recipe store (``<device>-<study>-cpu2.jsonl``)."""
    if df is None or df.empty or "source" not in df.columns or "kind" not in df.columns:
        return 0
    mine = df["source"].astype(str).str.endswith(f"-{study}-cpu2.jsonl")
    return int((mine & (df["kind"] == "train") & (df["status"] == "ok")).sum())


def measured_seed_min(df: pd.DataFrame | None, study: str) -> tuple[float, int]:
    """(minutes, runs): one seed of every arm of the study's AdamW-recipe CPU grid, measured: the sum over its arms
    (the case without its seed) of each arm's median wall time, training plus evaluation, over the ok runs of the
    study's store ``<device>-<study>-cpu2.jsonl``; (NaN, 0) when none is recorded. The pace is the machine's as it
    was: a shared machine records slower runs than an idle one."""
    need = ("source", "kind", "status", "metrics.train_time_s", "metrics.eval_time_s")
    if df is None or df.empty or any(c not in df.columns for c in need):
        return math.nan, 0
    mine = df[df["source"].astype(str).str.endswith(f"-{study}-cpu2.jsonl") & (df["kind"] == "train")
              & (df["status"] == "ok")]
    wall = (pd.to_numeric(mine["metrics.train_time_s"], errors="coerce")
            + pd.to_numeric(mine["metrics.eval_time_s"], errors="coerce"))
    mine, wall = mine[wall.notna()], wall[wall.notna()]
    if mine.empty:
        return math.nan, 0
    case = [c for c in mine.columns if c.startswith("case.") and c != "case.seed"]
    arm = mine[case].apply(lambda col: col.map(repr)).agg("|".join, axis=1)  # the study's runs only: small
    return float(wall.groupby(arm).median().sum() / 60.0), int(len(mine))


def _with_pending(st: Study, rows: list[Verdict], df: pd.DataFrame | None = None) -> list[Verdict]:
    """``rows`` with the earlier setting's inconclusive rows pointing at the AdamW-recipe grid that supersedes them,
    and, for each claim that has rows of the earlier setting only, a "no data" row saying that its AdamW-recipe arms
    are pending (run by ``results/studies/run-cpu2.sh``)."""
    run = f"STUDIES={st.name} bash {CPU_SCRIPT}"
    out = []
    for r in rows:
        if is_earlier(r) and r.verdict == "inconclusive":
            r = Verdict(r.study, r.claim, r.verdict, r.figures, r.rule,
                        f"superseded by the AdamW-recipe grid: {run}   # {st.cost('cpu')}"
                        + (f"   | GPU: {r.command}" if r.command else ""), r.setting)
        out.append(r)
    claims = dict.fromkeys(r.claim for r in rows)
    done = _recipe_runs(df, st.name)
    for claim in claims:
        mine = [r for r in rows if r.claim == claim]
        if any(is_earlier(r) for r in mine) and all(is_earlier(r) or r.verdict == "no data" for r in mine) \
                and not any(r.verdict == "no data" for r in mine):
            rule = next(r.rule for r in mine)
            out.append(Verdict(st.name, claim, "no data", "pending: not every AdamW-recipe arm of this claim "
                               f"(results/studies/configs/{st.name}-cpu2*.toml) has a record yet ({done} run(s) of the "
                               "study's grid recorded)", rule, run, "AdamW recipe, CPU"))
    return out


# ==============================================================================================================
# Rendering
# ==============================================================================================================
def verdict_table(rows: Sequence[Verdict]) -> pd.DataFrame:
    cols = ["study", "claim", "verdict", "setting", "figures", "rule", "command"]
    return pd.DataFrame([[getattr(r, c) for c in cols] for r in rows], columns=cols)


def _md(text: str) -> str:
    """A table cell from the store's strings: one line, HTML and ``|`` escaped (:mod:`sslbench.records.text`)."""
    return markdown_cell(text)


def _code(text: str) -> str:
    """A command shown in a code span, where HTML is not read: one line, no backtick, ``|`` escaped."""
    return one_line(text).replace("`", "'").replace("|", "\\|")


def format_verdicts(rows: Sequence[Verdict], fmt: str = "text") -> str:
    if fmt == "markdown":
        lines = ["| study | claim | verdict | setting | figures | to settle |", "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {_md(r.study)} | {_md(r.claim)} | **{r.verdict}** | {_md(r.setting)} | {_md(r.figures)} | "
                         f"{'`' + _code(r.command) + '`' if r.command else ''} |")
        # in study order, then in the order the rows first state them (a set's order changes between processes)
        rules = list(dict.fromkeys((r.study, r.rule) for r in rows if r.rule))
        rules.sort(key=lambda t: list(STUDIES).index(t[0]) if t[0] in STUDIES else 99)
        lines += ["", "Rules:", ""] + [f"- {s}: {_md(rule)}" for s, rule in rules]
        lines += ["", _md(verdict_counts(rows))]
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
    lines.append("")
    lines.append(verdict_counts(rows))
    return terminal("\n".join(lines).lstrip("\n"))  # for a terminal: no escape sequences from the store


def verdict_counts(rows: Sequence[Verdict]) -> str:
    """"verdicts: supported 3, …" over the rows of the current settings, then those of the earlier setting apart
    (:func:`is_earlier`: shown, superseded, not counted with the others)."""
    now = [r for r in rows if not is_earlier(r)]
    old = [r for r in rows if is_earlier(r)]
    text = "verdicts: " + ", ".join(f"{v} {sum(r.verdict == v for r in now)}" for v in VERDICTS)
    if old:
        text += ("; the earlier setting (the SGD recipe, superseded): "
                 + ", ".join(f"{v} {sum(r.verdict == v for r in old)}" for v in VERDICTS))
    return text


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
    # the old spelling of `sslbench sweep --study`: accepted only to say so in one line (hidden from --help)
    for flag, kw in (("--run", {"nargs": "*"}), ("--scale", {}), ("--dry-run", {"action": "store_true"})):
        parser.add_argument(flag, **kw, dest=f"old_{flag[2:].replace('-', '_')}", help=argparse.SUPPRESS)


def _list() -> str:
    lines = []
    for st in STUDIES.values():
        lines.append(f"{st.name}: {st.title} ({st.paper})")
        lines.append(f"    claim: {st.claim}")
        if st.checks:
            lines.append(f"    exact checks (no training): {', '.join(st.checks)}")
        for scale in st.scales():
            lines.append(f"    {scale}: {st.command(scale)}    [{st.cost(scale)}]")
            for c in st.sweep_commands(scale):
                lines.append(f"         = {c}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(_list())
        return 0
    if args.old_run is not None or args.old_scale is not None or args.old_dry_run:
        names = " ".join(args.old_run or []) or "NAME"
        print(f"sslbench report: error: the report only reads the store; run a study's grids with `sslbench sweep "
              f"--study {names}" + (f" --scale {args.old_scale}" if args.old_scale else "") + "` (--dry-run to plan), "
              "then `sslbench report`", file=sys.stderr)
        return 2
    root = Path(args.results)
    if not root.exists():
        print(f"sslbench report: error: --results {root} does not exist", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        df = load_results(root, columns=REPORT_COLUMNS + REPORT_METRICS, unless_numbers=("metrics.",))
        rows = verdicts(df, args.study)  # a record a rule cannot read is skipped with a warning naming it
    for w in caught:
        print(f"sslbench report: warning: {one_line(w.message)}", file=sys.stderr)
    if df.empty:
        print(f"sslbench report: no records under {root}: every claim is 'no data'. Produce them with "
              f"`sslbench sweep --study NAME` (see `sslbench report --list`) or point --results at another "
              f"folder.", file=sys.stderr)
    print(format_verdicts(rows, args.format))
    return 0
