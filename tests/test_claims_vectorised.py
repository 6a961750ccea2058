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
