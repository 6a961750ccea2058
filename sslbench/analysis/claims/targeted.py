"""The smallest CPU command that settles an inconclusive comparison of the AdamW recipe: only the arms the row
compares, only the seeds each arm lacks.

A row of ``sslbench report`` compares two arms (or a few); the study's CPU grid (``results/studies/configs/
<study>-cpu2*.toml``) trains many more. Re-running the whole grid for two more seeds of two arms costs several times
what the row needs, so the "to settle" hint names, for each arm's run (its case without the seed), the config file
that trains it (:func:`config_of`), narrows the grid to that case (``--regularizers``, and ``--dims``,
``--views``, ... where the config spans more), and gives the seeds the arm still needs (:func:`seeds_to_run`). Its
cost is each case's median recorded wall time (training plus evaluation) on this CPU. When a run cannot be matched
to exactly one config, :func:`plan` gives None and the hint falls back to the whole grid.

pandas and numpy only (never torch): the report and the dashboard call it on loaded results.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sslbench.records.schema import FINAL_STATUSES

#: the studies' sweep configs (``sslbench sweep --config``), in the checkout
CONFIG_DIR = Path(__file__).resolve().parents[3] / "results" / "studies" / "configs"

#: (config key, run-table column): the grid axes a case is one value of
AXES = (("regularizers", "regularizer"), ("datasets", "dataset"), ("fractions", "fraction"), ("dims", "dim"),
        ("views", "views"), ("batches", "batch"), ("epochs", "epochs"))
#: the config's ``[train_options]`` a training run's row holds (the others are not told apart here)
OPTION_COLUMNS = ("ema_tau", "predictor_hidden")


def read_configs(names: Sequence[str], config_dir: Path = CONFIG_DIR) -> dict[str, dict] | None:
    """``{name: settings}`` of the config files ``names`` under ``config_dir``; None when one cannot be read (an
    installed package without the checkout's ``results/``, a damaged file): the caller falls back to the grid."""
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return None
    out = {}
    for name in names:
        try:
            with open(os.path.join(config_dir, name), "rb") as f:
                data = tomllib.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        out[name] = data
    return out


def _same(a: Any, b: Any) -> bool:
    """Config value ``b`` and recorded value ``a`` are the same setting (numbers within 1e-9, booleans apart from
    numbers, anything else as text)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float, np.integer, np.floating)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def config_of(run: Mapping[str, Any], configs: Mapping[str, dict]) -> str | None:
    """The name of the one config of ``configs`` that trains the run ``run`` (a row of the training-run table:
    its AXES columns, ``hp`` the recorded hyper-parameters, OPTION_COLUMNS), or None (none does, or two equally).

    A config trains the run when every grid axis it sets holds the run's value, every hyper-parameter it sets that
    the run records has the run's value, and every train option it sets that the row holds has the row's value.
    The run records every hyper-parameter, its defaults included, so a config without ``[hparams]`` matches a run
    of any values; of the configs that match, the one that sets none the run lacks (a hyper-parameter another
    regularizer takes) and the most the run has wins: ``lambd = 0.0051`` goes to the config that sets it, a run at
    the default lambd to the one that sets nothing."""
    best, best_score, tie = None, None, False
    hp = run.get("hp") if isinstance(run.get("hp"), dict) else {}
    for name, cfg in configs.items():
        if any(key in cfg and not any(_same(run.get(col), v) for v in _as_list(cfg[key])) for key, col in AXES):
            continue
        given = cfg.get("hparams") if isinstance(cfg.get("hparams"), dict) else {}
        if any(k in hp and not _same(hp[k], v) for k, v in given.items()):
            continue
        opts = cfg.get("train_options") if isinstance(cfg.get("train_options"), dict) else {}
        if any(k in opts and not _missing(run.get(k)) and not _same(run.get(k), opts[k]) for k in OPTION_COLUMNS):
            continue
        score = (-sum(k not in hp for k in given), sum(k in hp for k in given))
        if best_score is None or score > best_score:
            best, best_score, tie = name, score, False
        elif score == best_score:
            tie = True
    return None if tie else best


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def seeds_to_run(ok: Sequence[int], pending: Sequence[int], recorded: Sequence[int], need: int) -> list[int]:
    """The seeds that give an arm ``need`` more finished runs: its pending seeds first (a record that is not final:
    error, timeout, interrupted, killed; the sweep runs them again), then the smallest seeds without a record (a
    seed that ended for good, e.g. diverged, keeps its record: the sweep would skip it)."""
    out = sorted(set(int(s) for s in pending) - set(int(s) for s in ok))[:max(need, 0)]
    taken = set(int(s) for s in recorded) | set(out)
    s = 0
    while len(out) < need:
        if s not in taken:
            out.append(s)
        s += 1
    return out


@dataclass(frozen=True)
class Step:
    """One ``sslbench sweep`` of the plan: ``config``'s grid narrowed to ``narrow`` (option, values), ``seeds``."""
    config: str
    narrow: tuple[tuple[str, tuple], ...]
    seeds: tuple[int, ...]
    minutes: float  # the recorded median of one run of this case, training plus evaluation
    label: str  # the regularizer (and what tells the case apart), for the comment


def plan(rows: pd.DataFrame, n: int, configs: Mapping[str, dict]) -> list[Step] | None:
    """The runs that give every case (a run without its seed) of ``rows`` ``n`` finished seeds, one :class:`Step`
    per case that lacks some, in the order of ``rows``; None when a case matches no config (or two), or has no
    finished run to time. ``rows``: the training-run table's rows of the arms (every status), with ``seed``,
    ``status``, ``ok``, ``train_time_s`` and ``eval_time_s``."""
    if rows is None or rows.empty or not configs:
        return None
    cols = [c for _, c in AXES] + list(OPTION_COLUMNS)
    cases: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows.to_dict("records")):
        hp = r.get("hp") if isinstance(r.get("hp"), dict) else {}
        key = tuple(_key(r.get(c)) for c in cols) + (tuple(sorted((k, _key(v)) for k, v in hp.items())),)
        cases.setdefault(key, []).append(i)
    recs = rows.to_dict("records")
    steps = []
    for positions in cases.values():
        mine = [recs[i] for i in positions]
        config = config_of(mine[0], configs)
        if config is None:
            return None
        seeds = [_seed(r.get("seed")) for r in mine]
        if any(s is None for s in seeds):
            return None
        ok = [s for s, r in zip(seeds, mine) if bool(r.get("ok"))]
        pending = [s for s, r in zip(seeds, mine) if r.get("status") not in FINAL_STATUSES]  # retried by a sweep
        run = seeds_to_run(ok, pending, seeds, n - len(set(ok)))
        if not run:
            continue
        walls = [float(r.get("train_time_s")) + float(r.get("eval_time_s")) for r in mine if bool(r.get("ok"))
                 and _finite(r.get("train_time_s")) and _finite(r.get("eval_time_s"))]
        if not walls:
            return None
        steps.append(Step(config, _narrow(mine[0], configs[config]), tuple(run), float(np.median(walls)) / 60.0,
                          _label(mine[0], config, configs[config])))
    return steps


