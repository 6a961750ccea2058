"""Small results folders written in the formats sslbench reads (no torch work), for the analysis and dashboard
tests: JSON-lines record stores (regularizer_bench with known power laws, train runs), training runs' per-step
logs, a pytest-benchmark JSON file and an asv results directory with a planted regression.

The synthetic benchmark times follow exact power laws so that the tests know the answers:

* ``barlow_twins[cross_correlation]``: t = C · N · D²  (exponent 2 in D, 1 in N)
* ``barlow_twins[gram]``:              t = C · N² · D  (exponent 1 in D, 2 in N)
  → the two cross at D = N.
* ``vicreg`` (no algorithm):           t = C · N · D^1.5
* memory: m = 4 · D² bytes (cross_correlation), 4 · N² · D / 64 (gram), 4 · D · N (vicreg).

``barlow_twins[cross_correlation]`` at the largest D is an out-of-memory record.
"""

from __future__ import annotations

import json
from pathlib import Path

from sslbench.records import append_record, make_record

C = 1e-10
DIMS = (64, 128, 256, 512, 1024)
OOM_DIM = 2048
BATCHES = (128, 256)
DEVICE = "Fixture CPU"
ENV = {"device_name": DEVICE, "cpu_model": DEVICE, "torch_version": "0.0-test", "threads": 2,
       "git_commit": "f1x7ure000", "hostname": "test"}
GPU_ENV = {**ENV, "device_name": "Fixture GPU"}

def bench_time(algorithm: str | None, d: int, n: int) -> float:
    if algorithm == "cross_correlation":
        return C * n * d ** 2
    if algorithm == "gram":
        return C * n ** 2 * d
    return C * n * d ** 1.5

def bench_memory(algorithm: str | None, d: int, n: int) -> int:
    if algorithm == "cross_correlation":
        return 4 * d * d
    if algorithm == "gram":
        return 4 * n * n * d // 64
    return 4 * d * n

def _bench_record(reg, algo, d, n, v=2, env=ENV, status="ok"):
    case = {"regularizer": reg}
    if algo:
        case["algorithm"] = algo
    case.update({"dim": d, "batch": n, "views": v, "device": "cpu", "dtype": "float32"})
    if status != "ok":
        return make_record("regularizer_bench", case, {}, status, env=env, message="out of memory (fixture)")
    t = bench_time(algo, d, n) * (v / 2)
    metrics = {"time_median_s": t, "time_q25_s": t * 0.95, "time_q75_s": t * 1.05, "time_iqr_s": t * 0.1,
               "repeats": 5, "peak_rss_bytes": 200_000_000 + bench_memory(algo, d, n),
               "peak_rss_delta_bytes": bench_memory(algo, d, n)}
    return make_record("regularizer_bench", case, metrics, env=env)

def write_bench_store(path: Path, *, corrupt_line: bool = True) -> list[dict]:
    """regularizer_bench records (two devices), an OOM case, and (optionally) a half-written last line."""
    recs = []
    for n in BATCHES:
        for d in DIMS:
            for reg, algo in (("barlow_twins", "cross_correlation"), ("barlow_twins", "gram"), ("vicreg", None)):
                recs.append(_bench_record(reg, algo, d, n))
        recs.append(_bench_record("barlow_twins", "cross_correlation", OOM_DIM, n, status="oom"))
    for d in DIMS:  # a second device: vicreg only, 4 views
        recs.append(_bench_record("vicreg", None, d, 256, v=4, env=GPU_ENV))
    for r in recs:
        append_record(path, r)
    if corrupt_line:
        with open(path, "ab") as f:
            f.write(b'{"schema": 1, "kind": "regularizer_bench", "case": {"regu')
    return recs

