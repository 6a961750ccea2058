"""`sslbench <command>`: a thin dispatcher. Each command lives in its own module, which exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file holds no logic of its own."""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sslbench.demo", "the main job on the embedded default data (what `make demo` runs)"),
    "train": ("sslbench.training.train", "pretrain a backbone with one regularizer and evaluate it (linear probe, kNN)"),
    "bench": ("sslbench.execution.bench", "micro-benchmark regularizers' forward+backward time and memory"),
    "sweep": ("sslbench.execution.sweep", "a resumable grid of bench or train cases appended to a JSON-lines store"),
    "report": ("sslbench.analysis.report", "tables and verdicts from the results store"),
    "analyze": ("sslbench.analysis.analyze", "scaling exponents, crossovers, accuracy and regression tables of the results"),
    "dashboard": ("sslbench.dashboard", "launch the Streamlit dashboard on localhost"),
}


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    from sslbench import __version__

    parser = argparse.ArgumentParser(prog="sslbench", description="sslbench: benchmark and profile decorrelating SSL regularizers "
                                     "(time, memory, downstream accuracy).")
    parser.add_argument("--version", action="version", version=f"sslbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = _load(module)
        if mod is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
