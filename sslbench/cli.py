"""`sslbench <command>`: a thin, lazy dispatcher. The command name picks one module, and only that module is
imported (``sslbench --help`` imports none): a base install (torch, no extras) runs ``train``, ``bench`` and
``sweep``; ``analyze``, ``report`` and ``dashboard`` need only the ``dashboard`` extra (pandas, plotly,
streamlit), never torch. Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, the extra that provides what it needs, one-line help)
COMMANDS: dict[str, tuple[str, str | None, str]] = {
    "demo": ("sslbench.demo", None, "the main job on the embedded default data (what `make demo` runs)"),
    "train": ("sslbench.training.train", None,
              "pretrain a backbone with one regularizer and evaluate it (linear probe, kNN)"),
    "bench": ("sslbench.execution.bench_command", None, "micro-benchmark regularizers' forward+backward time and memory"),
    "sweep": ("sslbench.execution.sweep", None,
              "a resumable grid of bench or train cases appended to a JSON-lines store"),
    "check": ("sslbench.execution.check", None,
              "the regularizer contract (dtypes, gradcheck, state, bad input, 2-rank DDP gradients) on SPEC..."),
    "report": ("sslbench.analysis.report", "dashboard", "tables and verdicts from the results store"),
    "analyze": ("sslbench.analysis.analyze", "dashboard",
                "scaling exponents, crossovers, accuracy and regression tables of the results"),
    "dashboard": ("sslbench.dashboard", "dashboard", "launch the Streamlit dashboard on localhost"),
    "regularizers": ("sslbench.execution.listing", None,
                     "list the built-in regularizers and the plugins found (entry points), with where each came from"),
    "asv-init": ("sslbench.execution.asv_suite", None,
                 "write asv.conf.json and a benchmark file into your repository to catch regressions of your loss"),
}
#: the third-party packages each extra (or the base install) provides, to name the missing one
_PROVIDED_BY = {"torch": None, "numpy": None, "psutil": None, "tqdm": None,
                "pandas": "dashboard", "plotly": "dashboard", "streamlit": "dashboard"}
DESCRIPTION = ("sslbench: benchmark and profile decorrelating SSL regularizers (time, memory, downstream "
               "accuracy).")


def _top_parser() -> argparse.ArgumentParser:
    from sslbench import __version__

    width = max(map(len, COMMANDS))
    epilog = "commands:\n" + "\n".join(f"  {name:<{width}}  {help_text}" for name, (_, _, help_text)
                                       in COMMANDS.items())
    epilog += "\n\n`sslbench COMMAND --help` lists a command's options."
    parser = argparse.ArgumentParser(prog="sslbench", description=DESCRIPTION, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sslbench {__version__}")
    parser.add_argument("command", nargs="?", choices=list(COMMANDS), metavar="COMMAND")
    return parser


def _missing_package_message(command: str, exc: ModuleNotFoundError) -> str:
    top = (exc.name or "").split(".")[0]
    extra = _PROVIDED_BY.get(top, COMMANDS[command][1])
    if top == "torch":
        fix = "install torch (pip install torch, or the CUDA build for your machine)"
    elif extra:
        fix = f"install the '{extra}' extra: pip install 'sslbench[{extra}]'"
    else:
        fix = f"pip install {top}"
    return f"sslbench {command}: error: this command needs the package '{top}', which is not installed; {fix}"


def load_command(command: str):
    """The module of ``command``: imported on demand, only it."""
    return importlib.import_module(COMMANDS[command][0])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        parser.parse_args(argv[:1])  # --help / --version / an unknown command exit here
        parser.print_help()
        return 2
    command, rest = argv[0], argv[1:]
    try:
        module = load_command(command)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("sslbench"):
            print(_missing_package_message(command, exc), file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"sslbench {command}", description=COMMANDS[command][2])
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
