"""``sslbench check SPEC... [--hp NAME=VALUE ...]``: the regularizer contract (:mod:`sslbench.execution.contract`)
run on built-in names, entry-point names or ``package.module:Class`` specs, one table per spec (property | result |
why). Exit 0 when every row passes or warns, 1 when a row fails, 2 on bad input (an unknown or broken spec, a bad
hyper-parameter: one line)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC",
                        help="a built-in name (barlow_twins), an entry-point name of the 'sslbench.regularizers' "
                             "group, or package.module:Class")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                        help="a hyper-parameter passed to every SPEC (repeatable), e.g. --hp lambd=0.01")
    parser.add_argument("--no-distributed", action="store_true",
                        help="skip the distributed row (it starts 2 gloo processes)")


def run(args: argparse.Namespace) -> int:
    from sslbench.execution import contract
    from sslbench.training.config import parse_hparams

    try:
        hparams = parse_hparams(args.hp)
        subjects = [contract.Subject(spec, hparams) for spec in dict.fromkeys(args.specs)]
    except ValueError as exc:  # SpecError included: one line naming the spec and the problem
        print(f"sslbench check: error: {exc}", file=sys.stderr)
        return 2
    tables = {str(s): contract.local_rows(s) for s in subjects}
    if not args.no_distributed:
        for s, row in zip(subjects, contract.distributed_rows(subjects)):
            tables[str(s)].append(row)
    for title, rows in tables.items():
        print(f"{title}\n{contract.format_table(rows)}\n")
    failed = [t for t, rows in tables.items() if any(r.status == contract.FAIL for r in rows)]
    warned = sum(r.status == contract.WARN for rows in tables.values() for r in rows)
    if failed:
        print(f"FAIL: {', '.join(failed)} (a row failed)", file=sys.stderr)
        return 1
    print(f"all {len(subjects)} pass" + (f" ({warned} warning(s))" if warned else ""))
    return 0