def train_records() -> list[dict]:
    """Train runs: barlow_twins and vicreg, V in (2, 4), fraction in (0.5, 1.0), two seeds; one diverged run."""
    recs = []
    for reg, base in (("barlow_twins", 80.0), ("vicreg", 82.0)):
        for views in (2, 4):
            for fraction in (0.5, 1.0):
                for seed in (0, 1):
                    case = {"regularizer": reg, "dataset": "fashion_mnist", "fraction": fraction, "dim": 128,
                            "views": views, "batch": 256, "epochs": 2, "seed": seed, "backbone": "convnet",
                            "device": "cpu", "hparams": {"lambd": 0.005}}
                    lin = base + views + 2 * fraction + 0.5 * seed
                    metrics = {"steps": 100, "train_time_s": 50.0 * views * fraction, "images_per_s": 500.0,
                               "linear_top1": lin, "knn_top1": lin - 5, "init_linear_top1": 70.0,
                               "init_knn_top1": 60.0, "gain_linear": lin - 70.0, "gain_knn": lin - 65.0}
                    recs.append(make_record("train", case, metrics, env=ENV))
    case = {"regularizer": "vicreg", "dataset": "fashion_mnist", "fraction": 1.0, "dim": 128, "views": 2,
            "batch": 256, "epochs": 2, "seed": 7, "backbone": "convnet", "device": "cpu"}
    recs.append(make_record("train", case, {"steps": 3}, "diverged", env=ENV, message="loss became NaN"))
    return recs

