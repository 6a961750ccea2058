"""The read path at scale (issue 21): the engines compared, ``load_results`` cold and warm, ``sweep --status``.

    python benchmarks/read_path.py --records 100000 1000000 [--before DIR] [--work DIR] [--parts engines load status]

Builds, for each size, a store with :func:`benchmarks.scale.make_store` (the committed records varied, about
2.7 KB a record, in files of 2 000 records under ``sweeps/``, seed 0), then runs each measurement in a fresh
process of its own (wall seconds from the parent, peak RSS of that child from ``os.wait4``, imports included):

- ``engines``: each NDJSON engine installed (pyarrow, DuckDB, polars; one not installed is skipped) reads the
  folder, cold, into a pandas frame of (a) the columns the analysis needs (``load.ANALYSIS_COLUMNS``: the
  flattened ``case.*``, ``metrics.*`` and a few ``env.*``; the engine's own parse, no checks) and (b) the two
  columns ``sweep --status`` needs (``id``, ``status``), each engine with its own projection where it has one;
  beside them ``sslbench.records.columnar.read_frame`` (pyarrow plus the checks that keep today's frame and
  warnings) on the same two tasks;
- ``load``: ``load_results`` of this checkout with no snapshot (``SSLBENCH_CACHE_DIR=off``), whole and with the
  analysis's projection (``columns=ANALYSIS_COLUMNS``); the snapshot cache: the first read (which writes the
  snapshots), a second read (warm) whole, projected, and narrow (``case.`` and four columns, the width of
  ``analyze``'s own projection), and a read after 1 000 records were appended;
  with ``--before``, that checkout's ``load_results`` (no snapshot) too;
- ``status``: ``sslbench sweep --status`` on the store as one file (sizes up to ``--status-max``), twice in a
  row (the second finds the file in the page cache), this checkout and ``--before``'s, side by side.

Every measured process gets a snapshot folder of its own under the work folder: "cold" means none, "warm" one
written by an earlier process. Nothing here is a test: the machine is shared and noisy; compare within a run.
The figures and the choice of engine are in docs/results-at-scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.scale import committed_records, make_store, measure  # noqa: E402  (one store generator, one measure)

# ---------------------------------------------------------------------------------------------------------------
# What each fresh process runs: argv after the code; prints one JSON line
# ---------------------------------------------------------------------------------------------------------------
ENGINE = r"""
import glob, json, sys, time, warnings
warnings.simplefilter("ignore")
engine, task, folder = sys.argv[1:4]
files = sorted(glob.glob(folder + "/sweeps/*.jsonl"))
t = time.perf_counter()
import pandas as pd
import pyarrow as pa
from sslbench.analysis.load import ANALYSIS_COLUMNS
from sslbench.records import columnar

keep = columnar.wanted(ANALYSIS_COLUMNS)
TOP = ["schema", "kind", "id", "created", "status", "message", "case", "metrics", "env"]

def frame(table):  # the sections' fields as "section.key" columns, the wanted ones, as pandas
    table = table.flatten()
    return table.select([n for n in table.column_names if keep(n)]).to_pandas()

if engine == "columnar":  # sslbench's reader: pyarrow plus the checks that keep today's frame and warnings
    cols = ANALYSIS_COLUMNS if task == "analysis" else []
    df = pd.concat([columnar.read_frame(f, columns=cols) for f in files], ignore_index=True)
    if task == "status":
        df = df[["id", "status"]]
elif engine == "pyarrow":
    import pyarrow.json as pj
    if task == "status":  # its projection: an explicit schema, the other fields ignored while parsing
        opts = pj.ParseOptions(explicit_schema=pa.schema([("id", pa.string()), ("status", pa.string())]),
                               unexpected_field_behavior="ignore")
        df = pa.concat_tables([pj.read_json(f, parse_options=opts) for f in files]).to_pandas()
    else:
        df = pd.concat([frame(pj.read_json(f)) for f in files], ignore_index=True)
elif engine == "duckdb":
    import duckdb
    con = duckdb.connect()
    what = "id, status" if task == "status" else ", ".join(f'"{c}"' for c in TOP)
    rel = con.execute(f"SELECT {what} FROM read_ndjson(?, union_by_name = true)", [files])
    df = rel.df() if task == "status" else frame(rel.to_arrow_table())
