"""``sslbench sweep``: a resumable grid of cases, measured one after the other and appended to a JSON-lines store.

Two kinds of case:

* ``--kind bench``: regularizer micro-benchmarks, exactly the cases, measurement and records of
  :mod:`sslbench.execution.bench` (``kind="regularizer_bench"``; grid over regularizer × algorithm × D × N × V × device ×
  dtype, with ``hparams``). A store written by ``sslbench bench`` resumes under ``sslbench sweep`` and the
  other way round. On the CPU each case runs in a fresh process (``--isolate auto``) so that its peak memory is
  its own.
* ``--kind train``: pretraining runs of :mod:`sslbench.training.train` (grid over regularizer × data set × D (projector
  output) × V × fraction of the training split × seed × epochs × batch size × device, with ``hparams`` and fixed
  ``train_options``). Each case runs in a child process (``python -m sslbench.execution.sweep --train-worker SPEC``) with a
  wall-clock limit ``--timeout``, so that a crash, the kernel's OOM killer or a hang in one case becomes a record
  and the sweep goes on. The child's own ``kind="train"`` record (full case, ``train``'s id) is the one stored,
  with ``extra.sweep`` = ``{"id", "case", "wall_s"}`` added; when the child leaves no record (killed at the
  time-out, killed, crashed before its record), the sweep writes one itself, whose case is the sweep's case. A
  child that is retried continues from its last checkpoint (``resume="auto"`` in ``checkpoint_dir``). Both kinds
  of child are run by :func:`sslbench.execution.runner.run_child`.

Storage and resume. Every finished case is appended as one record (:func:`sslbench.records.append_record`:
flush + fsync; if the store cannot be written any more, :func:`sslbench.records.paths.append_record_safely`
saves the record in a fallback file or prints it), so a sweep stopped by Ctrl-C, ``kill -9`` or a power cut loses at most the case that was
running. On start the store is read; the cases that already have a record with a final status
(:data:`sslbench.records.FINAL_STATUSES`: ok, oom, nonfinite, diverged) are skipped and counted; "error",
"timeout" and "interrupted" cases are measured again. ``--no-resume`` measures everything again (the store is
still appended to, never rewritten). Bench cases count as done only when measured on the same setup (device
name, torch version, threads), as in ``sslbench bench``. Lines of the store that are not JSON records (the
half-written last line of a killed run, a stray edit) are reported in one line and skipped.

Many writers. Several sweeps (or the workers of ``--executor local`` / ``slurm``, :mod:`sslbench.execution.cluster`)
may share one store: appends are locked (:mod:`sslbench.records.store`), and each case is claimed before it runs
(:mod:`sslbench.records.claims`): a case claimed by a live writer is skipped ("running elsewhere"), one recorded
by another writer since this run read the store is skipped too, and a dead writer's claim is taken over.
``--status`` and ``--cancel`` watch and stop the jobs of a store; the summary names the devices of its records
and warns when they are several. See docs/cluster.md.

Failures are results: out of memory → "oom", NaN/Inf → "nonfinite" (bench) or "diverged" (train), a case past
``--timeout`` → "timeout", a child killed from outside with no sign of the kernel's OOM killer → "killed"
(:mod:`sslbench.execution.runner`), anything else → "error" with the message. Ctrl-C or SIGTERM records the
running case as "interrupted" (a training child is asked to stop after its current step and checkpoints; a case
that had already finished keeps its own record), prints how to resume and exits with 128 + the signal: 130
(SIGINT) or 143 (SIGTERM). Exit status: 0 when every case has a record and none is an "error", 1 when some are,
2 for bad input (one line; ``--out`` is checked before any work: a folder, a path below a file or an existing
file that is not a JSON-lines store is refused), 130 / 143 when interrupted. Case folders left in the temporary
folder by a sweep killed with ``kill -9`` are removed by the next run.

The grid comes from the command line or a config file (``--config FILE``: TOML, or JSON), the command line
overriding the file. The config keys are the long option names with ``_`` for ``-`` (``min_time``) and the
lists in the plural (``regularizers``, ``dims``, ...); ``hparams``, ``train_options`` and ``data_options`` are
tables. See :data:`OPTIONS` for every key, its kinds and its default, or ``sslbench sweep --help``.

Examples::

    sslbench sweep --kind bench --regularizers barlow_twins vicreg --dims 64 256 1024 4096 --batches 256
    sslbench sweep --kind bench --regularizers barlow_twins --algorithms cross_correlation gram --dry-run
    sslbench sweep --kind train --regularizers barlow_twins vicreg --views 2 4 --fractions 0.25 1 --epochs 2
    sslbench sweep --config results/sweeps/configs/scaling-dim.toml --device cuda   # the same grid on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import itertools
import json
import math
import os
import re
import shlex
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslbench import regularizers
from sslbench.execution import bench
from sslbench.execution.environment import environment
from sslbench.execution.runner import (case_folder, clean_stale_case_folders, run_child, sigterm_as_interrupt,
                                       signal_of, stop_name)
from sslbench.records import FINAL_STATUSES, case_id, make_record, read_records
from sslbench.records.claims import SidecarError, check_folder, check_sidecar, read_claims, sidecar, tidy, try_claim
from sslbench.records.paths import OutputPathError, append_record_safely, check_store_path
from sslbench.records.store import store_size

__all__ = [
    "KINDS",
    "DEFAULT_DIR",
    "OPTIONS",
    "SweepError",
    "load_config",
    "resolve_settings",
    "build_cases",
    "default_out",
    "device_slug",
    "EtaEstimator",
    "add_arguments",
    "execute",
    "run",
]

KINDS = ("bench", "train")
#: the folder of the default stores: ``results/sweeps/<device>-<config name or kind>.jsonl``
DEFAULT_DIR = "results/sweeps"
#: what a dry run's store name shows for the GPU a machine without CUDA cannot name (a plain word: a pasted path
#: stays one shell word, where ``<gpu>`` would be read as a redirection)
UNKNOWN_GPU = "GPU_NAME"
TRAIN_KIND = "train"


class SweepError(ValueError):
    """Bad input (config, option values): the message names the problem and the fix; ``run`` exits with 2."""


# ==============================================================================================================
# The options: one table drives the command line, the config file, the defaults and the checks
# ==============================================================================================================
@dataclass(frozen=True)
class Option:
    """One setting of a sweep: its config key (= argparse dest), the kinds it applies to, its value type and
    checks, and its default per kind (``None``: none, or an automatic choice documented in ``help``)."""

    key: str
    kinds: tuple[str, ...]
    item: type  # int, float, str, bool, dict
    many: bool = False  # a list of values (a grid axis)
    default: dict = field(default_factory=dict)  # kind -> default
    minimum: float | None = None
    choices: tuple | None = None
    help: str = ""
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


_BOTH = KINDS
_B, _T = ("bench",), ("train",)

OPTIONS: tuple[Option, ...] = (
    Option("kind", _BOTH, str, default={"bench": "bench", "train": "train"}, choices=KINDS,
           help="bench: regularizer micro-benchmarks (records of sslbench bench); train: pretraining runs "
                "(records of sslbench train), each in a child process. Default: bench"),
    Option("regularizers", _BOTH, str, many=True, metavar="NAME", default={"bench": None, "train": ["barlow_twins"]},
           help="regularizers (default: bench: all registered; train: barlow_twins)"),
    Option("algorithms", _B, str, many=True, metavar="ALGO",
           help="for regularizers with an 'algorithm' hyper-parameter: auto, cross_correlation, gram (default: "
                "each one's default)"),
    Option("datasets", _T, str, many=True, metavar="NAME", default={"train": None},
           help="data sets: fashion_mnist, digits, cifar10, cifar100, stl10, folder, synthetic (default: "
                "fashion_mnist if found, else digits)"),
    Option("dims", _BOTH, int, many=True, metavar="D", default={"bench": [128, 512, 2048], "train": [128]}, minimum=2,
           help="embedding sizes D (train: the projector's output width). Default: bench 128 512 2048, train 128"),
    Option("batches", _BOTH, int, many=True, metavar="N", default={"bench": [256], "train": [256]}, minimum=2,
           help="samples per view N (train: the global batch size). Default: 256"),
    Option("views", _BOTH, int, many=True, metavar="V", default={"bench": [2], "train": [2]}, minimum=2,
           help="numbers of views V. Default: 2"),
    Option("fractions", _T, float, many=True, metavar="F", default={"train": [1.0]},
           help="fractions of the training split, each in (0, 1] (class-balanced subset). Default: 1"),
    Option("seeds", _T, int, many=True, metavar="SEED", default={"train": [0]}, minimum=0,
           help="training seeds. Default: 0"),
    Option("epochs", _T, int, many=True, metavar="E", default={"train": [8]}, minimum=1,
           help="training epochs. Default: 8"),
    Option("device", _BOTH, str, many=True, metavar="DEV", default={"bench": ["auto"], "train": ["auto"]},
           help="devices: auto (cuda if available, else cpu), cpu, cuda, cuda:1 ... Default: auto"),
    Option("dtypes", _B, str, many=True, metavar="DTYPE", default={"bench": ["float32"]}, choices=tuple(bench.DTYPES),
           help="input dtypes. Default: float32"),
    Option("hparams", _BOTH, dict,
           help="NAME=VALUE, repeatable: a hyper-parameter given to every regularizer of the grid that accepts it "
                "(values: numbers, 1/128, true/false, none, tuples 1,40,40, strings); a name no regularizer of the "
                "grid takes, or a value one refuses, stops the command before any case runs"),
    Option("train_options", _T, dict,
           help="NAME=VALUE, repeatable: a fixed sslbench.training.config.TrainConfig field for every case (projector, "
                "backbone, optimizer, lr, max_steps, eval, probe_epochs, augment, log_dir, checkpoint_dir, ...)"),
    Option("data_options", _T, dict,
           help="NAME=VALUE, repeatable: an option of the data set (synthetic: num_samples, channels, height, "
                "width, num_classes, data_seed)"),
    Option("warmup", _B, int, default={"bench": 2}, minimum=0, help="untimed calls before timing. Default: 2"),
    Option("repeats", _B, int, default={"bench": None}, minimum=1,
           help="timed calls (default: at least 5 and until --min-time seconds, at most --max-repeats)"),
    Option("min_time", _B, float, default={"bench": 0.2}, minimum=0.0,
           help="seconds of timed calls per case. Default: 0.2"),
    Option("max_repeats", _B, int, default={"bench": 50}, minimum=1, help="at most this many timed calls. Default: 50"),
    Option("threads", _BOTH, int, minimum=1,
           help="torch CPU threads of each case (default: torch's; train: also OMP_NUM_THREADS of the child). "
                "One thread gives steadier figures on a machine shared with other work"),
    Option("isolate", _B, str, default={"bench": "auto"}, choices=("auto", "always", "never"),
           help="a fresh process per case: auto = on the CPU only (peak RSS needs it), always, never"),
    Option("seed", _B, int, default={"bench": 0}, minimum=0, help="seed of the random inputs. Default: 0"),
    Option("timeout", _BOTH, float, default={"bench": 600.0, "train": 3600.0}, minimum=0.01,
           help="seconds per case before it is killed and recorded as 'timeout' (bench: isolated cases only). "
                "Default: bench 600, train 3600"),
    Option("out", _BOTH, str,
           help=f"the JSON-lines store (default: {DEFAULT_DIR}/<device>-<config file name, or kind>.jsonl)"),
    Option("resume", _BOTH, bool, default={"bench": True, "train": True},
           help="skip the cases already in the store with a final status (--no-resume: redo them)"),
    Option("progress", _BOTH, bool, help="a progress bar on stderr (default: when stderr is a terminal)"),
    Option("executor", _BOTH, str, default={"bench": "inline", "train": "inline"}, choices=("inline", "local", "slurm"),
           help="inline: the cases one after the other in this process (default); local: up to --workers cases at "
                "once on this machine (submitit's LocalExecutor; one case per GPU on a GPU node); slurm: one SLURM "
                "job array, a task per case (submitit's AutoExecutor). See docs/cluster.md"),
    Option("workers", _BOTH, int, minimum=1,
           help="--executor local: cases at once (default: the number of visible GPUs, else 2); on the CPU each "
                "case gets cores // workers threads unless --threads says otherwise"),
    Option("slurm_partition", _BOTH, str, help="--executor slurm: the partition (default: the cluster's)"),
    Option("slurm_time", _BOTH, str, default={"bench": "1:00:00", "train": "4:00:00"},
           help="--executor slurm: the time limit of each case's job, [D-]HH:MM:SS or minutes; a training case past "
                "it is requeued and resumes from its checkpoint. Default: bench 1:00:00, train 4:00:00"),
    Option("slurm_array_parallelism", _BOTH, int, minimum=1,
           help="--executor slurm: at most this many tasks of the array at once (default: all of them)"),
    Option("gpus_per_case", _BOTH, int, minimum=0,
           help="GPUs of each case (default: 1 on a CUDA device, else 0); a training case with more runs under "
                "torchrun, one process per GPU"),
    Option("slurm_options", _BOTH, dict,
           help="KEY=VALUE, repeatable: any other sbatch option of the jobs (account=abc, qos=high, constraint=a100, "
                "mem=64G, ...)"),
)
#: the options of the executors (not of the grid: they never enter a case)
CLUSTER_KEYS = ("executor", "workers", "slurm_partition", "slurm_time", "slurm_array_parallelism", "gpus_per_case",
                "slurm_options")
_BY_KEY = {o.key: o for o in OPTIONS}
#: TrainConfig fields the sweep sets itself (the grid, or the plumbing of the child)
_TRAIN_GRID_FIELDS = {"regularizer": "regularizers", "dataset": "datasets", "dim": "dims", "views": "views",
                      "fraction": "fractions", "seed": "seeds", "epochs": "epochs", "batch_size": "batches",
                      "device": "device", "hparams": "hparams", "data_options": "data_options"}
_TRAIN_PLUMBING = ("out", "resume", "progress", "verbose")
#: TrainConfig fields that do not change a run's result: not part of the sweep's case
_TRAIN_NOT_IN_CASE = ("log_dir", "checkpoint_dir", "checkpoint_every", "log_every", "data_root", "eval_batch_size")


def allowed_keys(kind: str | None = None) -> list[str]:
    """The config keys of ``kind`` (all kinds when None), plus ``kind``."""
    return [o.key for o in OPTIONS if kind is None or kind in o.kinds]


# ==============================================================================================================
# Config file
# ==============================================================================================================
def load_config(path: str | os.PathLike) -> dict:
    """The settings of a config file: TOML (``.toml``; the standard library's ``tomllib``, Python >= 3.11, or the
    ``tomli`` package) or JSON (``.json``; other suffixes: JSON, then TOML). The top level must be a table whose
    keys are in :data:`OPTIONS`; values are checked by :func:`resolve_settings`. Raises :class:`SweepError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"--config {path}: cannot read it ({exc})") from None
    suffix = p.suffix.lower()
    errors = []
    for fmt in (("toml",) if suffix == ".toml" else ("json",) if suffix == ".json" else ("json", "toml")):
        try:
            data = _parse_toml(text) if fmt == "toml" else json.loads(text)
            break
        except (ValueError, _TomlUnavailable) as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError
            errors.append(f"{fmt.upper()}: {exc}")
    else:
        raise SweepError(f"--config {path}: not a valid config file ({'; '.join(errors)})")
    if not isinstance(data, dict):
        raise SweepError(f"--config {path}: the top level must be a table of settings (key = value), "
                         f"got {type(data).__name__}")
    if not data:
        raise SweepError(f"--config {path}: the file sets nothing (no key = value line); write the sweep's "
                         f"settings in it, e.g. regularizers = [\"barlow_twins\"]")
    unknown = sorted(set(data) - set(allowed_keys()))
    if unknown:
        raise SweepError(f"--config {path}: unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: "
                         f"{', '.join(allowed_keys())}")
    return data


class _TomlUnavailable(Exception):
    pass


def _parse_toml(text: str) -> Any:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise _TomlUnavailable("reading TOML needs Python >= 3.11 (tomllib) or the tomli package; "
                                   "write the config as JSON instead") from None
    return tomllib.loads(text)


# ==============================================================================================================
# Settings: command line over config file over defaults, checked
# ==============================================================================================================
_DICT_FLAGS = {"hparams": "--hparam", "train_options": "--train-option", "data_options": "--data-option",
               "slurm_options": "--slurm-option"}


def _flag(opt: Option) -> str:
    """The command-line flag of an option (``--hparam`` for ``hparams``, ...)."""
    return _DICT_FLAGS.get(opt.key, opt.flag)


def _check_item(opt: Option, value: Any, where: str) -> Any:
    if opt.item is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "an integer"
    elif opt.item is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
        want = "a number"
    elif opt.item is bool:
        ok, want = isinstance(value, bool), "true or false"
    else:
        ok, want = isinstance(value, str) and value != "", "a non-empty string"
    if not ok:
        raise SweepError(f"{where}={value!r} must be {want}")
    if opt.minimum is not None and value < opt.minimum:
        raise SweepError(f"{where}={value!r} must be >= {opt.minimum:g}")
    if opt.choices is not None and value not in opt.choices:
        raise SweepError(f"{where}={value!r} is not allowed; choose one of {', '.join(map(str, opt.choices))}")
    return value


def _check_value(opt: Option, value: Any, source: str) -> Any:
    where = f"config key {opt.key}" if source == "config" else _flag(opt)
    if value is None:
        return None
    if opt.item is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
            raise SweepError(f"{where} must be a table of NAME = VALUE (e.g. {{lambd = 0.0078}}), got {value!r}")
        return dict(value)
    if opt.many:
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise SweepError(f"{where} is empty: give at least one value, or leave it out for the default")
        return [_check_item(opt, v, f"{where}[{i}]" if len(values) > 1 else where) for i, v in enumerate(values)]
    if isinstance(value, (list, tuple)):
        raise SweepError(f"{where} takes one value, got the list {value!r}")
    return _check_item(opt, value, where)


def resolve_settings(args: argparse.Namespace, config: dict | None = None) -> dict:
    """The settings of a sweep: for each key of :data:`OPTIONS`, the command line's value, else the config
    file's, else the kind's default; for the tables (``hparams``, ``train_options``, ``data_options``) the command
    line's entries are added to the file's, replacing those of the same name. Values are type-checked; a key given
    for the other kind is an error.
    Returns a dict with every key of the kind (plus ``kind``). Raises :class:`SweepError`."""
    config = dict(config or {})
    cli = {o.key: getattr(args, o.key, None) for o in OPTIONS}
    kind = cli["kind"] or config.get("kind") or "bench"
    if kind not in KINDS:
        raise SweepError(f"kind={kind!r} is not allowed; choose one of {', '.join(KINDS)}")
    settings: dict[str, Any] = {"kind": kind}
    for opt in OPTIONS[1:]:
        given_cli = cli[opt.key] not in (None, [], {})
        given_cfg = opt.key in config
        if kind not in opt.kinds:
            if given_cli or given_cfg:
                other = [k for k in opt.kinds if k != kind]
                raise SweepError(f"{_flag(opt) if given_cli else 'config key ' + repr(opt.key)} applies to "
                                 f"--kind {' / '.join(other)} only, not to --kind {kind}; remove it"
                                 + (" (the bench input seed is --seed, one value)" if opt.key == "seeds" else ""))
            continue
        if given_cli and opt.item is dict:  # tables merge: the command line's entries win, the file's others stay
            value = {**(_check_value(opt, config.get(opt.key), "config") or {}),
                     **_check_value(opt, cli[opt.key], "command line")}
        elif given_cli:
            value = _check_value(opt, cli[opt.key], "command line")
        elif given_cfg:
            value = _check_value(opt, config[opt.key], "config")
        else:
            default = opt.default.get(kind)
            value = list(default) if isinstance(default, list) else ({} if opt.item is dict else default)
        settings[opt.key] = value
    return settings


# ==============================================================================================================
# The grid
# ==============================================================================================================
def _check_regularizers(names: list[str]) -> None:
    available = regularizers.available()
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SweepError(f"unknown regularizer(s) {', '.join(unknown)}; available: {', '.join(available)}")


def _resolve_devices(devices: list[str], plan_only: bool = False) -> list[str]:
    """The devices of the grid, checked. ``plan_only`` (a dry run: it only plans, runs nothing) keeps a CUDA device
    that this machine lacks (:func:`planned_without_cuda`); a real run refuses it."""
    out = []
    for d in devices:
        try:
            dev = bench.resolve_device(d)
        except (ValueError, RuntimeError) as exc:
            dev = _cuda_name(d) if plan_only else None
            if dev is None:
                raise SweepError(f"--device {d}: {exc}") from None
        if dev not in out:
            out.append(dev)
    return out


def _cuda_name(device: str) -> str | None:
    """``device`` as torch names it when it names a CUDA device (``cuda``, ``cuda:1``), else None."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return None
    return str(dev) if dev.type == "cuda" else None


def planned_without_cuda(devices: list[str]) -> bool:
    """Whether some of ``devices`` is a CUDA device and this machine has none: such a grid can be planned (a dry
    run) but not run here."""
    import torch

    return any(str(d).startswith("cuda") for d in devices) and not torch.cuda.is_available()


def _check_hparams_accepted(names: list[str], hparams: dict) -> None:
    for key in hparams:
        if not any(bench.accepts(n, key) for n in names):
            raise SweepError(f"--hparam {key}: none of the regularizers of the grid ({', '.join(names)}) has "
                             f"a hyper-parameter {key!r}; check the spelling (e.g. "
                             f"{', '.join(regularizers.hparam_names(names[0])[:4])} for {names[0]})")


def _bench_cases(s: dict, plan_only: bool = False) -> list[dict]:
    names = s["regularizers"] or regularizers.available()
    _check_regularizers(names)
    _check_hparams_accepted(names, s["hparams"])
    devices = _resolve_devices(s["device"], plan_only)
    cases = bench.iter_cases(names, s["dims"], s["batches"], s["views"], devices, s["dtypes"], s["algorithms"],
                             s["hparams"])
    # the hyper-parameters and algorithms are checked once per regularizer here, at the smallest D, so that a
    # typo stops the sweep before it starts rather than filling the store with errors
    seen = set()
    for c in cases:
        key = (c["regularizer"], c.get("algorithm"), json.dumps(c.get("hparams"), sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        try:
            bench.make_regularizer(c["regularizer"], min(s["dims"]), algorithm=c.get("algorithm"),
                                   hparams=c.get("hparams"))
        except (ValueError, TypeError) as exc:
            what = f" algorithm={c['algorithm']}" if c.get("algorithm") else ""
            raise SweepError(f"{c['regularizer']}{what} with hparams {c.get('hparams') or {}}: {exc}") from None
        except ImportError:  # a registered regularizer whose module is broken: its cases record the error
            continue
    return cases


def _train_cases(s: dict, plan_only: bool = False) -> list[dict]:
    from sslbench.training.config import TrainConfig

    names = s["regularizers"]
    _check_regularizers(names)
    _check_hparams_accepted(names, s["hparams"])
    for f in s["fractions"]:
        if not 0.0 < f <= 1.0:
            raise SweepError(f"--fractions {f:g} is outside (0, 1]: a fraction of the training split, e.g. 0.25 "
                             "(a quarter, class-balanced) or 1 (all of it)")
    fields = set(TrainConfig.__dataclass_fields__)
    for key in s["train_options"]:
        if key in _TRAIN_GRID_FIELDS:
            axis = _BY_KEY[_TRAIN_GRID_FIELDS[key]]
            raise SweepError(f"train option {key!r} is a grid axis of the sweep: use {_flag(axis)} "
                             f"(config key {axis.key!r}) instead")
        if key in _TRAIN_PLUMBING:
            raise SweepError(f"train option {key!r} is set by the sweep itself (--out is the store); remove it")
        if key not in fields:
            allowed = sorted(fields - set(_TRAIN_GRID_FIELDS) - set(_TRAIN_PLUMBING))
            raise SweepError(f"train option {key!r} is not a field of sslbench.training.config.TrainConfig; allowed: "
                             f"{', '.join(allowed)}")
    datasets = s["datasets"]
    if datasets is None:
        from sslbench.training.data import default_dataset

        datasets = [default_dataset()]
    from sslbench.training.data import DATASETS

    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise SweepError(f"unknown data set(s) {', '.join(bad)}; choose from {', '.join(DATASETS)}")
    devices = [d if d.startswith("cuda") else "cpu" for d in _resolve_devices(s["device"], plan_only)]
    fixed_in_case = {k: v for k, v in sorted(s["train_options"].items()) if k not in _TRAIN_NOT_IN_CASE}
    cases = []
    for name in names:
        hp = {k: v for k, v in s["hparams"].items() if bench.accepts(name, k)}
        try:
            regularizers.create(name, **hp)
        except (ValueError, TypeError) as exc:
            raise SweepError(f"{name} with hparams {hp}: {exc}") from None
        for ds, dim, v, frac, seed, ep, batch, dev in itertools.product(
                datasets, s["dims"], s["views"], s["fractions"], s["seeds"], s["epochs"], s["batches"], devices):
            case: dict[str, Any] = {"regularizer": name, "dataset": ds, "fraction": float(frac), "dim": dim,
                                    "views": v, "batch": batch, "epochs": ep, "seed": seed, "device": dev}
            if hp:
                case["hparams"] = dict(sorted(hp.items()))
            if s["data_options"]:
                case["data_options"] = dict(sorted(s["data_options"].items()))
            if fixed_in_case:  # nested: train's records use some of these names (projector) for other values
                case["train_options"] = fixed_in_case
            cases.append(case)
    # every case's configuration is checked before the first one runs (a dry run's CUDA cases on a machine without
    # CUDA: everything but the device, which a real run checks)
    unchecked_device = plan_only and planned_without_cuda(devices)
    for case in cases:
        try:
            train_config({**case, "device": "cpu"} if unchecked_device else case, s).resolved()
        except (ValueError, TypeError) as exc:
            raise SweepError(f"training case {describe_train(case)}: {exc}") from None
    return cases


def build_cases(settings: dict, plan_only: bool = False) -> list[dict]:
    """Every case of the grid, in order (bench: :func:`sslbench.execution.bench.iter_cases`'s). Raises :class:`SweepError`
    for an unknown regularizer, data set or device, a hyper-parameter no regularizer takes, bad values.
    ``plan_only`` (a dry run) accepts a CUDA device this machine lacks."""
    if settings["kind"] == "bench":
        return _bench_cases(settings, plan_only)
    return _train_cases(settings, plan_only)


def record_kind(settings: dict) -> str:
    return bench.KIND if settings["kind"] == "bench" else TRAIN_KIND


def train_config(case: dict, settings: dict, *, out: str | None = None, resume: bool = False):
    """The :class:`sslbench.training.config.TrainConfig` of one training case (checkpoints in ``results/checkpoints`` and
    logs in ``results/runs`` unless the train options say otherwise; no progress bar)."""
    from sslbench.training.config import TrainConfig

    opts = dict(settings["train_options"])
    return TrainConfig(regularizer=case["regularizer"], dataset=case["dataset"], fraction=case["fraction"],
                       dim=case["dim"], views=case["views"], batch_size=case["batch"], epochs=case["epochs"],
                       seed=case["seed"], device=case["device"], hparams=dict(case.get("hparams") or {}),
                       data_options=dict(case.get("data_options") or {}), out=out,
                       resume="auto" if resume else None, progress=False, verbose=True, **opts)


# ==============================================================================================================
# Descriptions, default store
# ==============================================================================================================
def describe_train(case: dict) -> str:
    hp = " " + ",".join(f"{k}={v}" for k, v in case["hparams"].items()) if case.get("hparams") else ""
    opts = " " + " ".join(f"{k}={v}" for k, v in case["train_options"].items()) if case.get("train_options") else ""
    return (f"{case['regularizer']} {case['dataset']} D={case['dim']} V={case['views']} frac={case['fraction']:g} "
            f"seed={case['seed']} epochs={case['epochs']} B={case['batch']} {case['device']}{hp}{opts}")


def describe(kind: str, case: dict) -> str:
    return bench.describe(case) if kind == "bench" else describe_train(case)


def device_slug(device: str = "cpu") -> str:
    """A short file-name-safe name of the hardware behind ``device``: ``cpu-intel-xeon``, ``cpu-amd-epyc-7b13``,
    ``nvidia-h100-80gb-hbm3``."""
    env = environment()
    if device.startswith("cuda") and env.get("device_names"):
        index = int(device.split(":")[1]) if ":" in device else 0
        name = env["device_names"][min(index, len(env["device_names"]) - 1)]
        prefix = ""
    else:
        name, prefix = env.get("cpu_model") or "unknown", "cpu-"
    name = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b|@.*$|\d+-core", " ", name, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return prefix + (slug or "unknown")


def default_out(settings: dict, config_path: str | None, plan_only: bool = False) -> str:
    """``results/sweeps/<device>-<config or kind>.jsonl``; for a dry run (``plan_only``) of a CUDA grid on a machine
    without CUDA the GPU's name is unknown: :data:`UNKNOWN_GPU` stands for it."""
    name = Path(config_path).stem if config_path else settings["kind"]
    devices = _resolve_devices(settings["device"], plan_only)
    slug = UNKNOWN_GPU if plan_only and planned_without_cuda(devices[:1]) else device_slug(devices[0])
    return str(Path(DEFAULT_DIR) / f"{slug}-{name}.jsonl")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


# ==============================================================================================================
# ETA from the measured durations
# ==============================================================================================================
class EtaEstimator:
    """Remaining time of a sweep, from the durations of the cases measured so far.

    Each case has a *group* (bench: regularizer, algorithm, device; train: data set, device) and a *work*
    (bench: 1; train: epochs × fraction × views, what the training time scales with). A case's duration is
    modelled as ``a + b × work`` (a: start-up and evaluation, b: seconds per unit of work), fitted by least
    squares to the finished cases of its group, or of all finished cases when its group has none yet. With one
    distinct work (always for bench) or a fit that is not positive, it is the ratio ``work × Σ seconds / Σ work``
    (for bench: the group's mean). With nothing measured the ETA is unknown. Durations recorded by earlier runs of
    the same grid (``extra.wall_s``) seed the estimate, so a resumed sweep has an ETA from the start.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._groups: dict[tuple, list[tuple[float, float]]] = {}  # group -> [(work, seconds), ...]
        self._all: list[tuple[float, float]] = []

    def group(self, case: dict) -> tuple:
        if self.kind == "bench":
            return case.get("regularizer"), case.get("algorithm"), case.get("device")
        return case.get("dataset"), case.get("device")

    def work(self, case: dict) -> float:
        if self.kind == "bench":
            return 1.0
        return float(case.get("epochs", 1)) * float(case.get("fraction", 1.0)) * float(case.get("views", 2))

    def add(self, case: dict, seconds: float | None) -> None:
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            return
        obs = (self.work(case), float(seconds))
        self._groups.setdefault(self.group(case), []).append(obs)
        self._all.append(obs)

    @staticmethod
    def _model(obs: list[tuple[float, float]]) -> tuple[float, float] | None:
        """(a, b) of ``seconds ≈ a + b·work`` for the observations, or None when there are none."""
        total_w = sum(w for w, _ in obs)
        if not obs or total_w <= 0:
            return None
        ratio = (0.0, sum(s for _, s in obs) / total_w)
        n = len(obs)
        mean_w = total_w / n
        mean_s = sum(s for _, s in obs) / n
        var_w = sum((w - mean_w) ** 2 for w, _ in obs)
        if var_w <= 1e-12 * max(1.0, mean_w**2):
            return ratio
        b = sum((w - mean_w) * (s - mean_s) for w, s in obs) / var_w
        a = mean_s - b * mean_w
        return (a, b) if a >= 0 and b > 0 else ratio

    def predict(self, case: dict) -> float | None:
        model = self._model(self._groups.get(self.group(case)) or self._all)
        return None if model is None else model[0] + model[1] * self.work(case)

    def remaining(self, cases: list[dict]) -> float | None:
        total = 0.0
        for c in cases:
            p = self.predict(c)
            if p is None:
                return None
            total += p
        return total


# ==============================================================================================================
# Running one case
# ==============================================================================================================
@dataclass
class _Outcome:
    record: dict
    wall_s: float
    interrupt: BaseException | None = None  # the Ctrl-C / SIGTERM that stopped a training child (re-raised)


def _isolated(case: dict, s: dict) -> bool:
    return s["isolate"] == "always" or (s["isolate"] == "auto" and not case["device"].startswith("cuda"))


def _run_bench_case(case: dict, s: dict, env: dict, clock=time.perf_counter) -> _Outcome:
    isolate = _isolated(case, s)
    t0 = clock()
    m = bench.run_case(case, isolate=isolate, warmup=s["warmup"], repeats=s["repeats"], min_time_s=s["min_time"],
                       max_repeats=s["max_repeats"], timeout_s=s["timeout"], threads=s["threads"], seed=s["seed"])
    wall = clock() - t0
    # the extras of sslbench bench's records, so that the two commands' stores are interchangeable
    rec = m.to_record(bench.KIND, case, env=env, extra={"isolated": isolate, "seed": s["seed"], "wall_s": wall})
    return _Outcome(rec, wall)


def _train_child_spec(case: dict, s: dict, store: str, resume: bool) -> dict:
    cfg = train_config(case, s, out=store, resume=resume)
    return {"config": dataclasses.asdict(cfg), "threads": s["threads"]}


def _train_record_of(child, case: dict, store: str, env: dict, timeout: float) -> dict:
    """The child's own record when it wrote one (it may have finished just before a time-out or an interrupt),
    else the sweep's record of how the child ended."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        written = read_records(store, kind=TRAIN_KIND)
    if written:
        rec = written[-1]  # train() writes exactly one record per run
        if rec["status"] == "error":
            rec["extra"].setdefault("output", child.output)
        return rec
    status, message = child.status, child.message
    if status is None:
        status, message = "error", (f"the training process {child.exit_text()} before writing a record: "
                                    f"{child.last_line}")
    metrics = {"timeout_s": timeout} if status == "timeout" else {}
    return make_record(TRAIN_KIND, case, metrics, status, env=env, message=message,
                       extra={"output": child.output, "returncode": child.returncode})


def _run_train_case(case: dict, s: dict, env: dict, *, resume: bool, sweep_id: str) -> _Outcome:
    """One training case in a child process (:func:`sslbench.execution.runner.run_child`), killed after
    ``timeout`` seconds; Ctrl-C / SIGTERM is forwarded to the child as SIGINT (it stops after its current step,
    checkpoints and records "interrupted") and re-raised by the caller once the record is stored."""
    env_vars = {"OMP_NUM_THREADS": s["threads"], "MKL_NUM_THREADS": s["threads"]} if s["threads"] else None
    gpus = s.get("gpus_per_case") or 0
    launcher = ("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}") if gpus > 1 else ()
    with case_folder() as folder:
        store = str(folder / "record.jsonl")
        child = run_child("sslbench.execution.sweep", "--train-worker", _train_child_spec(case, s, store, resume),
                          folder, timeout_s=s["timeout"], limit=f"--timeout {s['timeout']:g} s", env_vars=env_vars,
                          launcher=launcher)
        rec = _train_record_of(child, case, store, env, s["timeout"])
    rec["extra"]["sweep"] = {"id": sweep_id, "case": case, "wall_s": child.wall_s}
    return _Outcome(rec, child.wall_s, child.interrupt)


def _train_worker(spec_path: str) -> int:
    """The child of a training case: ``train(TrainConfig(**spec["config"]))``, whose record goes to the temporary
    store the parent reads. Exceptions propagate (``train`` has recorded them as "error" when it could)."""
    import torch

    from sslbench.training.config import TrainConfig
    from sslbench.training.train import train

    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    record = train(TrainConfig(**spec["config"]))
    return {"ok": 0, "interrupted": 130}.get(record["status"], 1)


def sweep_id_of(record: dict) -> str | None:
    """The sweep case id a stored record answers: ``extra.sweep.id`` for training records written through a
    sweep, else the record's own ``id`` (bench records, whose case *is* the sweep's case)."""
    sw = (record.get("extra") or {}).get("sweep")
    if isinstance(sw, dict) and sw.get("id"):
        return sw["id"]
    return record.get("id")


def _summary(kind: str, rec: dict) -> str:
    if kind == "bench":
        from sslbench.execution.measure import Measurement

        return bench.summary_line(Measurement(status=rec["status"], metrics=rec["metrics"], message=rec["message"]))
    if rec["status"] != "ok":
        return f"{rec['status']}: {rec['message']}"
    m = rec["metrics"]
    parts = ["ok"]
    for key, label in (("linear_top1", "linear"), ("knn_top1", "kNN")):
        if m.get(key) is not None:
            init = m.get(f"init_{key}")
            parts.append(f"{label} {m[key]:.2f}%" + (f" (init {init:.2f}%)" if init is not None else ""))
    if m.get("train_time_s") is not None:
        parts.append(f"train {m['train_time_s']:.1f} s")
    return " ".join(parts)


# ==============================================================================================================
# Command line
# ==============================================================================================================
def _name_value(text: str) -> tuple[str, Any]:
    from sslbench.training.config import parse_hparam

    try:
        return parse_hparam(text, "NAME=VALUE")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _raw_name_value(text: str) -> tuple[str, str]:
    if "=" not in text or not text.split("=", 1)[0].strip().isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE (e.g. --train-option projector=512-512)")
    name, raw = text.split("=", 1)
    return name.strip(), raw.strip()


def _train_option_value(name: str, raw: str) -> Any:
    """A ``--train-option`` value as its TrainConfig field wants it: the text as is for the string fields
    (``projector=512-128`` stays "512-128", not 384), ``none`` → None where allowed, else as ``--hp`` values."""
    from sslbench.training.config import TrainConfig, parse_hparam

    f = TrainConfig.__dataclass_fields__.get(name)
    annotation = str(f.type) if f is not None else ""
    if annotation.startswith("str"):
        if raw.lower() in ("none", "null") and "None" in annotation:
            return None
        return raw
    try:
        return parse_hparam(f"{name}={raw}", "--train-option")[1]
    except ValueError as exc:
        raise SweepError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sslbench sweep`` (every default is None here: the config file and then the kind's
    defaults fill in what the command line leaves out, see :func:`resolve_settings`)."""
    parser.add_argument("--config", metavar="FILE", help="a TOML (.toml) or JSON file of settings; the keys are the "
                        "options below with '_' for '-' (min_time, train_options); the command line overrides it")
    groups = {"grid": parser.add_argument_group("grid"), "bench": parser.add_argument_group("bench measurement"),
              "other": parser.add_argument_group("sweep"),
              "cluster": parser.add_argument_group("executors (docs/cluster.md)")}
    for opt in OPTIONS:
        kinds = "" if opt.kinds == KINDS else f" [--kind {opt.kinds[0]}]"
        grid = opt.many or opt.item is dict
        g = (groups["cluster"] if opt.key in CLUSTER_KEYS else groups["grid"] if grid
             else groups["bench"] if opt.kinds == _B else groups["other"])
        if opt.item is dict:
            g.add_argument(_DICT_FLAGS[opt.key], dest=opt.key, action="append",
                           type=_raw_name_value if opt.key in ("train_options", "slurm_options") else _name_value,
                           default=None, metavar="NAME=VALUE", help=opt.help + kinds)
        elif opt.item is bool:
            if opt.key == "resume":
                g.add_argument("--no-resume", dest="resume", action="store_false", default=None,
                               help="measure every case again, even those already in the store")
            else:
                g.add_argument("--progress", dest="progress", action="store_true", default=None, help=opt.help)
                g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
        else:
            kw: dict[str, Any] = {"dest": opt.key, "default": None, "help": opt.help + kinds}
            if opt.item in (int, float):
                kw["type"] = opt.item
            if opt.choices is not None:
                kw["choices"] = list(opt.choices)
            if opt.many:
                kw.update(nargs="+", metavar=opt.metavar or opt.key.upper())
            g.add_argument(opt.flag, **kw)
    parser.add_argument("--dry-run", action="store_true", help="list the cases, which are already done, and exit")
    watch = groups["cluster"].add_mutually_exclusive_group()
    watch.add_argument("--status", action="store_true", help="with the sweep's grid and store: how many cases are "
                       "pending, running (job, host), done, failed (with the end of their output), and exit")
    watch.add_argument("--cancel", action="store_true", help="cancel the sweep's submitted jobs (local or slurm) "
                       "and exit")


def _dict_args(args: argparse.Namespace) -> argparse.Namespace:
    """NAME=VALUE lists → dicts (a name given twice is an error)."""
    out = argparse.Namespace(**vars(args))
    for key in ("hparams", "train_options", "data_options", "slurm_options"):
        items = getattr(args, key, None)
        if items is None:
            continue
        d: dict = {}
        for name, value in items:
            if key == "train_options":
                value = _train_option_value(name, value)
            if name in d:
                raise SweepError(f"{name} is given twice ({d[name]!r} and {value!r}); keep one")
            d[name] = value
        setattr(out, key, d)
    return out


def _read_store(path: str, kind: str, command: str, start: int = 0) -> list[dict]:
    """The store's records of ``kind`` (from byte ``start``); the lines that are not records are reported in one
    line and skipped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        records = read_records(path, kind=kind, start=start)
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            print(f"sslbench {command}: warning: {w.message}", file=sys.stderr, flush=True)
    return records


def _resume_command(command: str) -> str:
    argv = sys.argv[1:]
    if argv[:1] == [command]:
        return "sslbench " + " ".join(shlex.quote(a) for a in argv)
    return "the same command"


# ==============================================================================================================
# The loop: plan, run each case, store its record, summarise (sslbench bench is a front end of it)
# ==============================================================================================================
@dataclass
class _Plan:
    """What one invocation does: the settings, the grid (duplicates dropped), the store, the environment and
    which cases the store already has with a final status (on the same setup, for bench)."""

    command: str
    settings: dict
    cases: list[dict]
    ids: list[str]
    out: str
    env: dict
    records: list[dict]  # the store's records of this kind that count for resume
    in_store: list[bool]
    offset: int = 0  # the store's size when it was read: what other writers append later starts there
    run_ids: list[str] | None = None  # train: each case's run id (sslbench.training.train.planned_run_id)

    def sid_of(self, record: dict) -> str | None:
        """The case of this grid a stored record answers: its sweep case id (:func:`sweep_id_of`), or, for a
        training record that ``sslbench train`` wrote on its own, the case of the same run id: one run, whichever
        command started it."""
        sid = sweep_id_of(record)
        if sid in self._run_of:
            return sid
        return self._by_run.get(record.get("id"), sid)

    def claim_key(self, sid: str) -> str:
        """The claim of a case: a training case claims its run (``run-<run id>``, as ``sslbench train`` does), a
        bench case its case id."""
        run_id = self._run_of.get(sid)
        return f"run-{run_id}" if run_id else sid

    @functools.cached_property
    def _run_of(self) -> dict[str, str | None]:  # {case id: run id (None for bench)}
        return dict(zip(self.ids, self.run_ids or [None] * len(self.ids)))

    @functools.cached_property
    def _by_run(self) -> dict[str, str]:  # {run id: case id}
        return dict(zip(self.run_ids or [], self.ids))

    @property
    def kind(self) -> str:
        return self.settings["kind"]

    @property
    def done(self) -> list[bool]:
        return self.in_store if self.settings["resume"] else [False] * len(self.ids)

    @property
    def todo(self) -> list[tuple[dict, str]]:
        return [(c, i) for c, i, d in zip(self.cases, self.ids, self.done) if not d]

    @property
    def name(self) -> str:
        return f"sslbench {self.command}" + (f" ({self.kind})" if self.command == "sweep" else "")


def _settings_and_cases(args: argparse.Namespace) -> tuple[dict, list[dict], str]:
    """The checked settings, the grid and the store of a command line (a dry run only plans: a CUDA grid is planned
    on a machine without CUDA too). Raises :class:`SweepError`."""
    args = _dict_args(args)
    plan_only = bool(getattr(args, "dry_run", False))
    config = load_config(args.config) if getattr(args, "config", None) else {}
    s = resolve_settings(args, config)
    cases = build_cases(s, plan_only)
    return s, cases, s["out"] or default_out(s, getattr(args, "config", None), plan_only)


def _unique_cases(cases: list[dict], rkind: str, command: str) -> tuple[list[dict], list[str]]:
    ids = [case_id(rkind, c) for c in cases]
    if len(set(ids)) != len(ids):
        print(f"sslbench {command}: note: {len(ids) - len(set(ids))} case(s) of the grid repeat another (a value "
              "listed twice); each is measured once", file=sys.stderr)
        unique = dict(zip(ids, cases))  # first occurrence kept, order kept
        ids, cases = list(unique), list(unique.values())
    return cases, ids


def _plan(command: str, s: dict, cases: list[dict], out: str) -> _Plan:
    rkind = record_kind(s)
    cases, ids = _unique_cases(cases, rkind, command)
    env = environment()
    if s["kind"] == "bench" and s["threads"]:
        env["threads"] = s["threads"]
    offset = store_size(out)
    records = _counting(s, env, _read_store(out, rkind, command))
    plan = _Plan(command, s, cases, ids, out, env, records, [], offset, _run_ids(s, cases))
    done_ids = {plan.sid_of(r) for r in records if r.get("status") in FINAL_STATUSES}
    plan.in_store = [i in done_ids for i in ids]
    return plan


def _run_ids(s: dict, cases: list[dict]) -> list[str] | None:
    """The run id of each training case, as ``sslbench train`` names the same run (None for bench)."""
    if s["kind"] != "train":
        return None
    from sslbench.training.train import planned_run_id

    gpus = s.get("gpus_per_case") or 0
    # a dry run plans a CUDA grid on a machine without CUDA: the configuration is resolved on the CPU (as
    # _train_cases checks it), the id names the case's own device
    return [planned_run_id(train_config({**c, "device": "cpu"} if planned_without_cuda([c["device"]]) else c, s),
                           world=gpus if gpus > 1 else 1, device=c["device"]) for c in cases]


def _counting(s: dict, env: dict, records: list[dict]) -> list[dict]:
    """The records that count for resume: all of them for train, those measured on the same setup for bench."""
    if s["kind"] == "bench":
        return [r for r in records if bench.same_setup(r["env"], env)]
    return records


def _done_meanwhile(plan: _Plan, sid: str) -> bool:
    """Whether another writer stored a final record of case ``sid`` since this run read the store."""
    new = _counting(plan.settings, plan.env, _read_store(plan.out, record_kind(plan.settings), plan.command,
                                                         start=plan.offset))
    return any(plan.sid_of(r) == sid and r.get("status") in FINAL_STATUSES for r in new)


def _dry_run(plan: _Plan) -> int:
    for c, d in zip(plan.cases, plan.in_store):
        print(f"{'done' if d else 'todo'}  {describe(plan.kind, c)}")
    print(f"{len(plan.cases)} case(s): {sum(plan.in_store)} already done in {plan.out}, {len(plan.todo)} to run"
          + ("" if plan.settings["resume"] else " (--no-resume: all of them)"))
    if planned_without_cuda([c.get("device", "") for c in plan.cases]):
        print("note: this machine has no CUDA device: the plan only; running these cases needs CUDA")
    return 0


def _eta_from_store(plan: _Plan) -> EtaEstimator:
    """An ETA seeded with the durations of this grid's finished cases from earlier runs."""
    eta = EtaEstimator(plan.kind)
    wanted = set(plan.ids)
    for r in plan.records:
        if plan.sid_of(r) in wanted and r.get("status") in FINAL_STATUSES:
            sw = r["extra"].get("sweep") if isinstance(r["extra"].get("sweep"), dict) else {}
            eta.add(sw.get("case") or r["case"], sw.get("wall_s", r["extra"].get("wall_s")))
    return eta


class _Progress:
    """The progress bar on stderr (tqdm), or plain lines on stdout when there is none."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="case", dynamic_ncols=True,
                            bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def eta(self, seconds: float | None, advance: bool = False) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"eta {_duration(seconds)}", refresh=not advance)
            if advance:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C and SIGTERM wait until the block has ended (storing a finished case's record is never cut short)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclass
class _Run:
    plan: _Plan
    progress: _Progress
    eta: EtaEstimator
    counts: dict = field(default_factory=dict)
    current: dict | None = None  # the case running now (recorded as "interrupted" if the run stops)
    elsewhere: int = 0  # cases left to another writer (running there, or done there meanwhile)


def _store(plan: _Plan, record: dict) -> None:
    append_record_safely(plan.out, record)


def _claim(run: _Run, case: dict, sid: str):
    """This process's claim on the case, or None (and a line saying so) when another writer runs it or has
    stored it since this run read the store."""
    plan = run.plan
    claim = try_claim(plan.out, plan.claim_key(sid))
    why = None
    if claim is None:
        held = read_claims(plan.out).get(plan.claim_key(sid), {})
        why = (f"running elsewhere (host {held.get('host', '?')}, pid {held.get('pid', '?')}"
               + (f", job {held['job']}" if held.get("job") else "") + ")")
    elif _done_meanwhile(plan, sid):
        claim.release()
        claim, why = None, "recorded meanwhile by another writer"
    if claim is None:
        run.elsewhere += 1
        run.progress.say(f"skipped {describe(plan.kind, case)}: {why}")
    elif claim.taken_over:
        run.progress.say(f"taking over {describe(plan.kind, case)}: {claim.taken_over}")
    return claim


def _run_one(run: _Run, k: int, case: dict, sid: str) -> None:
    claim = _claim(run, case, sid)
    if claim is None:
        return
    try:
        _run_claimed(run, k, case, sid)
    finally:
        claim.release()


def _run_claimed(run: _Run, k: int, case: dict, sid: str) -> None:
    plan, s = run.plan, run.plan.settings
    todo = plan.todo
    run.progress.eta(run.eta.remaining([c for c, _ in todo[k:]]))
    run.current = case
    if plan.kind == "bench":
        outcome = _run_bench_case(case, s, plan.env)
    else:
        outcome = _run_train_case(case, s, plan.env, resume=s["resume"], sweep_id=sid)
    with _signals_deferred():
        _store(plan, outcome.record)
        run.current = None
    status = outcome.record["status"]
    if outcome.interrupt is not None:  # a training child that stopped on the forwarded signal and wrote its record
        print(f"interrupted during {describe(plan.kind, case)}: recorded as {status!r}"
              + (" (it runs again on resume, from its checkpoint)" if status == "interrupted" else ""),
              file=sys.stderr)
        raise outcome.interrupt
    run.counts[status] = run.counts.get(status, 0) + 1
    run.eta.add(case, outcome.wall_s)
    remaining = run.eta.remaining([c for c, _ in todo[k + 1:]])
    n_done = sum(plan.done)
    run.progress.say(f"[{n_done + k + 1}/{len(plan.cases)}] {describe(plan.kind, case)}: "
                     f"{_summary(plan.kind, outcome.record)} ({outcome.wall_s:.1f} s; eta {_duration(remaining)})")
    run.progress.eta(remaining, advance=True)


def _interrupted(run: _Run, exc: BaseException) -> int:
    """Record the running case as "interrupted", say how to resume; the exit status is 128 + the signal (130
    for Ctrl-C / SIGINT, 143 for SIGTERM)."""
    plan = run.plan
    run.progress.close()
    signum = signal_of(exc)
    how = stop_name(signum)
    if run.current is not None:
        rkind = record_kind(plan.settings)
        rec = make_record(rkind, run.current, {}, "interrupted", env=plan.env, message=f"interrupted by the user "
                          f"({how})")
        if plan.kind == "train":
            rec["extra"]["sweep"] = {"id": case_id(rkind, run.current), "case": run.current, "wall_s": None}
        _store(plan, rec)
        print(f"interrupted during {describe(plan.kind, run.current)}: recorded as 'interrupted' (it runs again on "
              "resume)", file=sys.stderr)
    print(f"sslbench {plan.command}: interrupted ({how}) after {sum(run.counts.values())} new case(s) this run; "
          f"every finished case is in {plan.out}. To resume, run {_resume_command(plan.command)} again",
          file=sys.stderr, flush=True)
    return 128 + signum


def _run_plan(plan: _Plan) -> int:
    """Run the cases to do, one after the other, each record appended as soon as the case ends."""
    n_done, todo = sum(plan.done), plan.todo
    skipped_note = f"; {n_done} already done, skipped (--no-resume to redo)" if n_done else ""
    print(f"{plan.name}: {len(plan.cases)} case(s) -> {plan.out}{skipped_note}; {len(todo)} to run", flush=True)
    progress = plan.settings["progress"] if plan.settings["progress"] is not None else sys.stderr.isatty()
    run = _Run(plan, _Progress(progress, len(todo)), _eta_from_store(plan))
    t_start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            for k, (case, sid) in enumerate(todo):
                _run_one(run, k, case, sid)
    except KeyboardInterrupt as exc:
        return _interrupted(run, exc)
    finally:
        tidy(plan.out)
    run.progress.close()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items())) or "nothing to run"
    print(f"done in {_duration(time.perf_counter() - t_start)}: {summary}"
          + (f"; {n_done} skipped, already in {plan.out}" if n_done else "")
          + (f"; {run.elsewhere} left to another writer" if run.elsewhere else ""), flush=True)
    print(devices_line(plan), flush=True)
    return 1 if run.counts.get("error") else 0


def grid_records(plan: _Plan) -> list[dict]:
    """The store's records of this grid's cases (every writer's, read now)."""
    wanted = set(plan.ids)
    return [r for r in _read_store(plan.out, record_kind(plan.settings), plan.command) if plan.sid_of(r) in wanted]


def devices_line(plan: _Plan) -> str:
    """One line naming the devices (``env.device_name``) of the grid's records in the store, and a warning
    when there are several: their figures are not to be pooled (``sslbench analyze`` and the dashboard keep
    them apart by device)."""
    names: dict[str, int] = {}
    for r in grid_records(plan):
        name = str((r.get("env") or {}).get("device_name") or "unknown device")
        names[name] = names.get(name, 0) + 1
    if not names:
        return "devices: none recorded yet"
    text = ", ".join(f"{n} ({c} record(s))" for n, c in sorted(names.items(), key=lambda kv: -kv[1]))
    if len(names) == 1:
        return f"device: {text}"
    return (f"warning: the store mixes {len(names)} devices: {text}; their timings and accuracies are not "
            "comparable, compare them per device (the dashboard's Device filter, analyze's device_name column)")


def _check_watched_store(out: str) -> None:
    """``--status`` / ``--cancel`` read the store and its sweep folder and write nothing (a read-only store is
    fine, a mistyped path creates no folder). Raises :class:`SweepError` or :class:`SidecarError`."""
    if os.path.isdir(out):
        raise SweepError(f"--out {out}: this is a folder; name the store file, e.g. {os.path.join(out, 'results.jsonl')}")
    has_sidecar = check_folder(sidecar(out), "the sweep folder", "--out", out, write=False)
    if not os.path.exists(out) and not has_sidecar:
        raise SweepError(f"--out {out}: no such store and no sweep folder beside it; check the path (--status and "
                         "--cancel read a store, they create nothing)")


def execute(args: argparse.Namespace, command: str = "sweep") -> int:
    """The loop of ``sslbench sweep`` and ``sslbench bench``: settings checked and ``--out`` checked before any
    work, then the dry run or the cases. ``command`` names the command in the messages."""
    watching = bool(getattr(args, "status", False) or getattr(args, "cancel", False))
    try:
        s, cases, out = _settings_and_cases(args)
        if watching:
            _check_watched_store(out)
        elif not args.dry_run:
            check_store_path(out, "--out")
            check_sidecar(out, "--out")
    except (SweepError, OutputPathError, SidecarError) as exc:
        print(f"sslbench {command}: error: {exc}", file=sys.stderr)
        return 2
    plan = _plan(command, s, cases, out)
    if args.dry_run:
        return _dry_run(plan)
    if getattr(args, "status", False) or getattr(args, "cancel", False) or s["executor"] != "inline":
        from sslbench.execution import cluster

        action = "status" if getattr(args, "status", False) else "cancel" if getattr(args, "cancel", False) else "run"
        return cluster.main(plan, action)
    clean_stale_case_folders()
    return _run_plan(plan)


def run(args: argparse.Namespace) -> int:
    """``sslbench sweep``: 0 every case recorded (none an "error"), 1 some errors, 2 bad input, 130 interrupted
    (Ctrl-C), 143 stopped by SIGTERM."""
    return execute(args, "sweep")


if __name__ == "__main__":  # a training case's child process (sslbench.execution.runner starts it)
    if len(sys.argv) != 3 or sys.argv[1] != "--train-worker":
        sys.exit("python -m sslbench.execution.sweep runs one training case for `sslbench sweep`: "
                 "use `sslbench sweep` instead")
    sys.exit(_train_worker(sys.argv[2]))
