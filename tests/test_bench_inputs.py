"""``bench`` and ``sweep --kind bench`` check their inputs once, before any work (issue 18, item 11): a dry run
allocates nothing (DirectPred's D×D state is counted on the meta device), a case whose inputs and state alone
exceed the device's memory is refused, and a grid over 10 000 cases needs --yes. The one-line refusals themselves
are rows of tests/test_cli_bad_input.py."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from sslbench.execution import bench, sweep

ROOT = Path(__file__).resolve().parent.parent


def test_a_directpred_dry_run_at_d_20000_allocates_no_d_by_d_state(tmp_path):
    """The old check built DirectPred at the smallest D for real: its 20 000² float F (1.6 GB; 1.8 GB peak resident)
    for a dry run. The peak resident memory of the whole command (Python and torch included) is read in
    the child itself."""
    code = ("import resource, sys; from sslbench import cli; rc = cli.main(sys.argv[1:]); "
            "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024); sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code, "bench", "--regularizers", "directpred", "--dims", "20000",
                        "--batches", "4", "--dry-run", "--out", str(tmp_path / "b.jsonl")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    assert "todo  directpred D=20000" in p.stdout
    peak = int(p.stdout.split("peak ")[1].split()[0])
    state = 20000**2 * 4
    print(f"peak resident memory of the dry run: {peak / 2**20:.0f} MiB (the D×D state alone: {state / 2**20:.0f} MiB)")
    assert peak < state / 2


def test_state_bytes_counts_on_meta_and_case_bytes_is_a_lower_bound():
    assert bench.state_bytes("directpred", 10**6) == 10**12 * 4 + 16  # its F (+ a 4-float buffer)
    assert bench.state_bytes("barlow_twins", 10**9) == 0
    assert bench.state_bytes("directpred", 10**20) is None  # past int64: unknowable, refused by the caller
    case = bench.bench_case("byol", 100, 10, 2, "cpu")  # asymmetric: leaves, their gradients and the targets
    assert bench.case_bytes(case, 0) == 2 * 10 * 100 * 3 * 4
    assert bench.device_memory("cpu") == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_grid_size_counts_the_cases_before_building_them():
    args = argparse.Namespace(kind="bench", regularizers=["barlow_twins", "vicreg", "byol"],
                              algorithms=["cross_correlation", "gram"], dims=[8, 16], batches=[4, 8, 16], views=[2],
                              device=["cpu"], dtypes=["float32", "float64"])
    s = sweep.resolve_settings(args)
    assert sweep.grid_size(s) == len(sweep.build_cases(s)) == (2 + 2 + 1) * 2 * 3 * 2
    big = {**s, "dims": list(range(2, 5002)), "batches": [4, 8]}
    assert sweep.grid_size(big) == 5 * 5000 * 2 * 2 > sweep.MAX_CASES_WITHOUT_YES
    sweep.check_grid_size(big, yes=True)  # --yes lets it through
    try:
        sweep.check_grid_size(big, yes=False)
    except sweep.SweepError as exc:
        assert "100,000 cases" in str(exc) and "--yes" in str(exc)
    else:
        raise AssertionError("a grid of 100 000 cases ran without --yes")
