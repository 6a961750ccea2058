"""The dashboard at scale (issue 21, item 4): each page of ``dashboard/app.py`` drawn on a synthetic store of 10^5
records, in ONE process, as a Streamlit server holds it.

The store is built by :func:`benchmarks.scale.make_store` from the committed records (files of 2 000 records).
Then one fresh child process (its own snapshot cache folder, empty at the start: the first draw is cold) drives
every page with ``streamlit.testing.v1.AppTest``, which runs the app's script in this process exactly as a server
runs it for a session: ``st.cache_resource`` / ``st.cache_data`` are process-wide, so they persist from one draw and
one session to the next, as in a server. For each page, in turn:

1. **first**: a new session's first draw of the page (the first page's includes the cold read of the store);
2. **redraw**: the same session drawn again, nothing changed;
3. **append**: 1 000 records appended to one store file (``night-00000.jsonl``), then the session drawn again;
4. **reload 1..10**: ten new sessions in a row (a browser's reload), nothing changed.

After each draw it prints the wall time of the draw and the process's resident memory (RSS, ``/proc/self/status``;
the peak too). Targets (issue 21, read off the output, never asserted): a page redraws in <= 3 s after 1 000
records are appended to a 10^5 store, and the server stays under 1 GiB after ten reloads.

    python benchmarks/dashboard_scale.py --records 100000 --out results/scale
    python benchmarks/dashboard_scale.py --records 100000 --before /tmp/main-checkout   # side by side
    python benchmarks/dashboard_scale.py --records 2000 --pages Scaling --reloads 2    # a quick look

``--before DIR`` runs the same draws a second time with the checkout ``DIR`` (its ``dashboard/app.py`` and its
``sslbench`` first on ``PYTHONPATH``) on a fresh copy of the same store, in the same run. With ``--out`` it writes
``dashboard.md`` (the printed tables) and ``dashboard.json`` (every figure) there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAGES = ("Scaling", "Accuracy", "Throughput", "Regressions", "Runs", "Claims")
APPEND_FILE = "night-00000.jsonl"
TARGET_APPEND_S = 3.0
TARGET_RSS_MIB = 1024.0


def rss_mib() -> tuple[float, float]:
    """(resident, peak resident) memory of this process in MiB, from /proc/self/status."""
    now = peak = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return now, peak


# ---------------------------------------------------------------------------------------------------------------
# The child: one process, every page, printed as JSON lines
# ---------------------------------------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    import warnings

    warnings.simplefilter("ignore")
    from streamlit.testing.v1 import AppTest

    from benchmarks.scale import _vary, committed_records

    store = Path(args.store)
    pool = committed_records(ROOT / "results")
    regs_of_kind: dict = {}
    for r in pool:
        reg = (r.get("case") or {}).get("regularizer") if isinstance(r.get("case"), dict) else None
        if isinstance(reg, str):
            regs_of_kind.setdefault(r.get("kind"), set()).add(reg)
    regs_of_kind = {k: sorted(v) for k, v in regs_of_kind.items()}
    rng = random.Random(12345)
    next_index = [args.records]

    def append(n: int) -> None:
        lines = []
        for _ in range(n):
            lines.append(json.dumps(_vary(json.dumps(rng.choice(pool), default=str), next_index[0], rng, regs_of_kind),
                                    default=str) + "\n")
            next_index[0] += 1
        with open(store / "sweeps" / APPEND_FILE, "a") as f:
            f.write("".join(lines))

    def emit(**row) -> None:
        now, peak = rss_mib()
        print(json.dumps({**row, "rss_mib": round(now, 1), "peak_mib": round(peak, 1)}), flush=True)

    emit(page=None, step="start", s=0.0)
    for page in args.pages:
        def draw(at: AppTest) -> tuple[float, str | None]:
            t = time.perf_counter()
            at.run(timeout=args.timeout)
            s = time.perf_counter() - t
            errors = [str(e.value)[:200] for e in at.exception] + [str(e.value)[:200] for e in at.error]
            return s, "; ".join(errors) or None

        def session() -> AppTest:
            at = AppTest.from_file(args.app, default_timeout=args.timeout)
            at.query_params["page"] = page
            return at

        at = session()
        s, err = draw(at)
        emit(page=page, step="first", s=s, error=err)
        s, err = draw(at)
        emit(page=page, step="redraw", s=s, error=err)
        if s > args.slow:  # a page this slow is not drawn 11 more times: its figures say enough
            emit(page=page, step="skipped", s=0.0, error=f"a redraw took {s:.0f} s > --slow {args.slow:.0f} s")
            continue
        append(args.append)
        s, err = draw(at)
        emit(page=page, step="append", s=s, error=err)
        for i in range(args.reloads):
            del at
            at = session()
            s, err = draw(at)
            emit(page=page, step=f"reload {i + 1}", s=s, error=err)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# The parent: build the store, run the child per code version, write the tables
# ---------------------------------------------------------------------------------------------------------------
def measure(code: Path, store: Path, cache: Path, args: argparse.Namespace) -> list[dict]:
    argv = [sys.executable, str(ROOT / "benchmarks" / "dashboard_scale.py"), "--child", "--store", str(store),
            "--app", str(code / "dashboard" / "app.py"), "--records", str(args.records), "--append",
            str(args.append), "--reloads", str(args.reloads), "--timeout", str(args.timeout), "--slow",
            str(args.slow), "--pages", *args.pages]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), str(ROOT)]), "SSLBENCH_RESULTS": str(store),
           "SSLBENCH_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    env.pop("SSLBENCH_ASV", None)
    rows = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=str(code), text=True) as proc:
        for line in proc.stdout:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows.append(row)
            print(f"  {str(row['page'] or ''):<12} {row['step']:<10} {row['s']:8.2f} s  RSS {row['rss_mib']:7.0f} MiB"
                  f" (peak {row['peak_mib']:.0f})" + (f"  ERROR {row['error']}" if row.get("error") else ""),
                  flush=True)
    if proc.returncode:
        rows.append({"page": None, "step": "exit", "s": 0.0, "error": f"child exited with {proc.returncode}"})
    return rows


def table(rows: list[dict], reloads: int) -> list[str]:
    head = ["first", "redraw", "append"] + [f"reload {i + 1}" for i in range(reloads)]
    out = ["| page | " + " | ".join(head) + " | RSS after (MiB) | peak RSS (MiB) |",
           "|---|" + "---|" * (len(head) + 2)]
    by_page: dict = {}
    for r in rows:
        if r["page"]:
            by_page.setdefault(r["page"], {})[r["step"]] = r
    for page, steps in by_page.items():
        cells = []
        for h in head:
            r = steps.get(h)
            cells.append("-" if r is None else f"{r['s']:.2f}" + (" (error)" if r.get("error") else ""))
        last = [r for r in rows if r["page"] == page][-1]
        out.append(f"| {page} | " + " | ".join(cells) + f" | {last['rss_mib']:.0f} | {last['peak_mib']:.0f} |")
    return out


def verdicts(rows: list[dict]) -> list[str]:
    appended = [r for r in rows if r["step"] == "append"]
    last = [r for r in rows if r["page"]][-1:] or [{"rss_mib": float("nan")}]
    worst = max(appended, key=lambda r: r["s"]) if appended else None
    out = []
    if worst:
        out.append(f"- redraw after {'appending'} records, slowest page: {worst['page']} {worst['s']:.2f} s "
                   f"(target <= {TARGET_APPEND_S:.0f} s: {'met' if worst['s'] <= TARGET_APPEND_S else 'NOT met'})")
    rss = last[0]["rss_mib"]
    out.append(f"- RSS after the last reload: {rss:.0f} MiB (target < {TARGET_RSS_MIB:.0f} MiB: "
               f"{'met' if rss < TARGET_RSS_MIB else 'NOT met'})")
    errors = [r for r in rows if r.get("error")]
    if errors:
        out.append("- errors / notes: " + "; ".join(f"{r['page']} {r['step']}: {r['error']}" for r in errors))
    return out


def run(args: argparse.Namespace) -> dict:
    from benchmarks.scale import committed_records, make_store

    codes = {"after": ROOT}
    if args.before:
        codes = {"before": Path(args.before).resolve(), "after": ROOT}
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sslbench-dashboard-scale-", dir=args.work))
    report: dict = {"records": args.records, "append": args.append, "reloads": args.reloads, "pages": args.pages,
                    "cpus": os.cpu_count(), "driver": "streamlit.testing.v1.AppTest, one process", "runs": {}}
    lines = [f"# The dashboard at scale: {args.records} records, {args.append} appended per page, "
             f"{args.reloads} reloads", "",
             "One process per code version (Streamlit's caches persist across sessions, as in a server), each page "
             "drawn with `streamlit.testing.v1.AppTest`; wall seconds per draw; the snapshot cache empty at the "
             f"start (the first page's first draw is cold). {os.cpu_count()} CPUs, shared.", "",
             f"    python benchmarks/dashboard_scale.py --records {args.records} --append {args.append} "
             f"--reloads {args.reloads}" + (f" --pages {' '.join(args.pages)}" if list(args.pages) != list(PAGES)
                                             else "") + (" --before DIR" if args.before else ""), ""]
    try:
        pool = committed_records(ROOT / "results")
        for which, code in codes.items():
            store = work / f"store-{which}"
            size = make_store(pool, args.records, store, seed=0)
            report["bytes"] = size
            print(f"--- {which}: {args.records} records, {size / 2**20:.0f} MiB, code {code}", flush=True)
            t = time.perf_counter()
            rows = measure(code, store, work / f"cache-{which}", args)
            report["runs"][which] = {"rows": rows, "wall_s": time.perf_counter() - t}
            shutil.rmtree(store, ignore_errors=True)
            lines += [f"## {which} ({code.name if which == 'before' else 'this checkout'})", "",
                      *table(rows, args.reloads), "", *verdicts(rows), ""]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "dashboard.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        (out / "dashboard.md").write_text(text + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000, help="records in the store (default 100000)")
    p.add_argument("--append", type=int, default=1000, help="records appended before the 'append' redraw")
    p.add_argument("--reloads", type=int, default=10, help="new sessions drawn in a row per page (default 10)")
    p.add_argument("--pages", nargs="+", default=list(PAGES), choices=PAGES, help="pages to draw (default all)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds one draw may take (default 900)")
    p.add_argument("--slow", type=float, default=60.0,
                   help="a page whose redraw (no change) takes longer is not drawn again (default 60 s)")
    p.add_argument("--before", metavar="DIR", help="also measure the checkout DIR, side by side")
    p.add_argument("--work", metavar="DIR", default=None, help="folder for the stores (default: the temp folder)")
    p.add_argument("--out", metavar="DIR", help="write dashboard.md and dashboard.json there (e.g. results/scale)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--app", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.records < 1 or args.append < 0 or args.reloads < 0:
        print("dashboard_scale.py: --records must be positive, --append and --reloads not negative", file=sys.stderr)
        return 2
    if args.child:
        return child(args)
    if args.before and not (Path(args.before) / "dashboard" / "app.py").is_file():
        print(f"dashboard_scale.py: --before {args.before} holds no dashboard/app.py; give a checkout's root",
              file=sys.stderr)
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
