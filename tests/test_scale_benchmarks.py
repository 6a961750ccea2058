"""The scale benchmarks of issue 21 run end to end at a few hundred records (their figures are committed from runs at
10^4..10^6; these tests only keep the scripts working): ``benchmarks/scale.py``, ``benchmarks/read_path.py`` and
``benchmarks/dashboard_scale.py``, each in a fresh process as documented. The dashboard one once broke at its
append step (it passed a record where ``scale._vary`` takes the record's text) with nothing to notice it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SSLBENCH_CACHE_DIR": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p


def test_scale_benchmark_writes_its_tables_and_exponents(tmp_path):
    _run(["benchmarks/scale.py", "--sizes", "150", "300", "--no-run-variants", "--out", str(tmp_path / "out")],
         tmp_path)
    md = (tmp_path / "out" / "scale.md").read_text()
    data = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert "| 150 |" in md and "| 300 |" in md and "fitted exponent" in md
    for what in ("load_results", "analyze", "report", "views"):
        assert what in md, what
    assert data and isinstance(data, dict)


def test_read_path_benchmark_measures_load_and_status(tmp_path):
    p = _run(["benchmarks/read_path.py", "--records", "200", "--parts", "load", "status", "--work",
              str(tmp_path / "work")], tmp_path)
    assert "sweep --status now, second" in p.stdout and "load_results snapshot: warm, projected" in p.stdout
    assert "after 1000 appended" in p.stdout


@pytest.mark.slow
def test_dashboard_benchmark_draws_appends_and_reloads(tmp_path):
    pytest.importorskip("streamlit")
    _run(["benchmarks/dashboard_scale.py", "--records", "300", "--append", "20", "--reloads", "1", "--pages", "Runs",
          "Claims", "--work", str(tmp_path / "new" / "work"), "--out", str(tmp_path / "out")], tmp_path)
    md = (tmp_path / "out" / "dashboard.md").read_text()
    assert "| Runs |" in md and "| Claims |" in md and "redraw after appending records" in md
