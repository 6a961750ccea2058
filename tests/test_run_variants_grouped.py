"""accuracy.run_variants groups once per regularizer (issue 21 item 3): its labels equal, run for run, those of the
former per-run definition (kept below as the reference, written from the docstring: for each run, the settings of
every run of its regularizer, the keys whose values differ among the runs that have them, those the run has)."""

import json
import math
import random

import pandas as pd
import pytest

from sslbench import analysis as A
from sslbench.analysis.accuracy import _ABSENT_MEANS, VARIANT_KEYS, _hparam_dict, _short
from sslbench.analysis.common import column
from sslbench.records.constants import DEFAULT_PREDICTOR_HIDDEN, UNNAMED_PREDICTOR_REGULARIZERS


def reference_run_variants(runs: pd.DataFrame) -> pd.Series:
    """The quadratic definition: for every run, rebuild the list of all runs of its regularizer."""
    if runs.empty:
        return pd.Series([], index=runs.index, dtype=object)
    reg = column(runs, "case.regularizer").astype(str)
    hps = [_hparam_dict(v) for v in column(runs, "case.hparams")]
    settings = []
    for i, idx in enumerate(runs.index):
        d = {**_ABSENT_MEANS, **{f"hp:{k}": v for k, v in hps[i].items()}}
        if reg.iloc[i] in UNNAMED_PREDICTOR_REGULARIZERS:
            d["predictor_hidden"] = DEFAULT_PREDICTOR_HIDDEN
        for k in VARIANT_KEYS:
            v = runs.at[idx, f"case.{k}"] if f"case.{k}" in runs.columns else None
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                d[k] = v
            else:
                d.setdefault(k, None)
        settings.append(d)
    labels = []
    for i in range(len(runs)):
        same = [settings[j] for j in range(len(settings)) if reg.iloc[j] == reg.iloc[i]]
        keys = sorted({k for d in same for k in d})
        varying = [k for k in keys if len({json.dumps(d[k], sort_keys=True, default=str) for d in same if k in d}) > 1
                   and k in settings[i]]
        parts = [f"{k.removeprefix('hp:')}={_short(settings[i].get(k))}" for k in varying]
        labels.append(reg.iloc[i] + (f" ({', '.join(parts)})" if parts else ""))
    return pd.Series(labels, index=runs.index, dtype=object)


def _random_runs(rng: random.Random, n: int) -> pd.DataFrame:
    """Runs with the docstring's edge cases mixed in: failure records lacking hyper-parameters (the sweep's),
    the variance add-on on and off (absent = off), byol records without a predictor width (the default),
    grad_clip set on some runs only, hparams as dicts, JSON text, broken text and None, NaN settings."""
    regs = ["vicreg", "barlow_twins", "byol", "sfrik", "fft_bt"]
    rows = []
    for _ in range(n):
        r = rng.choice(regs)
        hp = {}
        if rng.random() < 0.8:  # else a failure record that carries no hyper-parameter of this one
            hp["coeff"] = rng.choice([1.0, 25.0])
        if rng.random() < 0.3:
            hp["variance_coeff"] = rng.choice([0.0, 1.0])
        if r == "sfrik" and rng.random() < 0.5:
            hp["degree"] = rng.choice([2, 3])
        form = rng.random()
        hparams = hp if form < 0.5 else json.dumps(hp) if form < 0.8 else rng.choice([None, "not json", "[1]"])
        row = {"kind": "train", "status": rng.choice(["ok", "diverged"]), "case.regularizer": r,
               "case.hparams": hparams, "case.seed": rng.randrange(3)}
        if rng.random() < 0.9:
            row["case.lr"] = rng.choice([0.03, 0.1]) if r != "barlow_twins" else 0.03
        if r == "byol":
            row["case.ema_tau"] = rng.choice([0.0, 0.99])
            row["case.predictor_hidden"] = rng.choice([None, 512, 0, float("nan")])
        if rng.random() < 0.2:
            row["case.grad_clip"] = rng.choice([1.0, 5.0])
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(6))
def test_grouped_run_variants_equal_the_per_run_definition(seed):
    rng = random.Random(seed)
    runs = _random_runs(rng, rng.choice([1, 7, 40, 300]))
    runs.index = rng.sample(range(10_000), len(runs))  # a filtered frame keeps its original, unordered index
    got = A.run_variants(runs)
    want = reference_run_variants(runs)
    assert got.index.tolist() == want.index.tolist()
    assert got.tolist() == want.tolist()
    assert len(set(want)) > 1 or len(runs) == 1  # the case mix gives variants, so the comparison means something


def test_grouped_run_variants_edge_cases_of_the_docstring():
    rows = [  # a failure record without the sweep's hyper-parameter does not split the variant off
        {"case.regularizer": "vicreg", "case.hparams": {"std_coeff": 25.0}, "case.lr": 0.03},
        {"case.regularizer": "vicreg", "case.hparams": {"std_coeff": 0.0}, "case.lr": 0.03},
        {"case.regularizer": "vicreg", "case.hparams": {}, "case.lr": 0.03},
        # grad_clip recorded only when set: absent is a value of its own
        {"case.regularizer": "sfrik", "case.hparams": {}, "case.grad_clip": 1.0},
        {"case.regularizer": "sfrik", "case.hparams": {}},
        # the variance add-on absent means off
        {"case.regularizer": "barlow_twins", "case.hparams": {"variance_coeff": 1.0}},
        {"case.regularizer": "barlow_twins", "case.hparams": {}},
        # byol without a predictor width is the default one
        {"case.regularizer": "byol", "case.hparams": {}, "case.predictor_hidden": None},
        {"case.regularizer": "byol", "case.hparams": {}, "case.predictor_hidden": 512},
    ]
    runs = pd.DataFrame(rows)
    got = A.run_variants(runs).tolist()
    assert got == reference_run_variants(runs).tolist()
    assert got[:7] == ["vicreg (std_coeff=25)", "vicreg (std_coeff=0)", "vicreg",
                       "sfrik (grad_clip=1)", "sfrik (grad_clip=-)",
                       "barlow_twins (variance_coeff=1)", "barlow_twins (variance_coeff=0)"]
    assert got[7] == got[8]  # the unnamed predictor is the default width: one variant
    assert A.run_variants(runs.iloc[:0]).empty


def test_runs_that_share_a_setting_by_equality_only_keep_their_own_labels():
    """Each distinct setting is labelled once: values equal to Python but not alike (1, 1.0 and True; -0.0 and 0.0;
    NaN and None; a dict and its JSON text) must not share a label unless the per-run definition gives them one."""
    rows = []
    for i, (lr, clip, hp) in enumerate([(1, None, {"coeff": 1}), (1.0, float("nan"), '{"coeff": 1.0}'),
                                        (True, None, {"coeff": 1}), (-0.0, 5.0, '{"coeff": 1}'),
                                        (0.0, 5.0, {"coeff": -0.0}), (1, None, {"coeff": 1})] * 3):
        rows.append({"kind": "train", "status": "ok", "case.regularizer": "vicreg" if i % 2 else "byol",
                     "case.lr": lr, "case.grad_clip": clip, "case.hparams": hp, "case.seed": i})
    runs = pd.DataFrame(rows).astype({"case.lr": object, "case.grad_clip": object})
    got, want = A.run_variants(runs), reference_run_variants(runs)
    assert got.tolist() == want.tolist()
    assert len(set(want)) > 4  # the values were told apart
