"""The dashboard's Claims page (``?page=Claims``) driven with ``streamlit.testing.v1.AppTest``: it shows the verdict
table of :mod:`sslbench.analysis.report` computed from the records (read-only, no torch), and the commands for missing data."""

import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sslbench.records import append_record, make_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
ENV = {"device_name": "Fixture CPU", "cpu_model": "Fixture CPU", "threads": 1, "git_commit": "f1x7ure"}


def write_fft_bench(path: Path) -> None:
    """Exact losses growing as D², relaxed ones as D·log D: the cost claims of study fft are supported."""
    for reg, algo in (("barlow_twins", "cross_correlation"), ("barlow_twins_fft", None),
                      ("vicreg", "cross_correlation"), ("vicreg_fft", None)):
        for d in (256, 512, 1024, 2048, 4096, 8192):
            t = 1e-10 * 256 * (d * d if algo else 60 * d * math.log2(d))
            m = 4 * d * d if algo else 400 * d * math.log2(d)
            case = {"regularizer": reg, **({"algorithm": algo} if algo else {}), "dim": d, "batch": 256, "views": 2,
                    "device": "cpu", "dtype": "float32"}
            append_record(path, make_record("regularizer_bench", case, {"time_median_s": t,
                                                                        "peak_rss_delta_bytes": m}, env=ENV))


def run_claims(monkeypatch, root) -> AppTest:
    monkeypatch.setenv("SSLBENCH_RESULTS", str(root))
    monkeypatch.delenv("SSLBENCH_ASV", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "Claims"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def verdict_frame(at):
    tables = [d.value for d in at.dataframe if "verdict" in d.value.columns]
    assert len(tables) == 1
    return tables[0]


def test_claims_page_shows_the_verdicts_computed_from_the_records(monkeypatch, tmp_path):
    write_fft_bench(tmp_path / "bench.jsonl")
    at = run_claims(monkeypatch, tmp_path)
    table = verdict_frame(at)
    time_row = table[table["claim"].str.startswith("loss time")]
    assert list(time_row["verdict"]) == ["supported"]
    assert set(table["study"]) >= {"fft", "sfrik", "views", "variance", "isoloss", "gram"}
    # the claims without data say so, with the command that produces it
    missing = table[table["study"] == "isoloss"]
    assert list(missing["verdict"]) == ["no data"] and "sslbench sweep --study isoloss" in missing["command"].iloc[0]


def test_claims_page_filters_by_study_and_verdict(monkeypatch, tmp_path):
    write_fft_bench(tmp_path / "bench.jsonl")
    at = run_claims(monkeypatch, tmp_path)
    at.multiselect(key="claims_studies").set_value(["fft"])
    at.run()
    assert set(verdict_frame(at)["study"]) == {"fft"}
    at.multiselect(key="claims_verdicts").set_value(["supported"])
    at.run()
    assert set(verdict_frame(at)["verdict"]) == {"supported"}


def test_claims_page_without_results_explains(monkeypatch, tmp_path):
    at = run_claims(monkeypatch, tmp_path)
    assert any("No results" in i.value for i in at.info)


def test_claims_page_runs_without_torch(tmp_path):
    write_fft_bench(tmp_path / "bench.jsonl")
    code = textwrap.dedent(f"""
        import os, sys, warnings
        warnings.simplefilter("ignore")
        os.environ["SSLBENCH_RESULTS"] = {str(tmp_path)!r}
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=120)
        at.query_params["page"] = "Claims"
        at.run()
        assert not at.exception, at.exception
        assert any("verdict" in d.value.columns for d in at.dataframe)
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "SSLBENCH_ASV"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
