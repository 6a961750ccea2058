"""load._derive computes the row-by-row derivations (series name, setting, device name, commit, created) once
per distinct setting and takes them for every row: the same frame as the definition (the per-row code as it
was, below), on the committed results, a hostile store, and columns whose values are equal as keys but not as
labels (1, 1.0, True), None beside NaN, values that cannot be keys, text columns and object columns."""

import itertools
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import results_fixtures as F
from sslbench.analysis import load
from sslbench.analysis.common import column
from sslbench.analysis.load import (
    _BASE_COLUMNS,
    _MEMORY_METRICS,
    _PEAK_METRICS,
    SCALING_KINDS,
    _first_of,
    _hparams_text,
    _label,
    _memo,
    _parse_contender,
)

ROOT = Path(__file__).resolve().parent.parent


def _derive_definition(df: pd.DataFrame) -> pd.DataFrame:
    """Add :data:`DERIVED_COLUMNS` (and the base columns, for an empty frame) to ``df``, a frame of
    :func:`load_results`' own (no copy: at 10^6 records a copy is a gigabyte)."""
    for name in _BASE_COLUMNS:
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    for name in ("source", "source_type"):
        if name not in df.columns:
            df[name] = pd.Series(dtype=object)
    n = len(df)
    df["created"] = pd.to_datetime(df["created"], utc=True, errors="coerce", format="ISO8601")
    kind = column(df, "kind")
    contender = column(df, "case.contender")
    # one pass over plain lists (never .iloc in a loop), each distinct text parsed once
    kinds, contenders = kind.tolist(), contender.tolist()
    parsed = _memo(_parse_contender, contenders, lambda c: isinstance(c, str))
    reg = column(df, "case.regularizer").astype(object).copy()
    algo = column(df, "case.algorithm").astype(object).copy()
    impl = pd.Series(["sslbench"] * n, index=df.index, dtype=object)
    at = [i for i, c in enumerate(contenders) if isinstance(c, str)]
    if at:
        rows = df.index[at]
        reg.loc[rows] = pd.Series([parsed[i][0] for i in at], index=rows, dtype=object)
        impl.loc[rows] = pd.Series([parsed[i][2] for i in at], index=rows, dtype=object)
        with_algo = [i for i in at if parsed[i][1] is not None]
        if with_algo:
            algo.loc[df.index[with_algo]] = pd.Series([parsed[i][1] for i in with_algo], index=df.index[with_algo],
                                                      dtype=object)
    reg = reg.where(reg.notna(), None)
    algo = algo.where(algo.notna(), None)
    hp = _memo(_hparams_text, column(df, "case.hparams").tolist(), None)
    hp = [h if k in SCALING_KINDS else None for k, h in zip(kinds, hp)]
    regs, algos = reg.tolist(), algo.tolist()
    benches, names = column(df, "case.benchmark").tolist(), column(df, "case.name").tolist()
    labels, memo = [], {}
    for row in zip(kinds, contenders, regs, algos, benches, names, hp):
        # a few distinct settings among many rows: each labelled once (the types of the two values that can become
        # the label itself are part of the key: 1, 1.0 and True are equal keys but not the same label)
        key = (*row, type(row[4]), type(row[5]))
        try:
            label = memo[key]
        except KeyError:
            label = memo[key] = _label(*row)
        except TypeError:  # a value that cannot be a key
            label = _label(*row)
        labels.append(label)
    df["label"] = pd.Series(labels, index=df.index, dtype=object)
    df["regularizer"] = reg
    df["algorithm"] = algo
    df["impl"] = impl
    df["hparams"] = pd.Series(hp, index=df.index, dtype=object)
    for name in ("dim", "batch", "views"):
        df[name] = pd.to_numeric(column(df, f"case.{name}"), errors="coerce")
    df["device"] = column(df, "case.device")
    device_name = column(df, "env.device_name").astype(object).copy()
    for fallback in ("env.cpu_model", "env.machine", "case.device"):
        device_name = device_name.where(device_name.notna(), column(df, fallback))
    df["device_name"] = device_name
    df["threads"] = pd.to_numeric(column(df, "env.threads"), errors="coerce")
    df["dtype"] = column(df, "case.dtype")
    commit = column(df, "case.commit").astype(object)
    df["commit"] = commit.where(commit.notna(), column(df, "env.git_commit"))
    df["time_s"] = pd.to_numeric(column(df, "metrics.time_median_s"), errors="coerce")
    mem, which = _first_of(df, [f"metrics.{m}" for m in _MEMORY_METRICS])
    df["memory_bytes"], df["memory_metric"] = mem, which
    df["peak_bytes"] = _first_of(df, [f"metrics.{m}" for m in _PEAK_METRICS])[0]
    if n and "metrics.value" in df.columns:  # asv: a time_ benchmark is a time, a peakmem_ one a memory figure
        bench = column(df, "case.benchmark").astype(str)
        value = pd.to_numeric(df["metrics.value"], errors="coerce")
        is_asv = kind == "asv"
        t = is_asv & bench.str.contains(r"(?:^|\.)time_", regex=True)
        m = is_asv & bench.str.contains(r"(?:^|\.)peakmem_", regex=True)
        df.loc[t, "time_s"] = value[t]
        df.loc[m, "peak_bytes"] = value[m]
    return df