elif engine == "polars":
    import polars as pl
    lazy = pl.scan_ndjson(files, infer_schema_length=None)
    if task == "status":
        df = lazy.select(["id", "status"]).collect().to_pandas()
    else:
        names = lazy.collect_schema().names()
        df = frame(lazy.select([c for c in TOP if c in names]).collect().to_arrow())
print(json.dumps({"s": time.perf_counter() - t, "rows": len(df), "cols": df.shape[1]}))
"""

LOAD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t = time.perf_counter()
from sslbench.analysis import load
NARROW = ("case.", "env.device_name", "metrics.time_median_s", "metrics.knn_top1", "metrics.linear_top1")
kw = {"projected": {"columns": load.ANALYSIS_COLUMNS}, "narrow": {"columns": NARROW}}.get(sys.argv[2], {})
df = load.load_results(sys.argv[1], asv=[], **kw)
print(json.dumps({"s": time.perf_counter() - t, "rows": len(df), "cols": df.shape[1]}))
"""

BEFORE_LOAD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t = time.perf_counter()
from sslbench.analysis.load import load_results
df = load_results(sys.argv[1], asv=[])
print(json.dumps({"s": time.perf_counter() - t, "rows": len(df), "cols": df.shape[1]}))
"""

STATUS = r"""
import contextlib, io, json, sys, time
t = time.perf_counter()
from sslbench.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main(["sweep", "--kind", "bench", "--regularizers", "barlow_twins", "vicreg", "--dims", "64", "128",
               "--batches", "64", "--out", sys.argv[1], "--status"])
