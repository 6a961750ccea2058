"""``sslbench sweep``: a resumable grid of cases, measured one after the other and appended to a JSON-lines store.

Two kinds of case:

* ``--kind bench``: regularizer micro-benchmarks, exactly the cases, measurement and records of
  :mod:`sslbench.execution.bench` (``kind="regularizer_bench"``; grid over regularizer × algorithm × D × N × V × device ×
  dtype, with ``hparams``). A store written by ``sslbench bench`` resumes under ``sslbench sweep`` and the
  other way round. On the CPU each case runs in a fresh process (``--isolate auto``) so that its peak memory is
  its own.
* ``--kind train``: pretraining runs of :mod:`sslbench.training.train` (grid over regularizer × data set × D (projector
  output) × V × fraction of the training split × seed × epochs × batch size × device, with ``hparams`` and fixed
  ``train_options``). Each case runs in a child process (``python -m sslbench.execution.plan --train-worker SPEC``) with a
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
import io
import itertools
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslbench.devices import HELP as DEVICE_HELP
from sslbench.devices import DeviceError, check_name, is_cuda, resolve_device
from sslbench.execution import cases as bench_cases
from sslbench.execution.plan import (  # noqa: F401
    TRAIN_KIND,
    EtaEstimator,
    SweepError,
    describe_train,
    dry_run,
    make_plan,
    planned_without_cuda,
    record_kind,
    run_plan,
    train_config,
)
from sslbench.execution.runner import clean_stale_case_folders
from sslbench.records.claims import SidecarError, check_folder, check_sidecar, sidecar
from sslbench.records.paths import OutputPathError, check_store_path

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
           help="devices: " + DEVICE_HELP + ". Default: auto"),
    Option("dtypes", _B, str, many=True, metavar="DTYPE", default={"bench": ["float32"]}, choices=bench_cases.DTYPE_NAMES,
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
_DICT_FLAGS = {"hparams": "--hp", "train_options": "--train-option", "data_options": "--data-option",
               "slurm_options": "--slurm-option"}
#: other spellings of those flags: --hparam, bench's and sweep's name before train's --hp became the one name
_DICT_ALIASES = {"hparams": ("--hparam",)}


def _flag(opt: Option) -> str:
    """The command-line flag of an option (``--hp`` for ``hparams``, ...)."""
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
    """Each name is a built-in, a plugin's entry-point name or ``package.module:Class`` that imports (a plugin
    that does not is its one line; a built-in whose module is broken records the error in its cases)."""
    from sslbench import regularizers

    available = regularizers.available()
    unknown = [n for n in names if n not in available and not regularizers._plugins.is_module_spec(n)
               and n not in regularizers.available(plugins=True)]
    if unknown:
        raise SweepError(f"unknown regularizer(s) {', '.join(unknown)}; available: {', '.join(available)} "
                         f"(or a plugin: an entry-point name or package.module:Class; `sslbench regularizers` "
                         f"lists them)")
    for n in names:
        if not regularizers.is_builtin(n):
            try:
                regularizers.check_spec(n)
            except regularizers.RegularizerSpecError as exc:
                raise SweepError(str(exc)) from None


def _resolve_devices(devices: list[str], plan_only: bool = False) -> list[str]:
    """The devices of the grid, checked. ``plan_only`` (a dry run: it only plans, runs nothing) keeps a CUDA device
    that this machine lacks (:func:`planned_without_cuda`); a real run refuses it."""
    out = []
    for d in devices:
        try:
            dev = resolve_device(d)
        except DeviceError as exc:
            if not (plan_only and is_cuda(d)):  # a plan for a GPU machine names its CUDA devices
                raise SweepError(f"--device {d}: {exc}") from None
            dev = check_name(d)
        if dev not in out:
            out.append(dev)
    return out




def _check_hparams_accepted(names: list[str], hparams: dict) -> None:
    from sslbench import regularizers
    from sslbench.execution import bench

    for key in hparams:
        if not any(bench.accepts(n, key) for n in names):
            raise SweepError(f"{_DICT_FLAGS['hparams']} {key}: none of the regularizers of the grid ({', '.join(names)}) has "
                             f"a hyper-parameter {key!r}; check the spelling (e.g. "
                             f"{', '.join(regularizers.hparam_names(names[0])[:4])} for {names[0]})")


def _bench_cases(s: dict, plan_only: bool = False) -> list[dict]:
    from sslbench import regularizers
    from sslbench.execution import bench

    names = s["regularizers"] or regularizers.available()
    _check_regularizers(names)
    _check_hparams_accepted(names, s["hparams"])
    devices = _resolve_devices(s["device"], plan_only)
    cases = bench.iter_cases(names, s["dims"], s["batches"], s["views"], devices, s["dtypes"], s["algorithms"],
                             s["hparams"])
    # the hyper-parameters and algorithms are checked once per regularizer and D here, on the meta device (nothing
    # is allocated, even for DirectPred's D×D state), so that a typo stops the sweep before it starts rather than
    # filling the store with errors; and a case whose inputs and state alone exceed the device's memory is refused
    states: dict[tuple, int | None] = {}  # -1: the regularizer does not import (its cases record the error)
    memory = {d: bench.device_memory(d) for d in devices}
    for c in cases:
        key = (c["regularizer"], c.get("algorithm"), json.dumps(c.get("hparams"), sort_keys=True), c["dim"])
        if key not in states:
            try:
                states[key] = bench.state_bytes(c["regularizer"], c["dim"], algorithm=c.get("algorithm"),
                                                hparams=c.get("hparams"))
            except (ValueError, TypeError) as exc:
                what = f" algorithm={c['algorithm']}" if c.get("algorithm") else ""
                raise SweepError(f"{c['regularizer']}{what} with hparams {c.get('hparams') or {}}: {exc}") from None
            except ImportError:  # a registered regularizer whose module is broken: its cases record the error
                states[key] = -1
        if states[key] != -1:
            _check_case_memory(c, bench.case_bytes(c, states[key]), memory[c["device"]])
    return cases


def _check_case_memory(case: dict, need: int | None, memory: int | None) -> None:
    """Refuse a case that cannot fit: its inputs, their gradients and the regularizer's state alone (a lower
    bound, :func:`sslbench.execution.bench.case_bytes`) exceed the memory of its device."""
    if memory is None or (need is not None and need <= memory):
        return
    amount = "more than 2^63 bytes" if need is None else f"at least {_gib(need)}"
    raise SweepError(f"case {bench_cases.describe(case)} needs {amount} (its inputs, their gradients and the "
                     f"regularizer's state), more than the {_gib(memory)} of memory of {case['device']}; choose "
                     "smaller --dims / --batches / --views")


def _gib(n: int) -> str:
    if n < 2**40:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**40:,.0f} TiB" if n < 2**60 else f"{n / 2**40:.2e} TiB"


#: a grid larger than this asks for --yes (a typo such as --dims 1 2 ... 100000 would queue days of work)
MAX_CASES_WITHOUT_YES = 10_000


def grid_size(s: dict) -> int:
    """The number of cases of the grid of settings ``s``, counted from its axes before any case is built."""
    from sslbench import regularizers
    from sslbench.execution import bench

    names = s["regularizers"] or (regularizers.available() if s["kind"] == "bench" else [])
    if s["kind"] == "bench":
        per_name = sum(len(s["algorithms"]) if s["algorithms"] and bench.accepts(n, "algorithm") else 1
                       for n in names)
        axes = ("dims", "batches", "views", "device", "dtypes")
    else:
        per_name = len(names) * len(s["datasets"] or [None])
        axes = ("dims", "views", "fractions", "seeds", "epochs", "batches", "device")
    return math.prod([per_name] + [len(s[a]) for a in axes])


def check_grid_size(s: dict, yes: bool) -> None:
    """A grid of more than :data:`MAX_CASES_WITHOUT_YES` cases runs only with ``--yes``."""
    n = grid_size(s)
    if n > MAX_CASES_WITHOUT_YES and not yes:
        raise SweepError(f"the grid has {n:,} cases (more than {MAX_CASES_WITHOUT_YES:,}); check the lists of values "
                         "(--dims, --batches, ...), or add --yes to plan or run them all")


def _train_cases(s: dict, plan_only: bool = False) -> list[dict]:
    from sslbench import regularizers
    from sslbench.execution import bench
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


# ==============================================================================================================
# Default store
# ==============================================================================================================
def device_slug(device: str = "cpu") -> str:
    """A short file-name-safe name of the hardware behind ``device``: ``cpu-intel-xeon``, ``cpu-amd-epyc-7b13``,
    ``nvidia-h100-80gb-hbm3``."""
    from sslbench.probe.environment import environment

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
    """A ``--train-option`` value as its TrainConfig field wants it, read as ``sslbench train``'s own option reads
    it: the text as is for the string fields (``projector=512-128`` stays "512-128", not 384; ``augment=none`` is
    the preset "none", not None, which would pick the data set's default augmentations), ``none`` → None where that
    option's parser says so (``log_dir=none``: no log), else as ``--hp`` values."""
    from sslbench.training.config import TrainConfig, parse_hparam

    f = TrainConfig.__dataclass_fields__.get(name)
    annotation = str(f.type) if f is not None else ""
    if annotation.startswith("str"):
        read = f.metadata.get("argparse", {}).get("type")
        return read(raw) if callable(read) else raw
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
            g.add_argument(_DICT_FLAGS[opt.key], *_DICT_ALIASES.get(opt.key, ()), dest=opt.key, action="append",
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
    parser.add_argument("--yes", action="store_true",
                        help=f"plan or run a grid of more than {MAX_CASES_WITHOUT_YES:,} cases (refused without it)")
    watch = groups["cluster"].add_mutually_exclusive_group()
    watch.add_argument("--status", action="store_true", help="with the sweep's grid and store: how many cases are "
                       "pending, running (job, host), done, failed (with the end of their output), and exit")
    watch.add_argument("--cancel", action="store_true", help="cancel the sweep's submitted jobs (local or slurm) "
                       "and exit")
    study = parser.add_argument_group("claim studies (sslbench report --list)")
    study.add_argument("--study", nargs="+", metavar="NAME", help="run these claim studies (or all): each one's exact "
                       "checks and the missing cases of its grids at --scale into results/studies/<device>-<study>"
                       ".jsonl (resumable; --executor, --dry-run, --status and --cancel apply); then sslbench report "
                       "reads them")
    study.add_argument("--scale", default=None, metavar="SCALE", help="with --study: cpu, the CPU-sized grids "
                       "(minutes); gpu, the GPU-sized grids at the full budget (CIFAR-10, ResNet-18, 100-200 epochs: "
                       "hours per study); gpu-1h, the same arms in about one GPU-hour per study (fewer epochs; at an "
                       "assumed throughput, see results/studies/README.md). The GPU scales need CUDA. Default: cpu")


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


def _settings_and_cases(args: argparse.Namespace) -> tuple[dict, list[dict], str]:
    """The checked settings, the grid and the store of a command line (a dry run only plans: a CUDA grid is planned
    on a machine without CUDA too). Raises :class:`SweepError`."""
    s, cases, out, _ = _settings_and_grid(args)
    return s, cases, out


def _settings_and_grid(args: argparse.Namespace, command: str = "sweep", watching: bool = False,
                       cached: bool = False):
    """:func:`_settings_and_cases` and the training cases' run ids (None: not computed yet, or bench). Watching a
    store with ``cached`` (``--status``), the grid comes from :mod:`sslbench.execution.plan_cache` when an earlier
    ``--status`` built it from the same settings and sources (no torch imported), else it is built and kept there."""
    args = _dict_args(args)
    plan_only = bool(getattr(args, "dry_run", False))
    config = load_config(args.config) if getattr(args, "config", None) else {}
    s = resolve_settings(args, config)
    key = None
    if watching and cached and not plan_only:
        from sslbench.execution import plan_cache

        if plan_cache.cacheable(s):
            key = plan_cache.key_of(command, s, getattr(args, "config", None), bool(getattr(args, "yes", False)))
            with _warnings_as_lines(command):
                hit = plan_cache.load(key)
            if hit is not None:
                return s, hit[0], hit[2], hit[1]
    check_grid_size(s, bool(getattr(args, "yes", False)))
    cases = build_cases(s, plan_only)
    out = s["out"] or default_out(s, getattr(args, "config", None), plan_only)
    run_ids = None
    if key is not None:
        run_ids = _plan_run_ids(s, cases, command)
        plan_cache.save(key, cases, run_ids, out)
    return s, cases, out, run_ids


def _plan_run_ids(s: dict, cases: list[dict], command: str) -> list[str] | None:
    """The run ids :func:`make_plan` computes for the grid (its duplicates dropped quietly: make_plan says so)."""
    from sslbench.execution.plan import _run_ids, _unique_cases

    with contextlib.redirect_stderr(io.StringIO()):
        unique, _ = _unique_cases(cases, record_kind(s), command)
    return _run_ids(s, unique)


@contextlib.contextmanager
def _warnings_as_lines(command: str):
    """Each RuntimeWarning raised inside as one line ``sslbench COMMAND: warning: ...`` on stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        yield
    for w in caught:
        print(f"sslbench {command}: warning: {w.message}", file=sys.stderr, flush=True)


def _check_watched_store(out: str) -> None:
    """``--status`` / ``--cancel`` read the store and its sweep folder and write nothing (a read-only store is
    fine, a mistyped path creates no folder). Raises :class:`SweepError` or :class:`SidecarError`."""
    if os.path.isdir(out):
        raise SweepError(f"--out {out}: this is a folder; name the store file, e.g. {os.path.join(out, 'results.jsonl')}")
    has_sidecar = check_folder(sidecar(out), "the sweep folder", "--out", out, write=False)
    if not os.path.exists(out) and not has_sidecar:
        raise SweepError(f"--out {out}: no such store and no sweep folder beside it; check the path (--status and "
                         "--cancel read a store, they create nothing)")
    if os.path.exists(out) and not os.access(out, os.R_OK):
        raise SweepError(f"--out {out}: the store cannot be read by you; ask its owner for read access (chmod g+r)")


def execute(args: argparse.Namespace, command: str = "sweep") -> int:
    """The loop of ``sslbench sweep`` and ``sslbench bench``: settings checked and ``--out`` checked before any
    work, then the dry run or the cases. ``command`` names the command in the messages."""
    watching = bool(getattr(args, "status", False) or getattr(args, "cancel", False))
    try:
        # the grid cache serves --status only: --cancel signals processes, so its grid (and the store it names) is
        # built from the settings every time, never taken from a file on disk
        s, cases, out, run_ids = _settings_and_grid(args, command, watching,
                                                    cached=bool(getattr(args, "status", False)))
        if watching:
            _check_watched_store(out)
        elif not args.dry_run:
            check_store_path(out, "--out")
            check_sidecar(out, "--out")
    except (SweepError, OutputPathError, SidecarError) as exc:
        print(f"sslbench {command}: error: {exc}", file=sys.stderr)
        return 2
    plan = make_plan(command, s, cases, out, watching=watching and not args.dry_run, run_ids=run_ids)
    if args.dry_run:
        return dry_run(plan)
    if getattr(args, "status", False) or getattr(args, "cancel", False) or s["executor"] != "inline":
        from sslbench.execution import cluster

        action = "status" if getattr(args, "status", False) else "cancel" if getattr(args, "cancel", False) else "run"
        return cluster.main(plan, action)
    clean_stale_case_folders()
    return run_plan(plan)


def run_studies(args: argparse.Namespace) -> int:
    """``sslbench sweep --study NAME... --scale S``: each study's exact checks, then the missing cases of each of its
    configs, through :func:`execute` with the command line's own options (``--executor``, ``--dry-run``,
    ``--status``, ``--cancel``, ...) and the config and store of the study in place of ``--config`` / ``--out``."""
    from sslbench.execution import studies  # the torch side of the claims, only for --study

    try:
        if args.config or args.out:
            raise SweepError("--study picks the configs and the store (results/studies/<device>-<study>[-cpu2].jsonl); "
                             f"drop {'--config' if args.config else '--out'}")
        runs = studies.study_runs(args.study, args.scale or "cpu")
    except (SweepError, studies.StudyError) as exc:
        print(f"sslbench sweep: error: {exc}", file=sys.stderr)
        return 2
    watch = args.status or args.cancel
    device = "cuda" if args.scale in studies.GPU_SCALES else "cpu"
    no_cuda = planned_without_cuda([device])
    if no_cuda and not (args.dry_run or watch):
        print(f"sslbench sweep: error: --scale {args.scale} needs a CUDA device; none is available here. Run it on "
              "a GPU machine (inline, or --executor local / slurm from there), or use --scale cpu", file=sys.stderr)
        return 2
    rc = 0
    for st in runs:
        # a dry run only plans: the store of a GPU scale is then the GPU's, whose name this machine cannot know
        out = Path(st.out_dir) / studies.store_name(UNKNOWN_GPU if no_cuda else device_slug(device), st.name,
                                                    args.scale or "cpu", bool(st.configs))
        if st.checks and args.dry_run:
            print(f"{st.name}: exact checks {', '.join(st.checks)} (no training) -> {out}")
        elif st.checks and not watch:
            out.parent.mkdir(parents=True, exist_ok=True)
            studies.run_checks(st.name, st.checks, out)
        for config in st.configs:
            print(f"$ sslbench sweep --config {_shown(config)} --out {out}", flush=True)
            one = argparse.Namespace(**{**vars(args), "study": None, "config": str(_shown(config)), "out": str(out),
                                        "progress": bool(args.progress)})
            rc = max(rc, execute(one, "sweep"))
            if rc in (2, 130, 143):
                return rc
    if not (args.dry_run or watch):
        print(f"then: sslbench report --study {' '.join(st.name for st in runs)}", flush=True)
    return rc


def _shown(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def run(args: argparse.Namespace) -> int:
    """``sslbench sweep``: 0 every case recorded (none an "error"), 1 some errors, 2 bad input, 130 interrupted
    (Ctrl-C), 143 stopped by SIGTERM."""
    if getattr(args, "study", None):
        return run_studies(args)
    if getattr(args, "scale", None):
        print(f"sslbench sweep: error: --scale {args.scale} applies to the claim studies: add --study NAME (sslbench "
              "report --list names them)", file=sys.stderr)
        return 2
    return execute(args, "sweep")


