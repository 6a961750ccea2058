"""The claims' run tables column by column (issue 21, item 3): ``train_runs``' identity of a run, ``groups``' and the
views study's setting keys and ``usable_records``' screening give, on varied data (NaNs, absent fields, strings where
numbers belong, hyper-parameters as text, as dicts, unreadable), exactly what the former row-by-row definitions gave.
Those definitions are kept below as the references, as they were written in sslbench.analysis.claims.common."""

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
from sslbench.analysis.claims import common as C  # noqa: E402
from sslbench.analysis.claims import stats as S  # noqa: E402


# ---- the references: the row-by-row definitions these replace ------------------------------------------------
def reference_identity(out: pd.DataFrame) -> pd.Series:
    return out.apply(lambda r: json.dumps([str(r.get(k)) for k in C.SETTING + ("regularizer", "seed", "ema_tau",
                                                                                "warmup_epochs", "predictor_hidden")]
                                          + [r["hp"]], sort_keys=True, default=str), axis=1)


def reference_usable(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    metrics = [c for c in df.columns if c.startswith("metrics.")]
    bad, said = [], []
    for kind, case_fields in C.NUMERIC_CASE.items():
        fields = [f"case.{k}" for k in case_fields if f"case.{k}" in df.columns] + metrics
        for idx, row in df[df["kind"] == kind].iterrows():
            problem = C._first_non_number(row, fields)
            if problem:
                said.append(f"{C.describe_record(row)}: {problem} is not a number; skipped")
                bad.append(idx)
    return (df.drop(index=bad).infer_objects() if bad else df), said


def reference_view_keys(runs: pd.DataFrame) -> list[tuple]:
    nov = [k for k in C.SETTING if k not in ("views", "fraction")]
    runs = runs.assign(_lambd=runs["hp"].map(lambda h: h.get("lambd")))
    return list(runs.apply(lambda r: tuple(None if C.isnan(x) else x for x in
                                           [r.get(k) for k in nov] + [r["regularizer"], r["_lambd"]]), axis=1))


# ---- varied data ---------------------------------------------------------------------------------------------
def _odd(records: list[dict], rng: random.Random) -> list[dict]:
    """Records of the store with odd values planted: NaN and absent case fields, hyper-parameters as a dict, as
    unreadable text, with a string where a number belongs, a string metric, a duplicated run recorded later."""
    out = []
    for i, r in enumerate(records):
        r = json.loads(json.dumps(r))
        case, m = r.setdefault("case", {}), r.setdefault("metrics", {})
        roll = rng.random()
        if roll < 0.05:
            case["lr"] = float("nan")
        elif roll < 0.10:
            case.pop("dim", None)
        elif roll < 0.13:
            case["hparams"] = "{not json"
        elif roll < 0.16 and r.get("kind") == "train":
            case["hparams"] = json.dumps({"lambd": "big", "std_coeff": 25})
        elif roll < 0.19:
            m["linear_top1"] = "n/a"
        elif roll < 0.22:
            case["epochs"] = "four"
        elif roll < 0.25:
            case["warmup_epochs"] = None
        elif roll < 0.28 and out:
            dup = json.loads(json.dumps(out[-1]))
            dup["id"], dup["created"] = f"dup{i}", "2027-01-01T00:00:00+00:00"
            out.append(dup)
        out.append(r)
    return out


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("vectorised")
    pool = scale.committed_records(ROOT / "results")
    scale.make_store(pool, 2500, root / "s", seed=11)
    rng = random.Random(5)
    store = root / "s" / "sweeps" / "night-00000.jsonl"
    recs = [json.loads(x) for x in store.read_text().splitlines()]
    store.write_text("".join(json.dumps(r) + "\n" for r in _odd(recs, rng)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = A.load_results(root, asv=[])
    assert (df["kind"] == "train").sum() > 300
    return df


def _as_dicts(df: pd.DataFrame) -> pd.DataFrame:
    """The same runs with ``case.hparams`` parsed into dicts for some rows (a reader may give either)."""
    df = df.copy()
    hp = df["case.hparams"].astype(object)
    df["case.hparams"] = [C.hparams_of(v) if i % 4 == 0 and isinstance(v, str) else v for i, v in enumerate(hp)]
    return df


# ---- the tests -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dicts", [False, True])
def test_train_runs_deduplicates_as_the_row_by_row_identity(frame, dicts):
    df = _as_dicts(frame) if dicts else frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        usable = C.usable_records(df)
    got = C.train_runs(usable)
    table, raw = C._train_table(usable)
    assert raw == usable.loc[usable["kind"] == "train", "case.hparams"].tolist()
    ident_new = C.run_identity(table, raw)
    ident_ref = reference_identity(table)
    # the same partition of the runs: two rows share a new identity exactly when they share the reference one
    new_codes = pd.factorize(pd.Series(ident_new, dtype=object))[0]
    ref_codes = pd.factorize(ident_ref)[0]
    assert len(set(zip(new_codes, ref_codes))) == len(set(new_codes)) == len(set(ref_codes))
    assert len(set(ref_codes)) < len(ref_codes)  # the planted duplicates were found
    ref = table.assign(_ident=ident_ref).sort_values("created", na_position="first", kind="stable")
    ref = ref.drop_duplicates("_ident", keep="last").drop(columns="_ident")
    pd.testing.assert_frame_equal(got, ref)


def test_groups_keys_are_the_row_by_row_setting_keys(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = C.train_runs(C.usable_records(frame))
    assert runs[list(C.SETTING)].isna().any().any()  # NaNs in the keys
    assert C.setting_keys(runs) == list(runs.apply(C.setting_key, axis=1))
    nov = [k for k in C.SETTING if k not in ("views", "fraction")]
    lam = runs.assign(_lambd=runs["hp"].map(lambda h: h.get("lambd")))
    assert C.setting_keys(lam, [*nov, "regularizer", "_lambd"]) == reference_view_keys(runs)
    assert len(C.groups(runs)) > 1
    # a frame without some of the setting's columns: None in their place, as row.get gave
    part = runs.drop(columns=["projector", "lr"])
    assert C.setting_keys(part) == list(part.apply(C.setting_key, axis=1))


@pytest.mark.parametrize("dicts", [False, True])
def test_usable_records_screens_as_the_row_by_row_definition(frame, dicts):
    df = _as_dicts(frame) if dicts else frame
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = C.usable_records(df)
    ref, said = reference_usable(df)
    assert [str(w.message) for w in caught] == said
    assert len(said) > 10 and any("hyper-parameter lambd" in s for s in said)
    pd.testing.assert_frame_equal(got, ref)


def test_usable_records_on_a_frame_without_problems_is_the_frame(frame):
    clean = frame[frame["kind"] == "regularizer_bench"].copy()
    clean = clean[[c for c in clean.columns if not c.startswith("metrics.") or clean[c].dtype.kind == "f"]]
    clean = clean[pd.to_numeric(clean["case.dim"], errors="coerce").notna() | clean["case.dim"].isna()]
    clean["case.dim"] = pd.to_numeric(clean["case.dim"], errors="coerce")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = C.usable_records(clean)
    assert not caught and got is clean
    assert np.isnan(clean["case.dim"]).any() or math.isfinite(clean["case.dim"].iloc[0])


def reference_arm(rows: pd.DataFrame, metric: str = "linear_top1") -> C.Arm:
    if "status" in rows.columns:
        rows = rows[~rows["status"].isin(C.PENDING_STATUSES)]
    ok = rows[rows["ok"]]
    vals = ok[metric].to_numpy(float)
    vals = vals[np.isfinite(vals)]
    init_col = C.INIT_METRIC.get(metric)
    init = ok[init_col].to_numpy(float) if init_col in ok.columns else np.array([])
    init = init[np.isfinite(init)]
    return C.Arm(float(vals.mean()) if vals.size else math.nan, float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
                 int(vals.size), int(len(rows)), float(init.mean()) if init.size else math.nan,
                 tuple(float(v) for v in vals))


def test_arm_is_the_arm_of_the_selected_rows(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = C.train_runs(C.usable_records(frame))
    runs = runs.assign(status=np.where(np.arange(len(runs)) % 7 == 0, "interrupted", runs["status"]))
    checked = 0
    for _, g in C.groups(runs):
        for metric in ("linear_top1", "knn_top1", "final_loss"):
            assert C.arm(g, metric) == reference_arm(g, metric) or (
                repr(C.arm(g, metric)) == repr(reference_arm(g, metric)))  # NaN fields compare by their text
            checked += 1
    assert checked > 30
    assert repr(C.arm(runs.drop(columns="status"))) == repr(reference_arm(runs.drop(columns="status")))


def reference_seeds_to_settle(c, boundary, one_sided=False, power=S.POWER, max_seeds=S.MAX_SEEDS):
    gap = abs(c.diff - boundary)
    if not (math.isfinite(gap) and math.isfinite(c.sd)):
        return None
    if c.sd == 0.0:
        return 2 if gap > 0 else None
    level = 1 - c.alpha if one_sided else 1 - c.alpha / 2
    paired_ = c.method == "paired"
    va, vb = (c.var_test, c.var_ref) if math.isfinite(c.var_test) and math.isfinite(c.var_ref) else (c.sd ** 2,) * 2
    for n in range(2, max_seeds + 1):
        if paired_:
            df, se = n - 1, c.sd / math.sqrt(n)
        else:
            df = (va + vb) ** 2 * (n - 1) / (va ** 2 + vb ** 2)
            se = math.sqrt((va + vb) / n)
        if (S.t_ppf(level, df) + S.t_ppf(power, df)) * se <= gap:
            return n
    return None


def test_seeds_to_settle_finds_the_first_n_that_trying_every_n_found():
    rng = random.Random(3)
    found = set()
    for i in range(300):
        na, nb = rng.randint(1, 6), rng.randint(1, 6)
        spread = rng.choice((0.05, 0.3, 1.0, 3.0))
        a = [rng.gauss(rng.uniform(-3, 3), spread) for _ in range(na)]
        b = [rng.gauss(0, spread * rng.uniform(0.2, 3)) for _ in range(nb)]
        c = S.welch(a, b) if i % 3 else S.paired(a[:min(na, nb)], b[:min(na, nb)])
        for boundary in (1.0, -1.0, 2.0, c.diff + 0.01 if math.isfinite(c.diff) else 0.5):
            for one_sided in (False, True):
                for max_seeds in (S.MAX_SEEDS, 2, 1, 7):
                    want = reference_seeds_to_settle(c, boundary, one_sided, max_seeds=max_seeds)
                    assert S.seeds_to_settle(c, boundary, one_sided, max_seeds=max_seeds) == want, (c, boundary)
                    found.add(want)
    assert None in found and 2 in found and any(isinstance(n, int) and n > 10 for n in found)


# ---- the arms as masks over one setting's arrays (ArmTable) ---------------------------------------------------
def _runs(frame: pd.DataFrame) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = C.train_runs(C.usable_records(frame))
    # pending seeds among them (an interrupted run is not a failed seed)
    return runs.assign(status=np.where(np.arange(len(runs)) % 7 == 0, "interrupted", runs["status"]))


def test_arm_table_is_the_arm_of_the_selected_frame(frame):
    runs = _runs(frame)
    rng = np.random.default_rng(3)
    checked = 0
    for _, g in C.groups(runs):
        t = C.ArmTable(g)
        masks = [None, np.zeros(len(g), bool), rng.random(len(g)) < 0.5, g["regularizer"].to_numpy(object) == "vicreg"]
        for mask in masks:
            for metric in ("linear_top1", "knn_top1", "final_loss", "std_normalized"):
                rows = g if mask is None else g[mask]
                assert repr(t.arm(mask, metric)) == repr(reference_arm(rows, metric))  # NaN fields by their text
                if mask is not None:  # the same rows given by their positions
                    assert repr(t.arm(np.flatnonzero(mask), metric)) == repr(reference_arm(rows, metric))
                checked += 1
    assert checked > 100
    part = runs.drop(columns=["status", "init_linear_top1"])
    assert repr(C.ArmTable(part).arm()) == repr(reference_arm(part))
    with pytest.raises(KeyError):
        C.ArmTable(part).arm(None, "no_such_metric")


class _FramePerArm(C.ArmTable):
    """The former definition: a frame of the selected rows per arm (``arm(g[mask], metric)``)."""

    def arm(self, mask=None, metric="linear_top1"):
        if mask is None:
            return C.arm(self.rows, metric)
        return C.arm(self.rows.iloc[mask] if mask.dtype.kind in "iu" else self.rows[mask], metric)  # positions


def _verdict_rows(df: pd.DataFrame) -> list[tuple]:
    from sslbench.analysis import report
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [tuple(vars(v).values()) for v in report.verdicts(df)]


def test_studies_give_the_verdicts_of_a_frame_per_arm(frame, monkeypatch):
    from sslbench.analysis.claims import fft, isoloss, sfrik, variance, views
    got = _verdict_rows(frame)
    for mod in (C, fft, isoloss, sfrik, variance, views):
        if hasattr(mod, "ArmTable"):
            monkeypatch.setattr(mod, "ArmTable", _FramePerArm)
    assert _verdict_rows(frame) == got
    studies = {r[0] for r in got if r[2] != "no data"}
    assert {"fft", "sfrik", "views", "variance", "isoloss"} <= studies
    assert any(r[1] in (variance.CLAIM_COLLAPSE, variance.CLAIM_ACCURACY) and "variance_coeff" in r[3] for r in got)


def test_the_training_run_table_is_built_once_per_report(frame, monkeypatch):
    from sslbench.analysis import report
    built = []
    real = C._train_runs
    monkeypatch.setattr(C, "_train_runs", lambda df: built.append(1) or real(df))
    got = _verdict_rows(frame)
    assert len(built) == 1
    # each study on its own (a table of its own, as before): the same rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = C.usable_records(frame)
        alone = []
        for name in report.STUDIES:
            with C.shared_runs():
                alone += [tuple(vars(v).values()) for v in report.verdicts(df, [name])]
    assert alone == got
    assert C.train_runs(df) is not C.train_runs(df)  # outside a report: a table per call


# ---- the fft study's accuracy rows: the former definition (a frame per coefficient set and per arm) ------------
def reference_fft_arms(g, key, st, claim, claim_p):
    from sslbench.analysis.claims import fft as F
    out = []
    reg, perm, dv = g["regularizer"].to_numpy(dtype=object), g["_perm"].to_numpy(dtype=bool), \
        C.default_variance(g).to_numpy(dtype=bool)
    rows = {}
    for name in ("barlow_twins_fft", "vicreg_fft", "barlow_twins", "vicreg"):
        mine = reg == name
        if mine.any():
            rows[name] = {"relaxed": g[mine & perm & dv], "exact": g[mine & dv], "permute": g[mine & perm],
                          "no permute": g[mine & ~perm]}
    empty = g.iloc[0:0]

    def sel(name, which):
        return rows[name][which] if name in rows else empty

    for metric, margin, suffix in F.METRICS:
        what = "kNN top-1" if metric == "knn_top1" else "linear top-1"
        for relaxed, exact in (("barlow_twins_fft", "barlow_twins"), ("vicreg_fft", "vicreg")):
            gr, ge = sel(relaxed, "relaxed"), sel(exact, "exact")
            if gr.empty or ge.empty:
                continue
            a, b = C.arm(gr, metric), C.arm(ge, metric)
            if metric != "linear_top1" and (a.n == 0 or b.n == 0):
                continue
            d = C.comparable(a, b, margin)
            out.append(C.Verdict(st.name, claim + suffix, d.verdict, f"{relaxed} {a.text()} vs {exact} {b.text()}"
                                 f"{F._coeff_text(gr['hp'].iloc[0])}: {d.figures}" + C.settle_note(d),
                                 C.rule_comparable(margin, what), st.settle(d, key, relaxed, exact),
                                 C.setting_text(key)))
        for relaxed in ("barlow_twins_fft", "vicreg_fft"):
            g1, g0 = sel(relaxed, "permute"), sel(relaxed, "no permute")
            if g1.empty or g0.empty:
                continue
            a, b = C.arm(g1, metric), C.arm(g0, metric)
            if metric != "linear_top1" and (a.n == 0 or b.n == 0):
                continue
            d = C.better(a, b, margin)
            out.append(C.Verdict(st.name, claim_p + " [training]" + suffix, d.verdict, f"{relaxed} permute {a.text()} "
                                 f"vs no permute {b.text()}: {d.figures}" + C.settle_note(d),
                                 C.rule_better(margin, what), st.settle(d, key, relaxed), C.setting_text(key)))
    return out


def reference_unpaired(g, key, st, claim):
    from sslbench.analysis.claims import fft as F

    def coeffs_of(rows):
        vals = sorted({f"{k} {C.num(h[k])}" for h in rows["hp"] for k in F._FFT_COEFFS if h.get(k) is not None})
        return f" at {', '.join(vals)}" if vals else ""

    out = []
    for relaxed, exact in (("barlow_twins_fft", "barlow_twins"), ("vicreg_fft", "vicreg")):
        mine_r = g[(g["regularizer"] == relaxed) & C.default_variance(g)]
        mine_e = g[(g["regularizer"] == exact) & C.default_variance(g)]
        cr, ce = set(mine_r["_coeffs"]), set(mine_e["_coeffs"])
        if cr and ce and not cr & ce:
            out.append(C.Verdict(st.name, claim, "no data", f"{relaxed} ran{coeffs_of(mine_r)} and {exact}"
                                 f"{coeffs_of(mine_e)}, never at equal coefficients: run {exact} at {relaxed}'s",
                                 F.RULE_COMPARABLE, st.command(), C.setting_text(key)))
    return out


def _fft_runs(runs: pd.DataFrame) -> pd.DataFrame:
    runs = C.as_published(runs)
    return runs.assign(_perm=runs["hp"].map(lambda h: bool(h.get("permute", True))),
                       _coeffs=runs["hp"].map(lambda h: json.dumps([h.get(k) for k in
                                                                    ("lambd", "scale", "sim_coeff", "std_coeff",
                                                                     "cov_coeff")])))


def test_fft_accuracy_rows_are_those_of_a_frame_per_coefficient_set(frame):
    from sslbench.analysis import report
    from sslbench.analysis.claims import fft as F
    st = report.STUDIES["fft"]
    runs = _runs(frame)
    # coefficient sets that never meet (the unpaired rows) and several per setting
    hp = runs["hp"].tolist()
    runs["hp"] = [dict(h, lambd=0.02) if i % 5 == 0 and r == "barlow_twins" else h
                  for i, (h, r) in enumerate(zip(hp, runs["regularizer"]))]
    runs = _fft_runs(runs)
    claim, claim_p = "c", "p"
    got, ref, sets = [], [], 0
    whole = F._Runs(runs)
    for key, g in C.groups(runs):
        s = whole.setting(g)
        for within in s.coefficient_sets():
            got += F._fft_arms(s, within, key, st, claim, claim_p)
        got += F._unpaired(s, key, st, claim)
        for _, same in g.groupby("_coeffs", sort=True):
            ref += reference_fft_arms(same, key, st, claim, claim_p)
            sets += 1
        ref += reference_unpaired(g, key, st, claim)
    assert got == ref
    assert sets > len(C.groups(runs))
    assert any(v.verdict != "no data" and v.claim == claim for v in got)
    assert any(v.claim.startswith(claim_p) for v in got)
    assert any(v.verdict == "no data" and "never at equal coefficients" in v.figures for v in got)


def test_narrow_shared_bench_records_give_the_verdicts_of_every_column(frame, monkeypatch):
    from sslbench.analysis.claims import fft, gram
    got = _verdict_rows(frame)
    b = C.bench_records(frame)
    assert set(b.columns) <= set(C.BENCH_COLUMNS) and len(b) == frame["kind"].isin(A.SCALING_KINDS).sum()

    def every_column(df):  # the former definition: the bench rows with every column, once per call
        if df is None or df.empty or "kind" not in df.columns:
            return pd.DataFrame()
        return df[df["kind"].isin(A.SCALING_KINDS)]
    for mod in (C, fft, gram):
        monkeypatch.setattr(mod, "bench_records", every_column)
    assert _verdict_rows(frame) == got
    assert any(r[0] in ("fft", "sfrik", "gram") and r[2] != "no data" and "α" in r[3] for r in got)


# ---- the scaling fits: each group's rows by position, not a frame per group ----------------------------------
def reference_fit_scaling(df, x="dim", y="time_s", by=("kind", "device_name", "label", "batch", "views"), min_points=3,
                          x_min=None, x_max=None):
    from sslbench.analysis import scaling as SC
    by = list(by)
    pts = SC.ok_points(df, x, y)
    if x_min is not None:
        pts = pts[pd.to_numeric(pts[x]) >= x_min]
    if x_max is not None:
        pts = pts[pd.to_numeric(pts[x]) <= x_max]
    cols = by + ["x", "y", "exponent", "prefactor", "r2", "n", "x_min", "x_max"]
    if pts.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in pts.groupby(by, dropna=False, sort=True) if by else [((), pts)]:
        key = key if isinstance(key, tuple) else (key,)
        xs = pd.to_numeric(g[x]).to_numpy(float)
        fit = SC.fit_power_law(xs, pd.to_numeric(g[y]).to_numpy(float), min_points=min_points)
        rows.append((*key, x, y, fit.exponent, fit.prefactor, fit.r2, fit.n, xs.min(), xs.max()))
    return pd.DataFrame(rows, columns=cols)


@pytest.mark.parametrize("x, y, by, x_min", [
    ("dim", "time_s", ("kind", "device_name", "label", "batch", "views"), None),
    ("batch", "memory_bytes", ("kind", "device_name", "threads", "dtype", "label", "dim", "views"), None),
    ("dim", "time_s", ("label",), 512),
    ("dim", "time_s", (), None),
])
def test_fit_scaling_is_the_fit_of_a_frame_per_group(frame, x, y, by, x_min):
    from sslbench.analysis import scaling as SC
    b = frame[frame["kind"].isin(A.SCALING_KINDS)].copy()
    b.loc[b.index[::13], "views"] = np.nan  # NaN in a key: a group of its own (dropna=False)
    b.loc[b.index[::17], "time_s"] = np.nan
    got = SC.fit_scaling(b, x=x, y=y, by=by, x_min=x_min)
    ref = reference_fit_scaling(b, x=x, y=y, by=by, x_min=x_min)
    pd.testing.assert_frame_equal(got, ref)
    assert len(got) > (0 if not by else 3)
