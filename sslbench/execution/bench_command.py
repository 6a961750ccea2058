"""``sslbench bench``: the thin command over the case library :mod:`sslbench.execution.bench` (the cases, the
step that is measured, their validation) and the sweep's loop (``sslbench sweep --kind bench`` with these options,
:func:`sslbench.execution.sweep.execute`): the settings (regularizer names, ``--hp`` names and values, sizes) and
``--out`` are checked before any case runs, bad input is one line and exit status 2, and the two commands' stores
are interchangeable.

Examples::

    sslbench bench --regularizers barlow_twins vicreg --dims 128 512 2048 --batches 256
    sslbench bench --regularizers barlow_twins --algorithms cross_correlation gram --dims 256 4096 --batches 128 2048
    sslbench bench --dry-run                      # list the cases
"""

from __future__ import annotations

import argparse
from typing import Any

from sslbench import regularizers
from sslbench.devices import HELP as DEVICE_HELP
from sslbench.execution import sweep
from sslbench.execution.bench import DEFAULT_OUT, DTYPES

__all__ = ["add_arguments", "sweep_arguments", "run"]


def _hparam(text: str) -> tuple[str, Any]:
    """``--hp NAME=VALUE`` (alias ``--hparam``), read as ``sslbench train`` and ``sslbench sweep`` read it (one parser:
    :func:`sslbench.training.config.parse_hparam`: numbers, 1/128, true/false, none, tuples 1,40,40, strings)."""
    from sslbench.training.config import parse_hparam

    try:
        return parse_hparam(text, "--hp")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("grid")
    g.add_argument("--regularizers", nargs="+", default=None, metavar="SPEC",
                   help="regularizers to measure: built-in names, plugins' entry-point names or package.module:Class "
                        "(`sslbench regularizers` lists them; default: all built-ins: %(choices)s)".replace(
                       "%(choices)s", ", ".join(regularizers.available())))
    g.add_argument("--dims", nargs="+", type=int, default=[128, 512, 2048], metavar="D", help="embedding sizes D (default: 128 512 2048)")
    g.add_argument("--batches", nargs="+", type=int, default=[256], metavar="N", help="samples per view N (default: 256)")
    g.add_argument("--views", nargs="+", type=int, default=[2], metavar="V", help="numbers of views V (default: 2)")
    g.add_argument("--device", nargs="+", default=["auto"], metavar="DEV",
                   help="devices: " + DEVICE_HELP)
    g.add_argument("--dtypes", nargs="+", default=["float32"], choices=list(DTYPES), help="input dtypes (default: float32; the losses compute in float32 or float64)")
    g.add_argument("--algorithms", nargs="+", default=None, metavar="ALGO",
                   help="for regularizers with an 'algorithm' hyper-parameter: auto, cross_correlation, gram "
                        "(default: each one's default)")
    g.add_argument("--hp", "--hparam", dest="hparam", action="append", type=_hparam, default=[],
                   metavar="NAME=VALUE",
                   help="hyper-parameter given to every regularizer that accepts it (repeatable; values as sslbench "
                        "train --hp: numbers, 1/128, true/false, none, tuples 1,40,40, strings); a name no regularizer "
                        "of the grid takes, or a value one refuses, stops the command before any case runs")
    m = parser.add_argument_group("measurement")
    m.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    m.add_argument("--repeats", type=int, default=None,
                   help="timed calls (default: at least 5 and until --min-time seconds, at most --max-repeats)")
    m.add_argument("--min-time", type=float, default=0.2, help="seconds of timed calls per case (default 0.2)")
    m.add_argument("--max-repeats", type=int, default=50, help="at most this many timed calls (default 50)")
    m.add_argument("--timeout", type=float, default=600.0, help="seconds per case before it is killed (isolated)")
    m.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    m.add_argument("--isolate", choices=["auto", "always", "never"], default="auto",
                   help="a fresh process per case: auto = on CPU only (peak RSS needs it), always, never")
    m.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    o = parser.add_argument_group("output")
    o.add_argument("--out", default=DEFAULT_OUT, help=f"JSON-lines store to append to (default {DEFAULT_OUT})")
    o.add_argument("--no-resume", dest="resume", action="store_false",
                   help="measure every case again, even those already in --out")
    o.add_argument("--dry-run", action="store_true", help="print the cases and exit")
    o.add_argument("--yes", action="store_true", help="plan or run a grid of more than 10,000 cases (refused without it)")


def sweep_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """The ``sslbench sweep --kind bench`` command line equivalent to ``sslbench bench``'s ``args`` (no progress
    bar, the bench's default store)."""
    return argparse.Namespace(
        kind="bench", config=None, regularizers=args.regularizers, algorithms=args.algorithms, dims=args.dims,
        batches=args.batches, views=args.views, device=args.device, dtypes=args.dtypes, hparams=args.hparam or None,
        warmup=args.warmup, repeats=args.repeats, min_time=args.min_time, max_repeats=args.max_repeats,
        threads=args.threads, isolate=args.isolate, seed=args.seed, timeout=args.timeout, out=args.out or DEFAULT_OUT,
        resume=args.resume, progress=False, dry_run=args.dry_run, yes=args.yes)


def run(args: argparse.Namespace) -> int:
    """``sslbench bench``: a front end of the sweep's loop (:func:`sslbench.execution.sweep.execute`): the same
    checks of the settings before any work, resume, records and exit status (0 ok, 1 some "error" records, 2 bad
    input, 130 Ctrl-C, 143 SIGTERM)."""
    return sweep.execute(sweep_arguments(args), "bench")
