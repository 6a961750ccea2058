"""The read path at scale, before and after: ``load_results`` and ``sslbench sweep --status`` on synthetic stores.

    python benchmarks/read_path.py --records 10000 100000 [--before /path/to/old/checkout] [--work DIR]

Builds, for each size, a store from the committed records (``results/**/*.jsonl``, run logs left out), each copy
with a new id, a varied case (dim, batch, seed) and jittered metrics (about 2.7 KB a record), then times each
reader in a child process of its own (seconds and peak RSS, ``resource.getrusage``), side by side in one run:

- ``load_results``: the line-by-line reader (``columnar.available`` off) and the columnar one (pyarrow), and the
  columnar one with a projection (``columns=["metrics.knn_top1"]``); with ``--before``, that checkout's too;
- the snapshot cache (``load_results`` with ``SSLBENCH_CACHE_DIR`` set): the first read (which writes it), a
  second read (nothing new), and a read after 1 000 records are appended (the store grows by them);
- ``sweep --status``: this checkout's (a projection of each record) and, with ``--before``, that checkout's.

The figures are in docs/results-at-scale.md. Nothing here is a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def committed_records() -> list[dict]:
    out = []
    for path in sorted((ROOT / "results").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "kind" in rec and "status" in rec:
                out.append(rec)
    return out


def build_store(path: Path, n: int, seed: int = 0) -> float:
    """``n`` varied copies of the committed records at ``path``; returns the mean bytes per record."""
    base = committed_records()
    rng = random.Random(seed)
    size = 0
    with open(path, "w") as f:
        for i in range(n):
            rec = json.loads(json.dumps(base[i % len(base)]))
            case = rec.setdefault("case", {})
            if isinstance(case, dict):
                case["dim"] = rng.choice([64, 128, 256, 512, 1024, 2048, 4096])
                case["batch"] = rng.choice([64, 128, 256, 512])
                case["seed"] = i
            metrics = rec.get("metrics") if isinstance(rec.get("metrics"), dict) else {}
            for k, v in metrics.items():
                if isinstance(v, float):
                    metrics[k] = v * rng.uniform(0.9, 1.1)
            rec["id"] = hashlib.sha256(f"{i}".encode()).hexdigest()[:16]
            line = json.dumps(rec) + "\n"
            size += len(line)
            f.write(line)
    return size / n


LOAD = """
import resource, sys, time, warnings
warnings.simplefilter("ignore")
from sslbench.analysis.load import load_results
mode = sys.argv[2]
if mode == "dicts":
    from sslbench.records import columnar
    columnar.available = lambda: False
t = time.perf_counter()
kw = {"columns": ["metrics.knn_top1"]} if mode == "projection" else {}
df = load_results(sys.argv[1], asv=[], **kw)
s = time.perf_counter() - t
print(f"{s:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} {len(df)} {df.shape[1]}")
"""

STATUS = """
import resource, sys, time, io, contextlib
from sslbench.cli import main
t = time.perf_counter()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main(["sweep", "--kind", "bench", "--regularizers", "barlow_twins", "vicreg", "--dims", "64", "128",
               "--batches", "64", "--out", sys.argv[1], "--status"])
s = time.perf_counter() - t
line = out.getvalue().splitlines()[0] if out.getvalue() else ""
print(f"{s:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} rc={rc} {line[:60]!r}")
"""


def child(code: str, checkout: Path, *args: str, env: dict | None = None) -> str:
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(checkout)}
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                       cwd=checkout)
    return r.stdout.strip() or ("failed: " + r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--before", type=Path, help="another checkout (today's main) to time beside this one")
    p.add_argument("--work", type=Path, help="where the stores go (default: a temporary folder)")
    p.add_argument("--skip-dicts-above", type=int, default=10 ** 9,
                   help="leave the line-by-line reader out above this many records (it needs ~20 KB a record)")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sslbench-read-path-"))
    print("records  reader                     seconds  peak RSS (MB)  rows cols")
    for n in args.records:
        folder = work / f"n{n}"
        folder.mkdir(parents=True, exist_ok=True)
        store = folder / "store.jsonl"
        if not store.exists():
            per = build_store(store, n)
            print(f"# {n} records, {store.stat().st_size / 1e6:.0f} MB, {per:.0f} bytes a record")
        runs = []
        if args.before:
            runs.append(("load_results before", LOAD, args.before, "default"))
        if n <= args.skip_dicts_above:
            runs.append(("load_results dicts", LOAD, ROOT, "dicts"))
        runs += [("load_results columnar", LOAD, ROOT, "columnar"),
                 ("load_results projection", LOAD, ROOT, "projection"),
                 ("snapshot: build", LOAD, ROOT, "build"),
                 ("snapshot: warm", LOAD, ROOT, "warm"),
                 ("snapshot: +1000 appended", LOAD, ROOT, "append")]
        if args.before:
            runs.append(("sweep --status before", STATUS, args.before, ""))
        runs.append(("sweep --status", STATUS, ROOT, ""))
        cache = folder / "snapshots"
        for name, code, checkout, mode in runs:
            store_arg = str(folder if code is LOAD else store)
            if mode == "build" and cache.exists():
                shutil.rmtree(cache)
            if mode == "append":
                with open(store, "a") as f:
                    f.write("".join(json.dumps(r) + "\n" for r in committed_records()[:1000]))
            env = {"SSLBENCH_CACHE_DIR": str(cache) if mode in ("build", "warm", "append") else "off"}
            print(f"{n:>7}  {name:<25}  {child(code, checkout, store_arg, mode, env=env)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
