"""``sslbench analyze``: the summary tables of a results folder, printed as text, Markdown or CSV.

Reads every record under ``--results`` (JSON-lines stores, pytest-benchmark JSON files, asv results
directories; :func:`sslbench.analysis.load_results`) and prints:

* ``inventory``: the records by source, kind, device and status;
* ``scaling_dim`` / ``scaling_batch``: the fitted exponents alpha of time and memory in D (in N) of every series,
  log-log least squares over the ok points (``--min-points`` distinct sizes at least), with R²;
* ``crossovers``: where two series of the same regularizer cross in D (primal ``cross_correlation`` vs dual
  ``gram``, the official code vs sslbench, ...), for time and for memory, or which one is lower throughout;
* ``accuracy``: training runs, seeds pooled (linear probe and kNN, at initialisation, gains, training time);
* ``versus`` (on request: ``--tables versus``): each training variant against the baselines (``--baselines``,
  default Barlow Twins and VICReg) at the same setting: Δ with its 95 % Welch interval, the equivalence test within
  ±1 point (kNN ±2), and a verdict (comparable, better, worse, or the seeds per arm that would settle it);
* ``regressions``: asv benchmarks that changed by more than ``--threshold`` × from one commit to the next.

Examples::

    sslbench analyze                                   # results/ (and .asv/results) as text
    sslbench analyze --results results/sweeps --tables scaling_dim crossovers --format markdown
    sslbench analyze --asv .asv/results --tables regressions --threshold 1.3 --format csv > regressions.csv
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from sslbench.records.text import one_line

TITLES = {
    "inventory": "Records",
    "scaling_dim": "Scaling exponents in D (y ∝ D^alpha; log-log least squares)",
    "scaling_batch": "Scaling exponents in N (y ∝ N^alpha)",
    "crossovers": "Crossovers in D",
    "accuracy": "Accuracy of training runs (seeds pooled)",
    "versus": "Each variant against the baselines at the same setting (Welch 95 % interval, TOST within the margin)",
    "regressions": "asv changes between consecutive commits beyond the threshold",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sslbench.analysis.tables import DEFAULT_TABLES, SUMMARY_TABLES

    parser.add_argument("--results", default="results", metavar="DIR",
                        help="results folder, read recursively (default: results)")
    parser.add_argument("--asv", action="append", default=None, metavar="DIR",
                        help="an asv results directory (repeatable; default: .asv/results beside --results, when "
                             "it exists; asv directories under --results are always read)")
    parser.add_argument("--format", choices=["text", "markdown", "csv"], default="text",
                        help="output format (default text)")
    parser.add_argument("--tables", nargs="+", choices=list(SUMMARY_TABLES), default=list(DEFAULT_TABLES),
                        metavar="TABLE", help=f"tables to print, of {', '.join(SUMMARY_TABLES)} (default: all but "
                                              "versus, whose cost grows with the comparisons: name it to get it)")
    parser.add_argument("--baselines", nargs="+", default=None, metavar="VARIANT",
                        help="versus: the regularizers (each of their variants) or variant labels (as the accuracy "
                             "table names them) every other variant is compared with where they ran (default: "
                             "barlow_twins vicreg)")
    parser.add_argument("--threshold", type=float, default=1.2,
                        help="asv: flag a change beyond this factor between consecutive commits (default 1.2)")
    parser.add_argument("--min-points", type=int, default=3,
                        help="scaling: distinct sizes a series needs for a fit (default 3)")
    parser.add_argument("--dim-min", type=float, default=None, metavar="D",
                        help="scaling in D: fit over D >= this only (the asymptotic regime; default: every D)")


def _bad_argument(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line (one line naming the option and the fix), or None."""
    root = Path(args.results)
    if not root.exists():
        return (f"--results {root}: the results folder does not exist; pass the folder your runs wrote to "
                "(default results/), or produce results first (sslbench bench, sslbench sweep)")
    if not root.is_dir():
        hint = f", e.g. --results {root.parent}" if root.is_file() else ""
        return f"--results {root}: not a folder; pass the folder that holds the result files{hint}"
    for d in args.asv or []:
        if not Path(d).is_dir():
            return f"--asv {d}: no such asv results folder; pass asv's results directory (.asv/results)"
    if not (math.isfinite(args.threshold) and args.threshold > 1):
        return f"--threshold {args.threshold}: must be a finite factor > 1, e.g. 1.2 for 20 %"
    if args.min_points < 2:
        return f"--min-points {args.min_points}: must be at least 2 (a line needs two distinct sizes)"
    if args.dim_min is not None and not (math.isfinite(args.dim_min) and args.dim_min > 0):
        return f"--dim-min {args.dim_min}: must be a positive size such as 256"
    return None


def run(args: argparse.Namespace) -> int:
    from sslbench import analysis as A
    from sslbench.analysis.versus import DEFAULT_BASELINES

    problem = _bad_argument(args)
    if problem:
        print(f"sslbench analyze: {problem}", file=sys.stderr)
        return 2
    root = Path(args.results)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = A.load_results(root, asv=args.asv, columns=A.SUMMARY_COLUMNS)  # only what the tables read
        tables = A.summary(df, threshold=args.threshold, min_points=args.min_points, dim_min=args.dim_min,
                           tables=args.tables, baselines=args.baselines or DEFAULT_BASELINES) if not df.empty else {}
    except Exception as exc:  # noqa: BLE001 -- one line naming the problem, never a traceback
        print(f"sslbench analyze: could not analyze the results in {root} ({type(exc).__name__}: {one_line(exc)}); the "
              "file at fault can be moved aside and the command rerun", file=sys.stderr)
        return 1
    for w in caught:
        print(f"warning: {one_line(w.message)}", file=sys.stderr)  # may quote the store
    if df.empty:
        print(A.HOW_TO_PRODUCE_RESULTS.format(root=root), file=sys.stderr)
        return 1
    print(_render(tables, args))
    return 0


def _render(tables: dict, args: argparse.Namespace) -> str:
    from sslbench import analysis as A

    blocks = []
    for name, table in tables.items():
        title = TITLES.get(name, name)
        if name == "regressions":
            title += f" (×{args.threshold:g})"
        if name == "scaling_dim" and args.dim_min:
            title += f", D >= {args.dim_min:g}"
        if args.format == "csv":
            blocks.append(f"# {name}\n" + (A.format_table(table, "csv") if not table.empty else ""))
            continue
        heading = f"## {title}" if args.format == "markdown" else f"{title}\n{'=' * len(title)}"
        body = A.format_table(table, args.format) if not table.empty else "(none)"
        blocks.append(f"{heading}\n\n{body}")
    return "\n\n".join(blocks)
