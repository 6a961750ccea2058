"""``sweep --status`` without torch (issue 21): a second ``--status`` of the same grid reads the grid from
:mod:`sslbench.execution.plan_cache` and the store through the narrow ``watch_record`` projection, imports no torch,
and prints exactly what the torch path prints (the full plan: environment, ``slim_record`` projection) for a store
with bench and training cases done, failed, interrupted and missing, a record ``sslbench train`` wrote on its own,
a bad line, and records appended between two calls."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sslbench.execution import cluster, plan_cache, sweep
from sslbench.execution.plan import make_plan
from sslbench.records import make_record

ROOT = Path(__file__).resolve().parent.parent

BENCH = ["sweep", "--kind", "bench", "--regularizers", "barlow_twins", "vicreg", "--dims", "64", "128",
         "--batches", "64"]
TRAIN = ["sweep", "--kind", "train", "--regularizers", "barlow_twins", "--datasets", "digits", "--dims", "16",
         "--seeds", "0", "1", "2", "3", "4", "--epochs", "1"]

# run in a fresh process; "block" makes every import of torch fail, so a lazy one is caught too
CODE = r"""
import contextlib, io, json, sys
if sys.argv[1] == "block":
    sys.modules["torch"] = None
from sslbench.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = main(json.loads(sys.argv[2]))
loaded = "torch" in sys.modules and sys.modules["torch"] is not None
print(json.dumps({"rc": rc, "out": out.getvalue(), "err": err.getvalue(), "torch": loaded}))
"""


def _run(argv: list[str], cache: Path, block: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SSLBENCH_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", CODE, "block" if block else "free", json.dumps(argv)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def _status(argv: list[str], cache: Path, block: bool) -> dict:
    p = _run(argv, cache, block)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    return parser.parse_args(argv[1:])


def _torch_path(argv: list[str]) -> str:
    """What --status printed before the cache: the grid built with torch, the full plan (environment, records that
    count for resume, the slim projection), the same printer."""
    s, cases, out = sweep._settings_and_cases(_parse(argv))
    plan = make_plan("sweep", s, cases, out)
    assert not plan.watching
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cluster.main(plan, "status") == 0
    return buf.getvalue()


def _fill(store: Path, argv: list[str], part: int) -> None:
    """Records of the grid of ``argv``: by case, done (ok / oom), failed (error with output), interrupted, a run
    stored by ``sslbench train`` under its run id, missing; and a line that is not a record."""
    s, cases, _ = sweep._settings_and_cases(_parse(argv))
    plan = make_plan("sweep", s, cases, str(store), watching=True)
    kind = "regularizer_bench" if s["kind"] == "bench" else "train"
    env = {"device_name": "cpu-a" if part == 0 else "cpu-b", "torch_version": "2.13.0", "threads": 1}
    lines = []
    statuses = ["ok", "error", "interrupted", "oom", None][: len(cases)] if part == 0 else ["ok"] * len(cases)
    for k, (case, sid, status) in enumerate(zip(plan.cases, plan.ids, statuses)):
        if status is None or (part == 1 and k % 2):
            continue
        extra = {"output": f"Traceback\nline {k}\n\x1b[31mred\x1b[0m"} if status == "error" else {}
        rec = make_record(kind, case, {}, status, env=env, message=f"msg {k}" if status != "ok" else None,
                          extra=extra)
        if kind == "train":
            if k == 3:
                rec["id"] = plan.run_ids[k]  # written by `sslbench train` itself: no extra.sweep
            else:
                rec["extra"]["sweep"] = {"id": sid, "case": case, "wall_s": 1.0}
        lines.append(json.dumps(rec))
    if part == 0:
        lines.insert(1, "{not json")
    with open(store, "a") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.mark.parametrize("argv", [BENCH, TRAIN], ids=["bench", "train"])
def test_a_second_status_imports_no_torch_and_prints_what_the_torch_path_prints(tmp_path, argv):
    store, cache = tmp_path / "store.jsonl", tmp_path / "cache"
    argv = argv + ["--out", str(store), "--status"]
    _fill(store, argv, 0)
    want = _torch_path(argv)
    assert "1 done" in want or "2 done" in want
    assert "failed" in want and "pending" in want
    cold = _status(argv, cache, block=False)  # builds the grid (torch) and keeps it
    assert cold["torch"] and cold["out"] == want and cold["rc"] == 0
    assert len(list(cache.glob("grid-*.json"))) == 1
    warm = _status(argv, cache, block=True)  # any import of torch would fail
    assert warm == {**cold, "torch": False}
    _fill(store, argv, 1)  # appended: done cases, another device
    want = _torch_path(argv)
    warm = _status(argv, cache, block=True)
    assert warm["out"] == want and not warm["torch"]
    assert "warning: the store mixes 2 devices" in want


def test_another_grid_or_a_hostile_cache_file_rebuilds_the_grid(tmp_path):
    store, cache = tmp_path / "store.jsonl", tmp_path / "cache"
    argv = BENCH + ["--out", str(store), "--status"]
    _fill(store, argv, 0)
    want = _torch_path(argv)
    _status(argv, cache, block=False)
    other = argv[:7] + ["64"] + argv[9:]  # --dims 64 only: its own key
    p = _run(other, cache, block=True)  # not cached: built with torch
    assert other != argv and p.returncode != 0 and "import of torch halted" in p.stderr
    (grid,) = cache.glob("grid-*.json")
    grid.write_text('{"key": 1, "cases": 7}')
    res = _status(argv, cache, block=False)
    assert res["out"] == want and res["torch"] and "the cached grid of the sweep has no key" in res["err"]
    assert len([line for line in res["err"].splitlines() if "cached grid" in line]) == 1
    assert "Traceback" not in res["err"]
    grid.unlink()
    grid.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text("{}")
    res = _status(argv, cache, block=False)
    assert res["out"] == want and "cannot be opened" in res["err"]


def test_what_the_key_cannot_see_is_never_cached(monkeypatch):
    base = {"kind": "bench", "regularizers": ["vicreg"], "device": ["cpu"]}
    assert plan_cache.cacheable(base)
    assert not plan_cache.cacheable({**base, "regularizers": ["mypkg.losses:MyLoss"]})
    assert not plan_cache.cacheable({**base, "device": ["cuda:0"]})
    assert not plan_cache.cacheable({"kind": "train", "regularizers": ["vicreg"], "device": ["cpu"], "datasets": None})
    key = plan_cache.key_of("sweep", base, None, False)
    monkeypatch.setenv("SSLBENCH_DATA_TEST", "/elsewhere")
    assert plan_cache.key_of("sweep", base, None, False) != key
    monkeypatch.delenv("SSLBENCH_DATA_TEST")
    assert key != plan_cache.key_of("sweep", base, None, True) != plan_cache.key_of("sweep", {**base, "dims": [8]},
                                                                                       None, False)


def test_cancel_never_reads_the_grid_cache(tmp_path, monkeypatch):
    """--cancel signals processes: its grid, and the store it names, are built from the settings every time, never
    read from a cache file that someone else may have planted; --status reads it."""
    store = tmp_path / "s.jsonl"
    store.write_text("")
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(plan_cache, "load", lambda key: calls.append(key))
    argv = BENCH + ["--out", str(store)]
    for flag in ("--cancel", "--status"):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            sweep.execute(_parse(argv + [flag]))
        assert len(calls) == (flag == "--status"), (flag, calls)
