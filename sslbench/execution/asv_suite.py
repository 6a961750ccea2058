"""asv in your own repository: an importable benchmark class factory and ``sslbench asv-init``, which writes an
``asv.conf.json`` and a ``benchmarks/`` file that measures your regularizer (beside a built-in) on every commit.

The benchmark file it writes is two lines of substance::

    from sslbench.execution import asv_suite
    globals().update(asv_suite.make_benchmarks(["mypkg.losses:MyLoss", "barlow_twins"], dims=[256, 1024]))

:func:`make_benchmarks` returns asv benchmark classes (``time_forward_backward`` and ``peakmem_forward_backward``
over spec × D × N × V): each case is sslbench's own step (:func:`sslbench.execution.bench.make_step`: forward +
backward on random views, set-up untimed), so the figures are those ``sslbench bench`` prints. A spec is anything
``regularizers.create`` accepts: a built-in, an entry-point name, ``package.module:Class``.

Comparing two commits of your repository with the environment you work in (your package installed editable,
``pip install -e .``)::

    git checkout A && asv run --python=same --set-commit-hash $(git rev-parse HEAD)
    git checkout B && asv run --python=same --set-commit-hash $(git rev-parse HEAD)
    asv compare A B --factor 1.3          # "+" marks what got slower (or more memory-hungry) than 1.3x

or, where asv can build your package and install sslbench and torch into its own virtualenv (the ``matrix`` of
the written ``asv.conf.json``), ``asv continuous --factor 1.3 A B``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable

#: the file ``sslbench asv-init`` writes into the benchmark folder
BENCHMARK_FILE = "bench_sslbench.py"


def _build(spec: str, dim: int, batch: int, views: int, device: str, hparams: dict | None):
    """The step of one case (set-up untimed); a case that cannot be built is skipped (``NotImplementedError``)."""
    import torch

    from sslbench.execution.bench import make_step, resolve_device

    device = resolve_device(device)
    try:
        step = make_step(spec, dim, batch, views, device=device, hparams=hparams)
    except (ValueError, TypeError, ImportError) as exc:
        raise NotImplementedError(f"{spec} D={dim} N={batch} V={views}: {exc}") from None
    if device.startswith("cuda"):
        inner = step

        def step():  # noqa: F811 - the CUDA step waits for its kernels, so the time is the work's
            out = inner()
            torch.cuda.synchronize()
            return out
    return step


def make_benchmarks(specs: Iterable[str], *, dims: Iterable[int] = (256,), batches: Iterable[int] = (256,),
                    views: Iterable[int] = (2,), device: str = "auto", hparams: dict | None = None,
                    name: str = "Regularizers", sample_time: float = 0.02, repeat=(2, 10, 5.0), rounds: int = 2,
                    warmup_time: float = 0.05, timeout: float = 180.0) -> dict[str, type]:
    """``{name: class}``: an asv benchmark class over ``specs`` × ``dims`` × ``batches`` × ``views`` with
    ``time_forward_backward`` and ``peakmem_forward_backward`` (one forward + backward of sslbench's step).

    ``hparams`` maps a spec to its hyper-parameters. Put the result in a module of your benchmark folder with
    ``globals().update(...)``: asv finds benchmark classes among a module's names. Keep the grid small: asv
    times every combination on every commit it measures.
    """
    specs, hp = [str(s) for s in specs], dict(hparams or {})
    if not specs:
        raise ValueError("make_benchmarks needs at least one regularizer spec")

    class Suite:
        params = [specs, [int(d) for d in dims], [int(n) for n in batches], [int(v) for v in views]]
        param_names = ["regularizer", "dim", "batch", "views"]

        def setup(self, spec, dim, batch, views):
            self.step = _build(spec, dim, batch, views, device, hp.get(spec))
            self.step()  # a case that fails does so here, not inside the timing

        def time_forward_backward(self, spec, dim, batch, views):
            self.step()

        def peakmem_forward_backward(self, spec, dim, batch, views):
            self.step()

    Suite.sample_time, Suite.repeat, Suite.rounds = sample_time, repeat, rounds
    Suite.warmup_time, Suite.timeout = warmup_time, timeout
    Suite.__name__ = Suite.__qualname__ = name
    return {name: Suite}


# --------------------------------------------------------------------------------------------------------------
# sslbench asv-init
# --------------------------------------------------------------------------------------------------------------
def config_text(project: str, benchmark_dir: str) -> str:
    """The ``asv.conf.json`` of a user's repository (JSON; asv also reads comments, none are needed)."""
    conf = {
        "version": 1, "project": project, "repo": ".", "branches": ["HEAD"], "dvcs": "git",
        "environment_type": "virtualenv",
        # asv's own environment: your package is built from each commit; sslbench and torch come from pip
        "matrix": {"req": {"torch": [""], "sslbench": [""]}},
        "build_command": ["python -m pip wheel --no-deps -w {build_cache_dir} {build_dir}"],
        "benchmark_dir": benchmark_dir, "env_dir": ".asv/env", "results_dir": ".asv/results",
        "html_dir": ".asv/html", "default_benchmark_timeout": 180,
    }
    return json.dumps(conf, indent=4) + "\n"


def benchmark_text(specs: list[str], dims: list[int], batches: list[int], views: list[int]) -> str:
    return (
        '"""asv benchmarks of this repository\'s regularizers beside sslbench\'s (written by `sslbench asv-init`;\n'
        "edit the lists freely). `asv compare A B --factor 1.3` flags a commit that made a loss slower or hungrier.\n"
        '"""\n\n'
        "from sslbench.execution import asv_suite\n\n"
        f"SPECS = {specs!r}\n\n"
        f"globals().update(asv_suite.make_benchmarks(SPECS, dims={dims!r}, batches={batches!r}, views={views!r}))\n"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("write asv.conf.json and a benchmarks/ file into your repository, so that asv measures "
                          "your regularizer (beside a built-in) on each of its commits")
    parser.add_argument("--regularizer", action="append", required=True, metavar="SPEC", dest="regularizers",
                        help="your regularizer: an entry-point name or package.module:Class (repeatable)")
    parser.add_argument("--baseline", nargs="*", default=["barlow_twins"], metavar="SPEC",
                        help="regularizers measured beside yours (default: barlow_twins; none: --baseline)")
    parser.add_argument("--dims", nargs="+", type=int, default=[256], metavar="D")
    parser.add_argument("--batches", nargs="+", type=int, default=[256], metavar="N")
    parser.add_argument("--views", nargs="+", type=int, default=[2], metavar="V")
    parser.add_argument("--repo", default=".", help="the repository's root (default: the working directory)")
    parser.add_argument("--benchmark-dir", default="benchmarks", help="asv's benchmark folder (default: benchmarks)")
    parser.add_argument("--force", action="store_true", help="overwrite the files if they exist")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="do not import the regularizers now (by default each spec must load)")


def _bad(message: str) -> int:
    import sys

    print(f"sslbench asv-init: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    specs = list(dict.fromkeys([*args.regularizers, *args.baseline]))
    for what, values, low in (("--dims", args.dims, 2), ("--batches", args.batches, 2), ("--views", args.views, 2)):
        if any(v < low for v in values):
            return _bad(f"{what} {' '.join(map(str, values))}: each must be >= {low}")
    if args.check:
        from sslbench import regularizers

        for spec in specs:
            try:
                regularizers.check_spec(spec)
            except (ValueError, ImportError) as exc:
                return _bad(f"{spec}: {exc} (or --no-check to write the files anyway)")
    repo = Path(args.repo)
    if not repo.is_dir():
        return _bad(f"--repo {args.repo}: not a folder")
    bdir = repo / args.benchmark_dir
    conf, bench = repo / "asv.conf.json", bdir / BENCHMARK_FILE
    for path in (conf, bench):
        if path.is_symlink() or (path.exists() and not args.force):
            return _bad(f"{path} exists{' (a link: not followed)' if path.is_symlink() else ''}; "
                        f"use --force to overwrite it")
    if bdir.is_symlink() or (bdir.exists() and not bdir.is_dir()):
        return _bad(f"{bdir}: not a plain folder")
    bdir.mkdir(parents=True, exist_ok=True)
    init = bdir / "__init__.py"
    if not init.exists() and not init.is_symlink():
        init.write_text("")
    conf.write_text(config_text(repo.resolve().name, args.benchmark_dir))
    bench.write_text(benchmark_text(specs, args.dims, args.batches, args.views))
    print(f"wrote {conf} and {bench} ({', '.join(specs)}; D {args.dims}, N {args.batches}, V {args.views})")
    print("next: git add them, then per commit `asv run --python=same --set-commit-hash $(git rev-parse HEAD)` "
          "and `asv compare A B --factor 1.3` (docs/plugins.md)")
    return 0