def _same(df: pd.DataFrame) -> None:
    new = load._derive(df.copy())
    old = _derive_definition(df.copy())
    pd.testing.assert_frame_equal(new, old)
    for name in ("label", "regularizer", "algorithm", "hparams", "device_name", "commit"):
        for a, b in zip(new[name].tolist(), old[name].tolist()):  # the same objects' types (1 is not 1.0)
            assert type(a) is type(b), (name, a, b)


def test_derive_is_the_definition_on_the_committed_results_and_a_hostile_store(tmp_path, monkeypatch):
    root = tmp_path / "results"
    shutil.copytree(ROOT / "results", root, ignore=shutil.ignore_patterns("checkpoints", "runs"))
    F.write_results(tmp_path / "fixture")
    shutil.copytree(tmp_path / "fixture", root / "fixture")
    from test_columnar import HOSTILE
    (root / "hostile.jsonl").write_text("\n".join(HOSTILE))
    monkeypatch.setattr(load, "_derive", lambda df: df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = load.load_results(root, asv=[])
        raw_asv = load.load_results(root)
    monkeypatch.undo()
    assert len(raw) > 400 and raw["kind"].nunique() > 2
    _same(raw)
    _same(raw_asv)
    for columns in (["case.", "metrics."], ["kind"]):
        _same(raw[[c for c in raw.columns if c.startswith(tuple(columns)) or c in _BASE_COLUMNS]])


def test_derive_is_the_definition_on_values_equal_as_keys_but_not_as_labels():
    values = {"kind": ["asv", "regularizer_bench", "train", None], "case.contender": [None, np.nan, "official_vicreg",
                                                                                       "vicreg[gram]"],
              "case.regularizer": [None, "vicreg", 1, np.nan], "case.algorithm": [None, "gram", ""],
              "case.hparams": [None, "{}", '{"a": 1}', '{"a": 1.0}', "not json"],
              "case.benchmark": [None, 1, 1.0, True, np.nan, "bench.time_x"],
              "case.name": [None, 1, 1.0, True, 0, np.nan, "", "named", ["a", "list"]]}
    rows = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    df = pd.DataFrame(rows * 2, dtype=object)  # each setting twice
    df["created"] = "2026-11-28T09:22:21+00:00"
    df["env.device_name"] = [None, np.nan, "gpu", 1][: 1] * len(df)
    df["env.cpu_model"] = (["cpu", None, np.nan] * len(df))[: len(df)]
    df["case.device"] = (["cuda", 1, 1.0, True, None] * len(df))[: len(df)]
    df["case.commit"] = ([None, "abc", np.nan] * len(df))[: len(df)]
    df["env.git_commit"] = (["c1", np.nan, None, 2] * len(df))[: len(df)]
    assert len(df) > 5000
    _same(df)
    # the same values in text columns (pandas' str dtype: NaN, no None), shuffled
    text = df.sample(frac=1, random_state=0).reset_index(drop=True)
    for name in ("kind", "case.contender", "case.algorithm", "case.hparams", "env.cpu_model", "case.commit"):
        text[name] = text[name].astype("str").where(text[name].notna())
    _same(text)


@pytest.mark.parametrize("created", [["2026-11-28T09:22:21+00:00", None, "not a date", "2026-11-28T09:22:21.123456Z"],
                                     [None, None], ["2026-01-01"] * 3, []])
def test_created_is_parsed_as_before(created):
    df = pd.DataFrame({"created": pd.Series(created, dtype="str"), "kind": pd.Series(["train"] * len(created),
                                                                                    dtype="str")})
    _same(df)
    _same(df.astype(object))


def test_an_empty_frame():
    _same(pd.DataFrame())