def write_run_log(path: Path, record: dict, *, steps: int = 5, loss0: float = 10.0) -> None:
    """A per-step log as ``sslbench train`` writes it (start, step, eval, end events)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"event": "start", "time": 1000.0, "step": 0, "run_id": record["id"], "case": record["case"],
              "total_steps": steps, "steps_per_epoch": steps}]
    for s in range(1, steps + 1):
        loss = loss0 / s
        lines.append({"event": "step", "time": 1000.0 + s, "step": s, "epoch": s / steps, "lr": 0.1,
                      "images_per_s": 400.0 + s, "loss": loss, "invariance": loss * 0.7, "redundancy": loss * 0.3,
                      "memory_bytes": 1_000_000 + s})
        if s == steps // 2:
            lines.append({"event": "eval", "time": 1000.5 + s, "step": s, "epoch": 0, "knn_top1": 50.0 + s})
    lines.append({"event": "end", "time": 1000.0 + steps + 1, "step": steps, "status": record["status"],
                  "message": None, "metrics": record["metrics"]})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))

def write_pytest_benchmark(path: Path) -> None:
    """A pytest-benchmark JSON file (``--benchmark-json`` layout): simclr at three D."""
    path.parent.mkdir(parents=True, exist_ok=True)
    benches = []
    for d in (32, 64, 128):
        t = 1e-6 * d
        benches.append({
            "group": f"D={d} N=24 V=2 cpu", "name": f"test_forward_backward[simclr-D{d}-N24-V2]",
            "fullname": f"tests/benchmarks/test_bench_regularizers.py::test_forward_backward[simclr-D{d}-N24-V2]",
            "params": {"name": "simclr", "dim": d, "batch": 24, "views": 2},
            "extra_info": {"regularizer": "simclr", "dim": d, "batch": 24, "views": 2, "device": "cpu",
                           "dtype": "float32", "torch_version": "0.0-test", "threads": 2, "device_name": DEVICE,
                           "peak_rss_bytes": 1000 * d},
            "stats": {"min": t * 0.9, "max": t * 1.2, "mean": t, "stddev": t * 0.05, "rounds": 10, "median": t,
                      "iqr": t * 0.1, "q1": t * 0.95, "q3": t * 1.05, "iqr_outliers": 0, "stddev_outliers": 0,
                      "outliers": "0;0", "ld15iqr": t * 0.9, "hd15iqr": t * 1.2, "ops": 1 / t, "total": 10 * t,
                      "iterations": 1},
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0,
                        "min_time": 5e-06, "warmup": False}})
    path.write_text(json.dumps({
        "machine_info": {"node": "test", "processor": "x86_64", "machine": "x86_64", "python_version": "3.11.7",
                         "cpu": {"brand_raw": DEVICE}},
        "commit_info": {"id": "f1x7ure000", "time": "2025-01-01T00:00:00+00:00", "dirty": False,
                        "branch": "main"},
        "benchmarks": benches, "datetime": "2025-01-02T00:00:00.000000+00:00", "version": "5.1.0"}))

ASV_COMMITS = ("aaaa111100000000", "bbbb222200000000", "cccc333300000000")
ASV_BENCH = "bench_regularizers.Algorithms.time_forward_backward"

def write_asv_results(results_dir: Path, *, slow_commit: int = 2, factor: float = 2.0) -> None:
    """An asv results directory: three commits (dates in that order) of one parametrised benchmark; the
    ``barlow_twins``/``gram`` combination becomes ``factor`` × slower at commit ``slow_commit``, the others stay
    within 5 %. Also a ``track_`` benchmark in % that drops at the same commit (a regression too)."""
    machine = results_dir / "fixture-box"
    machine.mkdir(parents=True, exist_ok=True)
    (results_dir / "benchmarks.json").write_text(json.dumps({
        ASV_BENCH: {"name": ASV_BENCH, "param_names": ["regularizer", "algorithm", "dim", "batch"],
                    "params": [["'barlow_twins'", "'vicreg'"], ["'cross_correlation'", "'gram'"], ["256"], ["128"]],
                    "type": "time", "unit": "seconds", "version": "1"},
        "bench_regularizers.DownstreamAccuracy.track_knn_top1": {
            "name": "bench_regularizers.DownstreamAccuracy.track_knn_top1", "param_names": ["regularizer"],
            "params": [["'barlow_twins'"]], "type": "track", "unit": "%", "version": "1"},
        "version": 2}))
    (machine / "machine.json").write_text(json.dumps({"arch": "x86_64", "cpu": DEVICE, "machine": "fixture-box",
                                                      "num_cpu": "2", "os": "Linux", "ram": "1", "version": 1}))
    columns = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
               "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]
    for i, commit in enumerate(ASV_COMMITS):
        wobble = 1.0 + 0.02 * i
        values = [0.010 * wobble, 0.020 * wobble, 0.011 * wobble, 0.021 * wobble]  # bt cc, bt gram, vr cc, vr gram
        knn = 80.0
        if i == slow_commit:
            values[1] *= factor
            knn = 40.0
        row = [values, [["'barlow_twins'", "'vicreg'"], ["'cross_correlation'", "'gram'"], ["256"], ["128"]],
               "1", 0, 1.0, [v * 0.9 for v in values], [v * 1.1 for v in values], [v * 0.95 for v in values],
               [v * 1.05 for v in values], [1] * 4, [3] * 4, None, None]
        track = [[knn], [["'barlow_twins'"]], "1", 0, 1.0, [None], [None], [None], [None], [1], [1], None, None]
        (machine / f"{commit[:8]}-virtualenv-py3.11-torch2.13.0.json").write_text(json.dumps({
            "commit_hash": commit, "env_name": "virtualenv-py3.11-torch2.13.0", "date": 1_700_000_000_000 + i * 86_400_000,
            "python": "3.11", "requirements": {"torch": "2.13.0"}, "env_vars": {}, "result_columns": columns,
            "results": {ASV_BENCH: row, "bench_regularizers.DownstreamAccuracy.track_knn_top1": track},
            "durations": {}, "version": 2}))

def write_results(root: Path, *, asv: bool = True, pytest_benchmark: bool = True, runs: bool = True,
                  corrupt_line: bool = True) -> Path:
    """A whole results folder under ``root``: ``sweeps/bench.jsonl``, ``train.jsonl``, ``runs/<id>.jsonl``
    (two run logs), ``pytest-benchmark/.../0001_fixture.json`` and ``asv/`` (an asv results directory)."""
    root.mkdir(parents=True, exist_ok=True)
    write_bench_store(root / "sweeps" / "bench.jsonl", corrupt_line=corrupt_line)
    trains = train_records()
    for r in trains:
        append_record(root / "train.jsonl", r)
    if runs:
        for i, r in enumerate([t for t in trains if t["status"] == "ok"][:2]):
            write_run_log(root / "runs" / f"{r['id']}.jsonl", r, loss0=10.0 * (i + 1))
    if pytest_benchmark:
        write_pytest_benchmark(root / "pytest-benchmark" / "Linux-CPython-3.11-64bit" / "0001_fixture.json")
    if asv:
        write_asv_results(root / "asv")
    return root
