"""Results at scale (issue 21): how load, ``sslbench analyze``, ``sslbench report`` and the dashboard's views grow
with the number of records, each measured in a fresh process (wall time and peak RSS), with the exponent of
``cost = c * records ** alpha`` fitted by the project's own power-law fit
(:func:`sslbench.analysis.scaling.fit_power_law`). ``alpha`` near 1 is linear; near 2, a quadratic step.

The stores are synthetic, built from the committed records (``results/**/*.jsonl``, run logs left out): each
record is a committed one with a fresh id and creation time, and, drawn at random, another seed, another
regularizer of the same kind, another dimension (half / same / double), a hyper-parameter scaled (a new variant),
another commit, another study (so groups of runs, studies and variants are realistic rather than one huge group
or all singletons). Files of 2 000 records, like nightly sweep stores.

Each measured process has a snapshot cache folder of its own (``SSLBENCH_CACHE_DIR``), and each figure says which
case it is: **cold**, an empty folder (every line of the store parsed and the snapshots written: a first read), and
**warm**, a copy of the folder the cold ``load_results`` left (a later read parses only what was appended: the
dashboard's reloads, a second command). By default ``load_results``, ``analyze`` and ``report`` are measured both
ways, the views warm.

``run_variants`` (the Accuracy table's and page's labels) is also measured alone on 500 .. 10^4 training runs.

``--before DIR`` runs every measurement a second time with ``DIR`` (a checkout, e.g. ``git archive main sslbench |
tar -x -C DIR``) first on ``PYTHONPATH``, side by side on the same stores, in one run, so the figures compare on a
shared, noisy machine.

    python benchmarks/scale.py --sizes 10000 100000 1000000 --out results/scale
    python benchmarks/scale.py --sizes 1000 3000 10000 --before /tmp/main-before --out results/scale

Prints a table per measurement and case and the fitted exponents; with ``--out`` writes ``scale.json`` (every
figure, the command and when it ran) and ``scale.md`` (the printed tables) there. No figure is asserted: the
targets (issue 21) are read off the output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RECORDS_PER_FILE = 2000
#: the measurements, each a fresh process with a snapshot cache folder of its own (``SSLBENCH_CACHE_DIR``):
#: ``cold``, an empty folder (every line parsed, the snapshots written: a first read); ``warm``, a copy of the folder
#: the cold ``load_results`` left (the store's snapshots: a later read, as the dashboard's and a second command's)
MEASUREMENTS = ("load_results", "analyze", "report", "views")
MODES = ("cold", "warm")
RUN_VARIANT_SIZES = (500, 1000, 2000, 10_000)

# ---------------------------------------------------------------------------------------------------------------
# What each fresh process runs (argv[1]: the store; prints one JSON line of inner timings)
# ---------------------------------------------------------------------------------------------------------------
LOAD = """
import sys, json, time
from sslbench.analysis import load_results
t = time.perf_counter(); df = load_results(sys.argv[1]); print(json.dumps({"rows": len(df), "s": time.perf_counter() - t}))
"""

#: the views of the dashboard's pages on the whole store (the worst case: a page filters before most of them)
VIEWS = """
import sys, json, time, warnings
warnings.simplefilter("ignore")
import pandas as pd
from sslbench import analysis as A
from sslbench.analysis import views as V
df = A.load_results(sys.argv[1])
out = {}
def timed(name, f):
    t = time.perf_counter()
    try:
        r = f()
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"[:120]
        return None
    out[name] = time.perf_counter() - t
    return r
t0 = time.perf_counter()
sc = df[df["kind"].isin(A.SCALING_KINDS)]
timed("scaling.axes+fixed", lambda: [V.default_fixed(sc, o, "dim") for o in A.OTHER_AXES["dim"]] + [V.scaling_axes(sc)])
timed("scaling.series", lambda: V.scaling_series(sc, "dim", "time_s", ["label", "device_name"]))
timed("scaling.crossing_pairs", lambda: V.crossing_pairs(sc, "dim", "time_s"))
timed("scaling.crossover_table", lambda: A.crossover_table(sc, x="dim", y="time_s"))
runs = timed("accuracy.runs", lambda: V.accuracy_runs(df))
if runs is not None and not runs.empty:
    timed("accuracy.training_order", lambda: V.training_order(runs, "study") if "study" in runs.columns else None)
    ok = timed("accuracy.finished_runs", lambda: V.finished_runs(runs, "linear_top1"))
    if ok is not None:
        x = V.accuracy_axes(runs)[0]
        timed("accuracy.series", lambda: V.accuracy_series(ok, x, "linear_top1"))
        timed("accuracy.init_floors", lambda: V.init_floors(ok, x, "linear_top1"))
    timed("accuracy.by_device", lambda: V.accuracy_by_device(runs))