def _key(v: Any) -> Any:
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return None
    return float(v) if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) else v


def _seed(v: Any) -> int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _narrow(run: Mapping[str, Any], cfg: dict) -> tuple[tuple[str, tuple], ...]:
    """The command-line options that narrow ``cfg``'s grid to ``run``'s case: ``--regularizers`` always, every
    other axis the config spans with more than the run's value."""
    out = []
    for key, col in AXES:
        values = _as_list(cfg.get(key, []))
        if key == "regularizers" or len(values) > 1:
            out.append((key, (_text(run.get(col)),)))
    return tuple(out)


def _text(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v) == int(v):
        return str(int(v))
    return str(v)


def _label(run: Mapping[str, Any], config: str, cfg: dict) -> str:
    """The regularizer and its config, with the axes the config spans (``barlow_twins of views-cpu2 V=4 frac
    0.25``)."""
    extra = [f"{dict(dims='D=', views='V=', fractions='frac ', batches='B=', epochs='ep ', datasets='')[k]}"
             f"{_text(run.get(c))}" for k, c in AXES[1:] if len(_as_list(cfg.get(k, []))) > 1]
    return " ".join([f"{run.get('regularizer')} of {Path(config).stem}"] + extra)


def command(steps: Sequence[Step], store: str, config_dir: str = "results/studies/configs") -> str:
    """The shell line of ``steps``: one ``sslbench sweep`` per step, separated by ``;`` (a failed step does not
    stop the next), each resumable into ``store``."""
    out = []
    for s in steps:
        narrow = "".join(f" --{k} {' '.join(v)}" for k, v in s.narrow)
        out.append(f"sslbench sweep --config {config_dir}/{s.config}{narrow} --seeds "
                   f"{' '.join(map(str, s.seeds))} --out {store}")
    return "; ".join(out)


def summary(steps: Sequence[Step], n: int) -> str:
    """The comment after :func:`command`: the seeds per arm, the runs and their time at the recorded pace."""
    runs = sum(len(s.seeds) for s in steps)
    minutes = sum(len(s.seeds) * s.minutes for s in steps)
    parts = ", ".join(f"{s.label} seed{'s' if len(s.seeds) > 1 else ''} {' '.join(map(str, s.seeds))}" for s in steps)
    return (f"{n} seeds per arm: {runs} run(s) of the compared arms only ({parts}), ~{minutes:.0f} min at the "
            f"median pace of each arm's recorded runs on this CPU")
