"""What :func:`sslbench.analysis.claims.common.remembering` keeps from one report to the next (the dashboard's
Claims page after an append, issue 21): the verdicts computed with values kept from another frame are those of a
report that keeps nothing, a setting whose runs changed is computed again, and the comparisons kept are those
computed."""

from __future__ import annotations

import json
import math
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import scale  # noqa: E402
from sslbench import analysis as A  # noqa: E402
from sslbench.analysis import report as R  # noqa: E402
from sslbench.analysis.claims import common as C  # noqa: E402
from sslbench.analysis.claims import sfrik  # noqa: E402


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a store's records, the same with 400 more appended to one file): varied copies of the committed records,
    with NaN, absent and non-number fields planted (as tests/test_claims_vectorised.py plants them)."""
    from tests.test_claims_vectorised import _odd

    root = tmp_path_factory.mktemp("remembered")
    pool = scale.committed_records(ROOT / "results")
    scale.make_store(pool, 2400, root / "s", seed=3)
    store = root / "s" / "sweeps" / "night-00000.jsonl"
    recs = [json.loads(x) for x in store.read_text().splitlines()]
    store.write_text("".join(json.dumps(r) + "\n" for r in _odd(recs, random.Random(8))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = A.load_results(root, asv=[])
        rng = random.Random(21)
        regs = {}
        for r in pool:
            reg = (r.get("case") or {}).get("regularizer") if isinstance(r.get("case"), dict) else None
            if isinstance(reg, str):
                regs.setdefault(r.get("kind"), set()).add(reg)
        regs = {k: sorted(v) for k, v in regs.items()}
        with open(root / "s" / "sweeps" / "night-00001.jsonl", "a") as f:
            for i in range(400):
                f.write(json.dumps(scale._vary(json.dumps(rng.choice(pool)), 5000 + i, rng, regs), default=str) + "\n")
        after = A.load_results(root, asv=[])
    assert len(after) > len(before)
    return before, after


def rows(df: pd.DataFrame, **kw) -> list[tuple]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [tuple(vars(v).values()) for v in R.verdicts(df, **kw)]


@pytest.fixture(autouse=True)
def nothing_kept():
    C.forget()
    yield
    C.forget()


def test_verdicts_with_values_kept_from_an_earlier_frame_are_those_computed_afresh(frames, monkeypatch):
    before, after = frames
    fresh_before, fresh_after = rows(before), rows(after)
    assert fresh_before != fresh_after  # the append changes verdicts: a stale answer would be seen
    calls = []
    real = sfrik._accuracy_rows
    monkeypatch.setattr(sfrik, "_accuracy_rows", lambda *a: calls.append(1) or real(*a))
    with C.remembering():
        assert rows(before) == fresh_before
        first = len(calls)
        assert first > 5
        assert rows(after) == fresh_after
        again = len(calls) - first
        assert 0 < again < first  # the settings whose runs changed only
        assert rows(after) == fresh_after
        assert len(calls) == first + again  # nothing changed: every setting's rows kept
        assert rows(before) == fresh_before  # and back: the earlier frame's rows, not the later's
    assert C._KEPT is None and len(C._KEPT_STORE) > 0
    assert rows(after) == fresh_after


def test_a_changed_run_recomputes_its_setting(frames):
    _, after = frames
    with C.remembering():
        first = rows(after)
    changed = after.copy()
    train = np.flatnonzero((changed["kind"] == "train").to_numpy() & (changed["status"] == "ok").to_numpy()
                           & np.isfinite(pd.to_numeric(changed["metrics.linear_top1"], errors="coerce")))
    # every finished run a little more accurate: a setting whose runs changed must not keep its figures
    col = changed.columns.get_loc("metrics.linear_top1")
    changed.iloc[train, col] = pd.to_numeric(changed.iloc[train, col], errors="coerce") + 0.0123
    fresh = rows(changed)
    assert fresh != first
    with C.remembering():
        assert rows(changed) == fresh
    # one run's hyper-parameters changed (a value the rows' keys read as text): its setting is computed again
    hp_at = next(i for i in train if isinstance(changed["case.hparams"].iloc[i], str)
                 and "lambd" in changed["case.hparams"].iloc[i])
    other = changed.copy()
    hp = json.loads(other["case.hparams"].iloc[hp_at])
    hp["lambd"] = float(hp["lambd"]) * 3 if isinstance(hp["lambd"], (int, float)) else 0.5
    other.iloc[hp_at, other.columns.get_loc("case.hparams")] = json.dumps(hp)
    fresh_other = rows(other)
    with C.remembering():
        rows(changed)
        assert rows(other) == fresh_other


def test_only_the_studies_asked_for(frames):
    _, after = frames
    with C.remembering():
        assert rows(after, studies=["sfrik"]) == rows(after, studies=["sfrik"])
        assert rows(after) == [r for name in R.STUDIES for r in rows(after, studies=[name])]


def _arms(rng: random.Random) -> list[C.Arm]:
    out = []
    for _ in range(60):
        n = rng.choice((0, 1, 2, 3, 5))
        vals = tuple(rng.choice((rng.gauss(70, 2), 70.0, -0.0, 0.0)) for _ in range(n))
        out.append(C.Arm(float(np.mean(vals)) if n else math.nan, float(np.std(vals, ddof=1)) if n > 1 else math.nan,
                         n, n + rng.choice((0, 1)), rng.choice((math.nan, 10.0, 80.0)), vals))
    return out


def test_kept_comparisons_are_the_comparisons():
    rng = random.Random(4)
    arms = _arms(rng)
    pairs = [(rng.choice(arms), rng.choice(arms), rng.choice((1.0, 2.0))) for _ in range(300)]
    want = [(C.decide_comparable(a, b, m), C.decide_better(a, b, m)) for a, b, m in pairs]
    with C.remembering():
        for _ in range(2):  # the second time, every one is kept
            got = [(C.comparable(a, b, m), C.better(a, b, m)) for a, b, m in pairs]
            assert got == want
    # a caller's copy: changing it changes nothing kept
    with C.remembering():
        d = C.comparable(*pairs[0])
        d.figures = "changed"
        assert C.comparable(*pairs[0]) == want[0][0]
    # -0.0 and 0.0 are different inputs (their means print apart)
    z, nz = C.Arm(0.0, math.nan, 1, 1, math.nan, (0.0,)), C.Arm(-0.0, math.nan, 1, 1, math.nan, (-0.0,))
    with C.remembering():
        C.comparable(z, z)
        assert C.comparable(nz, z) == C.decide_comparable(nz, z)


def test_row_hashes_tell_apart_what_a_rule_tells_apart():
    t = pd.DataFrame({"x": [1, "1", 1.0, True, None, float("nan"), {"a": 1}, {"a": 1.0}, {"a": 1}],
                      "y": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]})
    with C.shared_runs():
        h = C.row_hashes(t)
    assert len(set(h[:8].tolist())) == 8 and h[6] == h[8]
    u = t.assign(y=[0.0, -0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    with C.shared_runs():
        hu = C.row_hashes(u)
    assert hu[0] == h[0] and hu[1] != h[1] and hu[2] != h[2]


def test_row_hashes_of_typed_columns_tell_values_apart():
    t = pd.DataFrame({"when": pd.to_datetime(["2026-01-01", None, "2026-01-02", "2026-01-01"], utc=True),
                      "text": pd.array(["a", None, "b", "a"], dtype="string"),
                      "mixed": pd.Series(["a", "a", None, "a"], dtype=object)})
    with C.shared_runs():
        h = C.row_hashes(t)
    assert len(set(h[:3].tolist())) == 3 and h[0] == h[3]
    with C.shared_runs():
        nan = t.assign(mixed=pd.Series(["a", "a", float("nan"), "a"], dtype=object))
        assert C.row_hashes(nan)[2] != h[2]  # None and NaN held as objects: apart


@pytest.mark.parametrize("x, x_min", [("dim", C.FIT_D_MIN), ("batch", None)])
def test_the_fits_of_the_series_read_are_those_of_the_whole_table(frames, x, x_min):
    _, after = frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = C.usable_records(after)
    with C.shared_runs():
        whole = C.scaling(df, x, x_min)
        labels = sorted(whole["label"].unique())[:3] + ["sfrik", "no such series"]
        mine = C.scaling(df, x, x_min, labels)
    assert len(mine) and len(mine) < len(whole)
    want = whole[whole["label"].isin(labels)].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), want)


def reference_crossover(df: pd.DataFrame, st) -> list:
    """fft's crossover rows as they were made: each crossing from a selection of the setting's rows per label and
    metric (``sslbench.analysis.crossovers``)."""
    from sslbench.analysis.claims import fft
    b, rows = C.bench_records(df), []
    for key, g in b.groupby(["device_name", "threads", "dtype", "batch", "views"], dropna=False):
        if not all(g["label"].eq(x).any() for pair in fft.FFT_PAIRS for x in pair) or g["dim"].nunique() < 3:
            continue
        found = [fft._crossing(g, a, c, y, unit) for a, c in fft.FFT_PAIRS
                 for y, unit in (("time_s", "time"), ("memory_bytes", "memory"))]
        rows.append((C.combine([v for v, _ in found]), "; ".join(f for _, f in found), fft._cost_setting(*key)))
    return rows


def test_crossover_rows_are_those_of_a_selection_per_label(frames):
    from sslbench.analysis.claims import fft
    _, after = frames
    planted = after.copy()
    bench = np.flatnonzero(planted["kind"].isin(["regularizer_bench", "side_by_side"]).to_numpy())
    rng = np.random.default_rng(0)
    for col, value in (("views", np.nan), ("time_s", np.nan), ("memory_bytes", -1.0), ("dim", np.nan)):
        at = rng.choice(bench, size=len(bench) // 20, replace=False)
        planted.iloc[at, planted.columns.get_loc(col)] = value
    # one whole setting without V: its key holds NaN (NaN != NaN: its curves must still be found)
    batch = planted["batch"].to_numpy()
    whole = bench[batch[bench] == pd.Series(batch[bench]).mode().iloc[0]]
    planted.iloc[whole, planted.columns.get_loc("views")] = np.nan
    st = R.STUDIES["fft"]
    for df in (after, planted):
        with C.shared_runs():
            got = [(v.verdict, v.figures, v.setting) for v in fft._crossover(df, st)]
            want = reference_crossover(df, st)
        assert got == want and len(want) >= 2
    assert any("V=nan" in r[2] or "V=n/a" in r[2] or "V=None" in r[2] for r in want), [r[2] for r in want]


def test_remembering_stays_on_while_any_session_is_inside():
    """Two sessions' blocks (threads of one server) that end in the other order: kept on until both ended."""
    a, b = C.remembering(), C.remembering()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert C._KEPT is not None
    b.__exit__(None, None, None)
    assert C._KEPT is None