tp = timed("throughput.records", lambda: V.throughput_records(df))
if tp is not None and not tp.empty:
    timed("throughput.latest", lambda: V.throughput_latest(V.throughput_ok(tp)))
    timed("throughput.ratios", lambda: V.throughput_ratios(tp))
timed("runs.statuses", lambda: V.run_statuses(df))
out["views_total"] = time.perf_counter() - t0
print(json.dumps(out))
"""

#: run_variants alone on the first n training runs of the store (argv[2]: the n's)
RUN_VARIANTS = """
import sys, json, time, warnings
warnings.simplefilter("ignore")
from sslbench import analysis as A
df = A.load_results(sys.argv[1])
train = df[df["kind"] == "train"]
out, budget, last = {}, float(sys.argv[3]), None
for n in map(int, sys.argv[2].split(",")):
    if n > len(train):
        continue
    if last and last[1] * (n / last[0]) ** 2 > budget:  # a quadratic step would not finish: leave it out
        break
    t = time.perf_counter(); A.run_variants(train.iloc[:n]); out[str(n)] = time.perf_counter() - t
    last = (n, out[str(n)])
    print(json.dumps(out), flush=True)  # after each size: a killed process still reports the sizes it did
"""


# ---------------------------------------------------------------------------------------------------------------
# The synthetic stores
# ---------------------------------------------------------------------------------------------------------------
def committed_records(results: Path) -> list[dict]:
    from sslbench.analysis.load import _is_run_log
    from sslbench.records import read_records
    pool = []
    for path in sorted(results.rglob("*.jsonl")):
        if "scale" in path.relative_to(results).parts[:1] or _is_run_log(path):
            continue
        pool.extend(r for r in read_records(path) if isinstance(r, dict) and "kind" in r)
    return pool


def _vary(text: str, i: int, rng: random.Random, regs_of_kind: dict) -> dict:
    r = json.loads(text)
    r["id"] = f"{rng.getrandbits(64):016x}"
    r["created"] = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}+00:00"
    case = r.get("case")
    if isinstance(case, dict):
        case["seed"] = rng.randrange(5)
        regs = regs_of_kind.get(r.get("kind"), [])
        if regs and rng.random() < 0.5:
            case["regularizer"] = rng.choice(regs)
        if isinstance(case.get("dim"), int) and rng.random() < 0.5:
            case["dim"] = max(1, int(case["dim"] * rng.choice((0.5, 2))))
        hp = case.get("hparams")
        if isinstance(hp, dict) and hp and rng.random() < 0.2:
            k = rng.choice(sorted(hp))
            if isinstance(hp[k], (int, float)) and not isinstance(hp[k], bool):
                hp[k] = hp[k] * rng.choice((0.5, 2))
        if "study" in case and rng.random() < 0.3:
            case["study"] = f"{case['study']}-{rng.randrange(4)}"
    env = r.get("env")
    if isinstance(env, dict) and rng.random() < 0.3:
        env["commit"] = f"{rng.randrange(20):040x}"
    return r


def make_store(pool: list[dict], n: int, dest: Path, seed: int = 0) -> int:
    """``n`` records drawn from ``pool`` and varied (:func:`_vary`), in files of :data:`RECORDS_PER_FILE`
    under ``dest/sweeps``; returns the bytes written."""
    rng = random.Random(seed)
    regs_of_kind: dict = {}
    for r in pool:
        reg = (r.get("case") or {}).get("regularizer") if isinstance(r.get("case"), dict) else None
        if isinstance(reg, str):
            regs_of_kind.setdefault(r.get("kind"), set()).add(reg)
    regs_of_kind = {k: sorted(v) for k, v in regs_of_kind.items()}
    (dest / "sweeps").mkdir(parents=True, exist_ok=True)
    size = 0
    texts = [json.dumps(r, default=str) for r in pool]  # a copy of a record is its text parsed (deepcopy was slower)
    for start in range(0, n, RECORDS_PER_FILE):
        with open(dest / "sweeps" / f"night-{start // RECORDS_PER_FILE:05d}.jsonl", "w") as f:
            for i in range(start, min(n, start + RECORDS_PER_FILE)):
                line = json.dumps(_vary(rng.choice(texts), i, rng, regs_of_kind), default=str) + "\n"
                size += len(line)
                f.write(line)
    return size


# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------
def measure(argv: list[str], code: Path, timeout: float, cache: Path | None = None,
            env: dict | None = None) -> dict:
    """Run ``argv`` in a fresh process with ``code`` first on PYTHONPATH and ``cache`` as its snapshot cache folder
    (``SSLBENCH_CACHE_DIR``; ``off`` when None; ``env`` is applied last): wall seconds, peak RSS (MiB, that child's
    own, from ``os.wait4``), exit status, and the last JSON line it printed (if any). Past ``timeout`` the process
    group this function started is killed. (benchmarks/read_path.py measures through it too.)"""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONWARNINGS": "ignore",
           "SSLBENCH_CACHE_DIR": str(cache) if cache is not None else "off", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=code, start_new_session=True)
        fired = threading.Event()

        def kill():
            fired.set()
            os.killpg(proc.pid, signal.SIGKILL)  # the session started just above, and nothing else

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    inner = None
    for line in reversed(text.splitlines()):
        try:
            inner = json.loads(line)
            break
        except ValueError:
            continue
    res = {"s": wall, "rss_mib": usage.ru_maxrss / 1024, "rc": proc.returncode, "timed_out": fired.is_set(),
           "inner": inner}
    if proc.returncode and not fired.is_set():
        res["error"] = (etext.strip().splitlines() or [""])[-1][:200]
    return res


def exponent(ns: list[int], ys: list[float]) -> str:
    """The fitted exponent of ``ys`` against ``ns`` (sslbench.analysis.scaling.fit_power_law), with R²."""
    from sslbench.analysis.scaling import fit_power_law
    pts = [(n, y) for n, y in zip(ns, ys) if y is not None]
    if len({n for n, _ in pts}) < 3:
        pts_fit = fit_power_law([n for n, _ in pts], [y for _, y in pts], min_points=2)
    else:
        pts_fit = fit_power_law([n for n, _ in pts], [y for _, y in pts])
    if pts_fit.exponent != pts_fit.exponent:  # NaN
        return "n/a"
    return f"{pts_fit.exponent:.2f} (R2 {pts_fit.r2:.2f}, {pts_fit.n} pts)"


def _fmt(res: dict | None, key: str = "s") -> str:
    if res is None:
        return "-"
    if res.get("timed_out"):
        return f"> {res['s']:.0f} s (killed)"
    if res.get("rc"):
        return f"failed: {res.get('error', '')}"[:60]
    return f"{res[key]:.2f} s, {res['rss_mib']:.0f} MiB"


def _store(pool: list[dict], n: int, work: Path, keep: str | None) -> tuple[Path, int, bool]:
    """(the store of ``n`` records, its bytes, whether it was made now). With ``keep``, stores live in that folder
    and one made by an earlier run is used again when its manifest says it was made from the same committed
    records, seed and file size (make_store is deterministic: the same bytes); else it is made there."""
    if not keep:
        store = work / f"n{n}"
        return store, make_store(pool, n, store, seed=n), True
    digest = hashlib.sha256(json.dumps(pool, sort_keys=True, default=str).encode()).hexdigest()[:16]
    want = {"records": n, "seed": n, "pool": digest, "records_per_file": RECORDS_PER_FILE}
    store = Path(keep) / f"n{n}"
    manifest = Path(keep) / f"n{n}.json"
    try:
        have = json.loads(manifest.read_text())
        if {k: have.get(k) for k in want} == want:
            return store, int(have["bytes"]), False
    except (OSError, ValueError, KeyError, TypeError):
        pass
    shutil.rmtree(store, ignore_errors=True)
    size = make_store(pool, n, store, seed=n)
    manifest.write_text(json.dumps({**want, "bytes": size}))
    return store, size, True


def _measure_store(store: Path, n: int, codes: dict, args: argparse.Namespace, work: Path, entry: dict) -> None:
    """Every measurement of one store, for each code version: ``load_results`` cold first (its cache folder is then
    the store's snapshots), the other cold ones each with an empty folder, the warm ones each with a copy of it."""
    py = sys.executable
    for which, code in codes.items():
        cmds = {"load_results": [py, "-c", LOAD, str(store)],
                "analyze": [py, "-m", "sslbench", "analyze", "--results", str(store)],
                "report": [py, "-m", "sslbench", "report", "--results", str(store)],
                "views": [py, "-c", VIEWS, str(store)]}
        primed = work / "cache" / f"{which}-{n}-load_results-cold"
        plan = [("load_results", "cold")] if "load_results" in args.cold else []
        plan += [(name, "cold") for name in MEASUREMENTS if name in args.cold and name != "load_results"]
        plan += [(name, "warm") for name in MEASUREMENTS if name in args.warm]
        for name, mode in plan:
            if name in args.skip:
                continue
            cache = work / "cache" / f"{which}-{n}-{name}-{mode}"
            if mode == "warm":
                prime = entry.get(f"load_results:cold:{which}")
                if not primed.is_dir() or not prime or prime["rc"] or prime["timed_out"]:
                    res = {"s": math.nan, "rss_mib": math.nan, "rc": 1, "timed_out": False, "inner": None,
                           "error": "no snapshots: the cold load_results did not finish"}
                    entry[f"{name}:{mode}:{which}"] = res
                    print(f"{which:>6} {mode} {name:<12} {_fmt(res)}", flush=True)
                    continue
                shutil.copytree(primed, cache, symlinks=True)  # the snapshots of a first read, a copy of its own
            res = measure(cmds[name], code, args.timeout, cache)
            entry[f"{name}:{mode}:{which}"] = res
            print(f"{which:>6} {mode} {name:<12} {_fmt(res)}", flush=True)
            if cache != primed:
                shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(primed, ignore_errors=True)


def _tables(report: dict, codes: dict, args: argparse.Namespace) -> list[str]:
    ns = [int(n) for n in report["sizes"]]
    lines = []
    for which in codes:
        for mode in MODES:
            names = [k for k in MEASUREMENTS if k not in args.skip and k in (args.cold if mode == "cold" else args.warm)]
            if not names:
                continue
            what = ("cold: an empty snapshot cache, every line parsed (a first read)" if mode == "cold" else
                    "warm: the snapshots a first read left (a later read: the dashboard's, a second command's)")
            lines += [f"## {which}, {what}" if len(codes) > 1 else f"## {what}", "",
                      "| records | MiB | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
            for n in ns:
                e = report["sizes"][str(n)]
                lines.append(f"| {n} | {e['bytes'] / 2**20:.0f} | "
                             + " | ".join(_fmt(e.get(f"{k}:{mode}:{which}")) for k in names) + " |")
            lines += ["", "| fitted exponent (cost = c * records^alpha) | time | peak RSS |", "|---|---|---|"]
            for k in names:
                rs = [report["sizes"][str(n)].get(f"{k}:{mode}:{which}") for n in ns]
                ok = [(n, r) for n, r in zip(ns, rs) if r and not r["rc"] and not r["timed_out"]]
                lines.append(f"| {k} ({mode}) | {exponent([n for n, _ in ok], [r['s'] for _, r in ok])} | "
                             f"{exponent([n for n, _ in ok], [r['rss_mib'] for _, r in ok])} |")
            lines.append("")
        for mode in MODES:
            views = [(n, report["sizes"][str(n)].get(f"views:{mode}:{which}")) for n in ns]
            views = [(n, r["inner"]) for n, r in views if r and isinstance(r.get("inner"), dict)]
            if not views:
                continue
            keys = list(views[-1][1])
            lines += [f"The dashboard pages' views ({mode}), each timed alone in that process:", "",
                      "| view (on the whole store) | " + " | ".join(str(n) for n, _ in views) + " | exponent |",
                      "|---|" + "---|" * (len(views) + 1)]
            for k in keys:
                vals = [v.get(k) for _, v in views]
                num = [(n, x) for (n, _), x in zip(views, vals) if isinstance(x, float)]
                cells = [f"{x:.3f} s" if isinstance(x, float) else str(x)[:40] for x in vals]
                lines.append(f"| {k} | " + " | ".join(cells) + " | "
                             + exponent([n for n, _ in num], [max(x, 1e-4) for _, x in num]) + " |")
            lines.append("")
        rv = report["run_variants"].get(which, {}).get("inner") or {}
        if rv:
            lines += ["`run_variants` alone on the training runs of one store:", "",
                      "| run_variants, training runs | " + " | ".join(rv) + " | exponent |",
                      "|---|" + "---|" * (len(rv) + 1),
                      "| seconds | " + " | ".join(f"{v:.3f}" for v in rv.values()) + " | "
                      + exponent([int(k) for k in rv], list(rv.values())) + " |", ""]
    return lines


def run(args: argparse.Namespace) -> dict:
    py = sys.executable
    pool = committed_records(ROOT / "results")
    codes = {"after": ROOT}
    if args.before:
        codes = {"before": Path(args.before).resolve(), "after": ROOT}
    work = Path(tempfile.mkdtemp(prefix="sslbench-scale-"))
    report: dict = {"pool_records": len(pool), "sizes": {}, "run_variants": {}, "machine": os.uname().nodename,
                    "cpus": os.cpu_count(), "command": "python benchmarks/scale.py " + " ".join(args.argv),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    lines = [f"# Results at scale: {len(pool)} committed records varied into stores of {args.sizes} records",
             f"`{report['command']}`, started {report['started']} on {os.cpu_count()} CPUs (shared). Each cell: the "
             "wall time and peak RSS of a fresh process with a snapshot cache folder of its own.", ""]
    try:
        for n in args.sizes:
            t = time.perf_counter()
            store, size, made = _store(pool, n, work, args.keep_stores)
            entry = report["sizes"][str(n)] = {"bytes": size, "store": "made" if made else "kept from an earlier run"}
            print(f"--- {n} records, {size / 2**20:.1f} MiB ({entry['store']}, {time.perf_counter() - t:.0f} s)",
                  flush=True)
            if not args.stores_only:
                _measure_store(store, n, codes, args, work, entry)
            if not args.keep_stores:
                shutil.rmtree(store)
        if not args.no_run_variants and not args.stores_only:
            # run_variants alone, on the training runs of one store big enough to hold the largest n
            store = work / "rv"
            need = max(RUN_VARIANT_SIZES)
            make_store([r for r in pool if r.get("kind") == "train"] or pool, need, store, seed=1)
            for which, code in codes.items():
                res = measure([py, "-c", RUN_VARIANTS, str(store), ",".join(map(str, RUN_VARIANT_SIZES)),
                               str(args.timeout / 3)], code, args.timeout, work / "cache" / f"rv-{which}")
                report["run_variants"][which] = res
                print(f"{which:>6} run_variants {res.get('inner')}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.stores_only:
        return report
    text = "\n".join(lines + _tables(report, codes, args))
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scale.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        (out / "scale.md").write_text(text + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10_000, 30_000, 100_000],
                   help="store sizes in records (default 1000 3000 10000 30000 100000)")
    p.add_argument("--before", metavar="DIR", help="also measure the code in DIR (a checkout), side by side")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds one measurement may take (default 900)")
    p.add_argument("--skip", nargs="*", default=[], choices=MEASUREMENTS, help="measurements to leave out")
    p.add_argument("--cold", nargs="*", default=["load_results", "analyze", "report"], choices=MEASUREMENTS,
                   help="measurements made cold, with an empty snapshot cache (default: load_results analyze report; "
                        "load_results cold is the warm ones' first read)")
    p.add_argument("--warm", nargs="*", default=list(MEASUREMENTS), choices=MEASUREMENTS,
                   help="measurements made warm, with the snapshots of a first read (default: all)")
    p.add_argument("--no-run-variants", action="store_true", help="leave out run_variants alone")
    p.add_argument("--keep-stores", metavar="DIR", help="make the stores in DIR and keep them; a later run with the "
                   "same DIR uses a store again when it was made from the same records and seed")
    p.add_argument("--stores-only", action="store_true", help="make the stores (with --keep-stores) and measure nothing")
    p.add_argument("--out", metavar="DIR", help="write scale.json and scale.md there (e.g. results/scale)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.warm and "load_results" not in args.cold:
        print("scale.py: --warm needs load_results in --cold (the warm measurements read its snapshots)",
              file=sys.stderr)
        return 2
    if any(n < 1 for n in args.sizes):
        print(f"scale.py: --sizes must be positive record counts, got {args.sizes}", file=sys.stderr)
        return 2
    if args.before and not (Path(args.before) / "sslbench" / "__init__.py").is_file():
        print(f"scale.py: --before {args.before} holds no sslbench package; give a checkout's root", file=sys.stderr)
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
