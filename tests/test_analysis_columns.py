"""``sslbench analyze`` and ``sslbench report`` read only the columns their tables need (issue 21, items 1 and 3):
``load_results(columns=SUMMARY_COLUMNS)`` gives the same summary tables as the whole frame, and
``load_results(columns=REPORT_COLUMNS)`` the same verdicts, on a store varied from the committed records (NaNs,
absent fields, strings where numbers belong, a bad line) beside the fixtures' asv and pytest-benchmark results."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import scale  # noqa: E402
from sslbench import analysis as A  # noqa: E402
from sslbench.analysis import report  # noqa: E402
from tests.results_fixtures import write_results  # noqa: E402


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("varied")
    write_results(root / "fixtures")
    pool = scale.committed_records(ROOT / "results")
    assert len(pool) > 100, "the committed records are the test's data"
    scale.make_store(pool, 1200, root / "nightly", seed=7)
    # hostile and odd values: a string where a metric or a case number belongs, NaN, a bad line
    store = root / "nightly" / "sweeps" / "night-00000.jsonl"
    lines = store.read_text().splitlines()
    odd = []
    for i, line in enumerate(lines[:60]):
        r = json.loads(line)
        if r.get("kind") == "train" and i % 3 == 0:
            r["metrics"]["linear_top1"] = "n/a"
        elif r.get("kind") == "train" and i % 3 == 1:
            r["case"]["lr"] = float("nan")
        elif r.get("kind") in ("regularizer_bench", "side_by_side"):
            r["case"]["dim"] = "big"
        odd.append(json.dumps(r))
    store.write_text("\n".join(odd + ["{not json"] + lines[60:]) + "\n")
    return root


def _load(root: Path, columns=None) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return A.load_results(root, asv=[], columns=columns)


def test_summary_on_the_projection_is_the_summary_of_everything(varied):
    whole, narrow = _load(varied), _load(varied, A.SUMMARY_COLUMNS)
    assert len(narrow.columns) < len(whole.columns)  # the projection leaves columns out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = A.summary(whole), A.summary(narrow)
    assert list(a) == list(b)
    for name in a:
        assert not a[name].empty or name == "regressions", name
        pd.testing.assert_frame_equal(a[name].reset_index(drop=True), b[name].reset_index(drop=True),
                                      check_dtype=False, obj=name)
        assert A.format_table(a[name], "markdown") == A.format_table(b[name], "markdown")


def test_verdicts_on_the_projection_are_the_verdicts_of_everything(varied):
    whole, narrow = _load(varied), _load(varied, report.REPORT_COLUMNS)
    assert len(narrow.columns) < len(whole.columns)
    with warnings.catch_warnings(record=True) as wa:
        warnings.simplefilter("always")
        a = report.verdicts(whole)
    with warnings.catch_warnings(record=True) as wb:
        warnings.simplefilter("always")
        b = report.verdicts(narrow)
    assert report.format_verdicts(a, "markdown") == report.format_verdicts(b, "markdown")
    assert sorted(str(w.message) for w in wa) == sorted(str(w.message) for w in wb)
    assert any("is not a number; skipped" in str(w.message) for w in wa)  # the odd records were screened
