"""The automatic choices of TrainConfig.resolved() that the CPU default adds: the backbone per data set and Barlow
Twins' lambd = 1/dim; and the default itself against the sweep record that chose it
(results/sweeps/cpu-default/)."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from sslbench.training import config as C
from sslbench.training.augment import PRESETS, preset_config
from sslbench.training.config import TrainConfig
from sslbench.training.models import BACKBONES, build_backbone

SWEEP = Path(__file__).resolve().parents[1] / "results" / "sweeps" / "cpu-default"


def test_the_backbone_left_unset_is_the_data_sets_default_else_auto():
    assert TrainConfig(dataset="fashion_mnist").resolved().backbone == C.DEFAULT_BACKBONE_FOR["fashion_mnist"]
    assert TrainConfig(dataset="digits").resolved().backbone == "auto"
    assert TrainConfig(dataset="cifar10").resolved().backbone == "auto"
    assert TrainConfig(dataset="fashion_mnist", backbone="convnet").resolved().backbone == "convnet"
    assert TrainConfig(dataset="fashion_mnist", backbone="auto").resolved().backbone == "auto"
    assert set(C.DEFAULT_BACKBONE_FOR.values()) <= set(BACKBONES)


def test_the_augmentation_left_unset_is_the_data_sets_default_else_auto():
    assert TrainConfig(dataset="fashion_mnist").resolved().augment == C.DEFAULT_AUGMENT_FOR["fashion_mnist"]
    assert TrainConfig(dataset="digits").resolved().augment == "auto"
    assert TrainConfig(dataset="fashion_mnist", augment="mnist").resolved().augment == "mnist"
    assert set(C.DEFAULT_AUGMENT_FOR.values()) <= set(PRESETS)


@pytest.mark.parametrize("dim", [16, 128, 512])
def test_barlow_twins_lambd_defaults_to_one_over_dim(dim):
    cfg = TrainConfig(dataset="digits", regularizer="barlow_twins", dim=dim).resolved()
    assert cfg.hparams["lambd"] == pytest.approx(1 / dim)


def test_an_explicit_lambd_and_other_regularizers_are_left_alone():
    cfg = TrainConfig(dataset="digits", regularizer="barlow_twins", hparams={"lambd": 0.0051}).resolved()
    assert cfg.hparams == {"lambd": 0.0051}
    for name in ("vicreg", "barlow_twins_fft", "sfrik"):
        assert "lambd" not in TrainConfig(dataset="digits", regularizer=name).resolved().hparams
    given = {"lambd": 0.01}
    TrainConfig(dataset="digits", hparams=given).resolved()
    assert given == {"lambd": 0.01}  # the caller's dict is not changed


def _chosen_record() -> dict:
    chosen = json.loads((SWEEP / "chosen.json").read_text())
    for line in (SWEEP / "runs.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["id"] == chosen["id"]:
            return record
    raise AssertionError(f"the chosen run {chosen['id']} is not in {SWEEP / 'runs.jsonl'}")


def test_the_default_is_the_recipe_the_sweep_chose():
    """Every setting of the sweep's chosen run (results/sweeps/cpu-default/chosen.json names it) is what
    ``sslbench train`` does with no arguments on Fashion-MNIST."""
    record = _chosen_record()
    assert record["status"] == "ok" and record["case"]["dataset"] == "fashion_mnist"
    cfg = TrainConfig(dataset="fashion_mnist").resolved()
    ours = {"regularizer": cfg.regularizer, "dim": cfg.dim, "projector": cfg.full_projector_spec(),
            "views": cfg.views, "batch": cfg.batch_size, "epochs": cfg.epochs, "backbone": cfg.backbone,
            "optimizer": cfg.optimizer, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
            "warmup_epochs": cfg.warmup_epochs, "augment": cfg.augment, "fraction": cfg.fraction, "seed": cfg.seed,
            "lambd": cfg.hparams["lambd"]}
    theirs = {k: record["case"][k] for k in ours if k != "lambd"} | {"lambd": record["case"]["hparams"]["lambd"]}
    # a candidate that sslbench has since taken in under its own name (the same network: the tests below)
    theirs["backbone"] = _candidates_module().SSLBENCH_NAMES.get(theirs["backbone"], theirs["backbone"])
    assert ours == theirs


def _candidates_module():
    spec = importlib.util.spec_from_file_location("cpu_default_candidates", SWEEP / "candidates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("candidate", ["convnet_mp", "convnet_pool_p2"])
def test_each_swept_candidate_is_the_sslbench_backbone_of_its_new_name(candidate):
    """The sweep ran the pooled convnets under candidate names (results/sweeps/cpu-default/candidates.py);
    ``SSLBENCH_NAMES`` maps each to the sslbench backbone that must be the same network: same initial weights for
    the same seed, the state dict loads strictly, same outputs (128-d for ``convnet_pool``, 512-d for the 2×2
    pool)."""
    candidates = _candidates_module()
    name = candidates.SSLBENCH_NAMES[candidate]
    torch.manual_seed(0)
    swept = candidates.BlockNet(1, candidates.BACKBONE_BLOCKS[candidate], candidates.OUT_POOL.get(candidate, 1))
    torch.manual_seed(0)
    ours = build_backbone(name, 1, 28)
    assert swept.out_dim == ours.out_dim == {"convnet_pool": 128, "convnet_pool_2x2": 512}[name]
    for a, b in zip(swept.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)  # the same seed gives the same initial weights
    ours.load_state_dict(swept.state_dict(), strict=True)
    x = torch.randn(3, 1, 28, 28)
    swept.eval(), ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), swept(x))


def test_the_sweeps_mnist_strong_is_the_augment_preset():
    """The sweep's ``mnist_strong`` (candidates.py: the ``mnist`` preset with overrides) and the preset of that name
    in sslbench.training.augment are the same pipeline."""
    candidates = _candidates_module()
    shape = (1, 28, 28)
    swept = dataclasses.replace(preset_config("mnist", shape), **candidates.AUGMENT_OVERRIDES["mnist_strong"])
    assert preset_config("mnist_strong", shape) == swept != preset_config("mnist", shape)
