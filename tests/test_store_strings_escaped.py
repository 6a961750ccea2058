"""Strings from a store are escaped where they are shown (issue 18, item 6): Markdown tables of ``analyze`` and
``report`` escape HTML and keep one line per row, plotly names and hovers escape ``<`` and ``%{``, ``st.markdown``
gets escaped text, and what reaches a terminal (``sweep --status``, ``analyze``) has no escape sequences.

The store's hostile strings: ``<script>``, a newline, ``%{x}``, an OSC that retitles the terminal
(``ESC ]0;title BEL``) and a CSI that erases it (``ESC [2J``)."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from sslbench.records import append_record, make_record
from sslbench.records import text as T

HOSTILE = "<script>alert(1)</script>\nrow2 %{x} \x1b]0;pwned\x07\x1b[2J|end"
ESCAPES = ("\x1b", "\x07", "\x9b")


def _clean_for_terminal(out: str) -> None:
    assert not any(c in out for c in ESCAPES), repr(out)


# ---------------------------------------------------------------------------------------------------------------
# the sanitisers, torch-free
# ---------------------------------------------------------------------------------------------------------------
def test_the_sanitisers_are_torch_free_and_each_removes_what_its_target_reads():
    saved = sys.modules.get("torch")
    sys.modules["torch"] = None  # any import of torch fails
    try:
        import importlib

        importlib.reload(T)
    finally:
        if saved is not None:
            sys.modules["torch"] = saved
        else:
            del sys.modules["torch"]
    assert T.terminal(HOSTILE) == "<script>alert(1)</script>\nrow2 %{x} |end"
    assert T.terminal("a\x1b[31mred\x1b[0m\x1bPdcs\x1b\\ b\x9b2J\u202eevil\x00") == "ared bevil"
    assert T.one_line(HOSTILE) == "<script>alert(1)</script> row2 %{x} |end"
    assert T.markdown_cell(HOSTILE) == "&lt;script&gt;alert(1)&lt;/script&gt; row2 %{x} \\|end"
    assert T.plotly_text(HOSTILE) == "&lt;script&gt;alert(1)&lt;/script&gt; row2 &#37;{x} |end"
    md = T.markdown_text("[click](javascript:x) *b* <i>")
    assert md == "\\[click\\]\\(javascript:x\\) \\*b\\* &lt;i&gt;"


# ---------------------------------------------------------------------------------------------------------------
# analyze and report
# ---------------------------------------------------------------------------------------------------------------
def _hostile_store(tmp_path):
    store = tmp_path / "results" / "bench.jsonl"
    store.parent.mkdir()
    env = {"device_name": HOSTILE, "host": HOSTILE, "torch_version": "2", "threads": 1}
    for d in (8, 16, 32):
        case = {"regularizer": HOSTILE, "dim": d, "batch": 4, "views": 2, "device": "cpu", "dtype": "float32"}
        append_record(store, make_record("regularizer_bench", case, {"time_median_s": 1e-3 * d, "repeats": 5},
                                         env=env))
    return store


@pytest.mark.parametrize("fmt", ["markdown", "text", "csv"])
def test_format_table_escapes_store_strings(fmt):
    from sslbench.analysis.tables import format_table

    df = pd.DataFrame({"name": [HOSTILE, "plain"], "value": [1.5, 2.0]})
    out = format_table(df, fmt)
    _clean_for_terminal(out)
    if fmt == "markdown":
        lines = out.split("\n")
        assert len(lines) == 4 and all(ln.startswith("| ") and ln.endswith(" |") for ln in lines[2:])
        assert "<script>" not in out and "&lt;script&gt;" in out and "\\|end" in out
    elif fmt == "text":
        assert len(out.split("\n")) == 4 and "<script>alert(1)</script> row2" in out


def test_analyze_markdown_keeps_one_row_per_record_and_no_raw_html(tmp_path, capsys):
    from sslbench import cli

    _hostile_store(tmp_path)
    assert cli.main(["analyze", "--results", str(tmp_path / "results"), "--tables", "inventory",
                     "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    _clean_for_terminal(out)
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert len(rows) == 2, out  # the header and one row: the newline did not break the table
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt; row2" in rows[1]


def test_report_markdown_and_text_escape_store_strings():
    from sslbench.analysis.claims.common import Verdict
    from sslbench.analysis.report import format_verdicts

    row = Verdict(study="fft", claim="a claim", verdict="inconclusive", figures=HOSTILE, rule="r",
                  command="sslbench sweep --out `" + HOSTILE + "`", setting=HOSTILE)
    md = format_verdicts([row], "markdown")
    _clean_for_terminal(md)
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert len(table) == 2 and "<script>" not in table[1].split("`")[0] and "&lt;script&gt;" in table[1]
    code = table[1].split("| `")[1]
    assert code.count("`") == 1  # the command's own backticks cannot end the code span early
    text = format_verdicts([row], "text")
    _clean_for_terminal(text)


# ---------------------------------------------------------------------------------------------------------------
# sweep --status
# ---------------------------------------------------------------------------------------------------------------
def test_sweep_status_prints_no_terminal_escapes_from_the_store(tmp_path, capsys):
    from sslbench import cli
    from sslbench.execution import bench
    from sslbench.records import case_id

    store = tmp_path / "s.jsonl"
    argv = ["sweep", "--kind", "bench", "--regularizers", "barlow_twins", "--dims", "8", "--batches", "4",
            "--device", "cpu", "--out", str(store)]
    case = bench.bench_case("barlow_twins", 8, 4, 2, "cpu")
    rec = make_record(bench.KIND, case, {}, "error", message=HOSTILE, env={"host": HOSTILE},
                      extra={"output": "Traceback\n" + HOSTILE, "sweep_id": case_id(bench.KIND, case)})
    append_record(store, rec)
    assert cli.main([*argv, "--status"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "<script>alert(1)</script>" in out  # the message is shown, its escapes are not
    _clean_for_terminal(out)


# ---------------------------------------------------------------------------------------------------------------
# the dashboard: plotly names, hovers and titles; st.markdown
# ---------------------------------------------------------------------------------------------------------------
def test_dashboard_escapes_store_strings_in_charts_and_markdown(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    pytest.importorskip("plotly")
    import json
    import warnings
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    _hostile_store(tmp_path)
    monkeypatch.setenv("SSLBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("SSLBENCH_ASV", raising=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    assert specs
    for spec in specs:
        shown = [spec["layout"]["title"]["text"]] + [t.get("name") or "" for t in spec["data"]]
        shown += [t.get("hovertemplate") or "" for t in spec["data"]]
        for s in shown:
            assert "<script" not in s and "%{x} " not in s and "\n" not in s and "\x1b" not in s, s
        assert any("&lt;script&gt;" in t.get("name", "") for t in spec["data"])
        assert any("&#37;{x}" in (t.get("hovertemplate") or "") for t in spec["data"])
    for m in at.markdown:
        assert "<script" not in m.value and "\x1b" not in m.value