line = out.getvalue().splitlines()[0] if out.getvalue() else ""
print(json.dumps({"s": time.perf_counter() - t, "rc": rc, "first_line": line[:60]}))
"""


def run(code: str, checkout: Path, args: list[str], env: dict, timeout: float) -> dict:
    """``code`` in a fresh process with ``checkout`` on PYTHONPATH (:func:`benchmarks.scale.measure`): wall seconds,
    peak RSS (MiB), exit status and the JSON line it printed (``inner``, None without one); ``env`` names the
    snapshot cache (``SSLBENCH_CACHE_DIR``)."""
    return measure([sys.executable, "-c", code, *args], checkout, timeout, env=env)


def fmt(res: dict) -> str:
    if res.get("timed_out"):
        return f"> {res['s']:.0f} s (killed), {res['rss_mib']:.0f} MiB"
    if res.get("error") or res.get("inner") is None:
        return f"failed: {res.get('error', 'no output')}"
    inner = res["inner"]
    shape = f"{inner['rows']} x {inner['cols']}" if "rows" in inner else inner.get("first_line", "")
    return f"{res['s']:.2f} s, {res['rss_mib']:.0f} MiB  ({shape})"


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def engines(folder: Path, n: int, timeout: float, report, tasks=("analysis", "status")) -> None:
    for task in tasks:
        for engine in ("columnar", "pyarrow", "duckdb", "polars"):
            name = f"{engine} ({task})"
            if not installed("pyarrow" if engine == "columnar" else engine):
                report(n, "engines", name, None, "not installed")
                continue
            report(n, "engines", name, run(ENGINE, ROOT, [engine, task, str(folder)], {"SSLBENCH_CACHE_DIR": "off"},
                                           timeout))


LOAD_STEPS = ("before", "cold-whole", "cold-projected", "first", "warm-projected", "warm-narrow", "warm-whole",
              "before-warm", "appended")


def loads(folder: Path, n: int, args, report) -> None:
    cache = folder.parent / f"snapshots-{n}"
    if "first" in args.load_steps:  # the snapshots are written by this run's first read
        shutil.rmtree(cache, ignore_errors=True)
    off, on = {"SSLBENCH_CACHE_DIR": "off"}, {"SSLBENCH_CACHE_DIR": str(cache)}
    store = str(folder)
    if args.before and "before" in args.load_steps:
        report(n, "load", "before: load_results, whole", run(BEFORE_LOAD, args.before, [store], off, args.timeout))
    steps = ([("cold-whole", "cold, whole", "whole", off)] if n <= args.whole_max else []) + (
        [("cold-projected", "cold, projected", "projected", off)] if n <= args.cold_projected_max else []) + [
        ("first", "snapshot: first read (writes it), projected", "projected", on),
        ("warm-projected", "snapshot: warm, projected", "projected", on),
        ("warm-narrow", "snapshot: warm, narrow (case. + 4 columns)", "narrow", on)] + (
        [("warm-whole", "snapshot: warm, whole", "whole", on)] if n <= args.warm_whole_max else [])
    for step, name, mode, env in steps:
        if step in args.load_steps:
            report(n, "load", f"load_results {name}", run(LOAD, ROOT, [store, mode], env, args.timeout))
    if args.before and "before-warm" in args.load_steps:  # the same snapshots read by the other checkout
        report(n, "load", "before: load_results, whole, warm", run(BEFORE_LOAD, args.before, [store], on,
                                                                   args.timeout))
    if "appended" not in args.load_steps:
        return
    last = sorted((folder / "sweeps").glob("*.jsonl"))[-1]
    first = sorted((folder / "sweeps").glob("*.jsonl"))[0]
    with open(first, "rb") as f:
        extra = b"".join(f.readline() for _ in range(1000))
    with open(last, "ab") as f:
        f.write(extra)
    report(n, "load", "load_results after 1000 appended, projected", run(LOAD, ROOT, [store, "projected"], on,
                                                                          args.timeout))


def statuses(folder: Path, n: int, args, report) -> None:
    one = folder.parent / f"status-{n}.jsonl"
    if not one.exists():
        with open(one, "wb") as out:
            for path in sorted((folder / "sweeps").glob("*.jsonl")):
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out)
    env = {"SSLBENCH_CACHE_DIR": str(folder.parent / f"status-cache-{n}")}
    for who, checkout in ([("before", args.before)] if args.before else []) + [("now", ROOT)]:
        for attempt in ("first", "second"):
            report(n, "status", f"sweep --status {who}, {attempt}", run(STATUS, checkout, [str(one)], env,
                                                                        args.timeout))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--parts", nargs="+", choices=("engines", "load", "status"), default=["engines", "load", "status"])
    p.add_argument("--before", type=Path, help="another checkout (today's main) to time beside this one")
    p.add_argument("--work", type=Path, help="where the stores go (default: a temporary folder, removed after)")
    p.add_argument("--whole-max", type=int, default=100_000,
                   help="read the whole frame (every column) cold only up to this many records")
    p.add_argument("--warm-whole-max", type=int, default=1_000_000,
                   help="read the whole frame from the snapshots only up to this many records")
    p.add_argument("--cold-projected-max", type=int, default=1_000_000,
                   help="read the projection with no snapshot only up to this many records (the first read "
                        "through the snapshots is cold too)")
    p.add_argument("--status-max", type=int, default=100_000, help="time sweep --status only up to this size")
    p.add_argument("--engine-tasks", nargs="+", choices=("analysis", "status"), default=["analysis", "status"])
    p.add_argument("--load-steps", nargs="+", choices=LOAD_STEPS, default=list(LOAD_STEPS),
                   help="which load_results measurements (a later run may reuse the snapshots of an earlier one)")
    p.add_argument("--timeout", type=float, default=600, help="seconds before a measured process is killed")
    p.add_argument("--json", type=Path, help="also write every figure here")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="sslbench-read-path-"))
    rows: list[dict] = []

    def report(n, part, name, res, note=None):
        rows.append({"records": n, "part": part, "what": name, **(res or {}), **({"note": note} if note else {})})
        print(f"{n:>8}  {part:<8} {name:<52} {note or fmt(res)}", flush=True)

    pool = committed_records(ROOT / "results")
    print(f"# {len(pool)} committed records, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    try:
        for n in args.records:
            folder = work / f"n{n}"
            if not (folder / "sweeps").is_dir():
                size = make_store(pool, n, folder, seed=0)
                print(f"# {n} records, {size / 2**20:.0f} MiB, {size / n:.0f} bytes a record", flush=True)
            if "engines" in args.parts:
                engines(folder, n, args.timeout, report, args.engine_tasks)
            if "status" in args.parts and n <= args.status_max:
                statuses(folder, n, args, report)
            if "load" in args.parts:  # last: it appends 1 000 records to the store
                loads(folder, n, args, report)
            print(f"# load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
