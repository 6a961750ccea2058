"""A new built-in regularizer is its module plus one registry line: every list elsewhere is derived from the
registry's class attributes (``needs_predictor``, ``lambd_one_over_dim``, ``default_lr``, ``eigendecomposes``,
``asv_accuracy``, an ``algorithm`` keyword). A toy class registered at runtime is picked up by each of them; the
derived values of today's built-ins equal the lists that were written out before."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from sslbench import regularizers
from sslbench.records import constants
from sslbench.regularizers import Regularizer, RegularizerOutput
from sslbench.training import config

ROOT = Path(__file__).resolve().parent.parent


def _load(relpath: str, name: str):
    path = ROOT / relpath
    if not path.exists():  # the asv suite may live in a folder of its own below benchmarks/
        path = next(iter(sorted((ROOT / "benchmarks").rglob(Path(relpath).name))))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Toy(Regularizer):
    needs_predictor = True
    lambd_one_over_dim = True
    default_lr = {"sgd": 0.07}
    eigendecomposes = True
    asv_accuracy = True

    def __init__(self, *, lambd: float = 1.0, algorithm: str = "auto", multiview: str = "pairs"):
        super().__init__(multiview=multiview)
        self.lambd, self.algorithm = lambd, algorithm

    def pair(self, za, zb):
        loss = self.lambd * (za - zb).pow(2).mean()
        return RegularizerOutput(loss, {"mse": loss})


@pytest.fixture
def toy(monkeypatch):
    module = types.ModuleType("sslbench.regularizers._toy_derived")
    module.Toy = Toy
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(regularizers._REGISTRY, "toy", "_toy_derived:Toy")  # the one registry line
    return "toy"


def test_the_derived_lists_equal_the_ones_written_out_before():
    assert config.PREDICTOR_REGULARIZERS == ("byol",)
    assert config.LAMBD_ONE_OVER_DIM == ("barlow_twins",)
    assert config.DEFAULT_LR_FOR == {("sgd", "vicreg"): 0.03, ("sgd", "vicreg_fft"): 0.03, ("adamw", "vicreg"): 1e-3,
                                     ("adamw", "vicreg_fft"): 1e-3}
    sbs = _load("benchmarks/side_by_side.py", "side_by_side_derived")
    assert list(sbs.CONTENDERS) == [
        "official_barlow_twins", "official_vicreg", "barlow_twins", "barlow_twins[cross_correlation]", "vicreg",
        "vicreg[cross_correlation]", "barlow_twins_fft", "vicreg_fft", "sfrik", "uniformity", "simclr", "byol",
        "directpred", "isoloss"]
    assert sbs.CONTENDERS["barlow_twins"] == ("barlow_twins", "auto") and sbs.EIGH == ("directpred", "isoloss")
    suite = _load("benchmarks/asv_suite/bench_regularizers.py", "asv_suite_derived")
    assert suite.DownstreamAccuracy.params == [["barlow_twins", "vicreg", "barlow_twins_fft", "sfrik"]]
    assert suite.Algorithms.params[0] == ["barlow_twins", "vicreg"]
    # records from before predictor_hidden was recorded: only byol had a predictor (a frozen fact)
    assert set(constants.UNNAMED_PREDICTOR_REGULARIZERS) <= set(regularizers.where("needs_predictor"))


def test_a_new_builtin_needs_only_its_module_and_one_registry_line(toy):
    assert toy in regularizers.available()
    for attribute in ("needs_predictor", "lambd_one_over_dim", "default_lr", "eigendecomposes", "asv_accuracy"):
        assert toy in regularizers.where(attribute), attribute
    # training defaults
    assert config.needs_predictor(toy) and config.default_lr_for()[("sgd", toy)] == 0.07
    cfg = config.TrainConfig(regularizer=toy, optimizer="sgd", dataset="digits", dim=32).resolved()
    assert cfg.lr == 0.07 and cfg.hparams["lambd"] == 1 / 32
    assert config.TrainConfig(regularizer=toy, optimizer="adamw", dataset="digits").resolved().lr == \
        config.DEFAULT_LR["adamw"]
    # the side-by-side script and the asv suite
    sbs = _load("benchmarks/side_by_side.py", "side_by_side_toy")
    assert sbs.contenders()[toy] == (toy, "auto") and sbs.contenders()[f"{toy}[cross_correlation]"] == (
        toy, "cross_correlation")
    assert toy in sbs.EIGH
    suite = _load("benchmarks/asv_suite/bench_regularizers.py", "asv_suite_toy")
    assert toy in suite.NAMES and toy in suite.DownstreamAccuracy.params[0] and toy in suite.Algorithms.params[0]
    step = suite._build(toy, 8, 4, 2)
    assert torch.isfinite(step())


def test_the_asv_suite_keeps_its_list_on_a_commit_without_where(monkeypatch):
    monkeypatch.delattr(regularizers, "where")
    suite = _load("benchmarks/asv_suite/bench_regularizers.py", "asv_suite_old")
    assert suite.DownstreamAccuracy.params == [["barlow_twins", "vicreg", "barlow_twins_fft", "sfrik"]]
