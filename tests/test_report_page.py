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


def test_claims_page_after_an_append_shows_the_new_verdicts(monkeypatch, tmp_path):
    """The page's verdicts after records are appended are those of a report of the whole folder, not the verdicts
    drawn before the append (kept per version of the records), nor rows kept from before for a setting whose runs
    changed (issue 21: after an append, only the settings whose runs changed are computed again)."""
    import json
    import random

    sys.path.insert(0, str(ROOT))
    from benchmarks import scale
    from sslbench.analysis import load_results
    from sslbench.analysis import report as R
    from sslbench.analysis.claims import common as C

    pool = scale.committed_records(ROOT / "results")
    scale.make_store(pool, 1500, tmp_path, seed=7)
    C.forget()
    at = run_claims(monkeypatch, tmp_path)
    at.checkbox(key="claims_earlier").check()
    at.run()
    shown_before = verdict_frame(at)

    def expected():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return R.verdict_table(R.verdicts(load_results(tmp_path, asv=[])))

    assert shown_before.reset_index(drop=True).equals(expected().reset_index(drop=True))
    rng, regs = random.Random(99), {}
    for r in pool:
        reg = (r.get("case") or {}).get("regularizer") if isinstance(r.get("case"), dict) else None
        if isinstance(reg, str):
            regs.setdefault(r.get("kind"), set()).add(reg)
    regs = {k: sorted(v) for k, v in regs.items()}
    train = [r for r in pool if r.get("kind") == "train"]
    with open(tmp_path / "sweeps" / "night-00000.jsonl", "a") as f:
        for i in range(300):
            f.write(json.dumps(scale._vary(json.dumps(rng.choice(train)), 9000 + i, rng, regs), default=str) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown_after = verdict_frame(at).reset_index(drop=True)
    want = expected().reset_index(drop=True)
    assert not want.equals(shown_before.reset_index(drop=True))  # the append changes the verdicts
    assert shown_after.equals(want)
    assert len(C._KEPT_STORE) > 0  # what the page kept from before the append was there to be reused
