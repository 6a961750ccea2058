"""Tests of sslbench/train.py: the optimiser, schedule, sharding, synchronised batch norm and --hp parsing against
references written here from their formulas, and the loop itself end to end on tiny synthetic data (records,
logs, resume, divergence, interrupts, DDP on two gloo processes, the asymmetric regularizers)."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal

import pytest
import torch
from torch import nn

from distributed_harness import run_ranks
from dist_train_cases import TINY, deterministic_views, tiny_config
from sslbench.training import train as T
from sslbench.records import read_records


# ==============================================================================================================
# LARS against a hand-written reference
# ==============================================================================================================
def _reference_lars(params, grads, mus, *, lr, weight_decay, momentum, eta, adapt):
    """One LARS step on float64 lists, written from the formula with explicit loops over the entries."""
    new_params, new_mus = [], []
    for w, g, mu, a in zip(params, grads, mus, adapt):
        wd = weight_decay if a else 0.0
        d = [gi + wd * wi for gi, wi in zip(g, w)]
        if a:
            w_norm = math.sqrt(sum(x * x for x in w))
            d_norm = math.sqrt(sum(x * x for x in d))
            q = eta * w_norm / d_norm if (w_norm > 0 and d_norm > 0) else 1.0
            d = [q * x for x in d]
        mu = [momentum * m + x for m, x in zip(mu, d)]
        new_mus.append(mu)
        new_params.append([wi - lr * m for wi, m in zip(w, mu)])
    return new_params, new_mus


def test_lars_matches_reference_over_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.Linear(3, 7, bias=False)).double()
    with torch.no_grad():
        model[2].weight.zero_()  # ‖w‖ = 0: the trust ratio falls back to 1
    lr, wd, mom = 0.3, 0.01, 0.9
    opt = T.LARS(T.param_groups(model, wd), lr=lr, momentum=mom)
    params = list(model.parameters())
    adapt = [p.ndim >= 2 for p in params]
    ref_p = [p.detach().flatten().tolist() for p in params]
    ref_mu = [[0.0] * p.numel() for p in params]
    for step in range(3):
        grads = [torch.randn_like(p) for p in params]
        if step == 1:
            grads[1].zero_()  # ‖d‖ = 0 on a bias (no adaptation there anyway) and below on a weight
            grads[0].zero_()
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        ref_p, ref_mu = _reference_lars(ref_p, [g.flatten().tolist() for g in grads], ref_mu, lr=lr,
                                        weight_decay=wd, momentum=mom, eta=0.001, adapt=adapt)
        for p, r in zip(params, ref_p):
            torch.testing.assert_close(p.detach().flatten(), torch.tensor(r, dtype=torch.float64), rtol=1e-12,
                                       atol=1e-14)


def test_lars_update_size_is_eta_times_weight_norm():
    # the defining property: without momentum history, ‖Δw‖ = lr·η·‖w‖ whatever the gradient's scale
    w = nn.Parameter(torch.randn(4, 6, dtype=torch.float64))
    opt = T.LARS([{"params": [w], "weight_decay": 0.0, "lars_adapt": True}], lr=2.0, momentum=0.0)
    before = w.detach().clone()
    w.grad = 1e6 * torch.randn_like(w)
    opt.step()
    assert math.isclose(float((w.detach() - before).norm()), 2.0 * 0.001 * float(before.norm()), rel_tol=1e-12)


def test_param_groups_exclude_biases_and_norms():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, no_decay = T.param_groups(model, 0.5)
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias),
                                                   id(model[3].bias)}
    assert decay["weight_decay"] == 0.5 and decay["lars_adapt"]
    assert no_decay["weight_decay"] == 0.0 and not no_decay["lars_adapt"]
    for name in T.OPTIMIZERS:
        opt = T.build_optimizer(model, name, 0.1, 0.5)
        assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    with pytest.raises(ValueError, match="optimizer"):
        T.build_optimizer(model, "adam", 0.1, 0.0)


# ==============================================================================================================
# Schedule
# ==============================================================================================================
def test_schedule_warmup_and_cosine_endpoints():
    base, total, warm, ratio = 0.8, 50, 10, 0.01
    lrs = [T.lr_at(s, base=base, total_steps=total, warmup_steps=warm, final_ratio=ratio) for s in range(total)]
    assert lrs[0] == pytest.approx(base / warm)
    assert lrs[warm - 1] == pytest.approx(base)
    assert all(b > a for a, b in zip(lrs[:warm - 1], lrs[1:warm]))  # linear ramp up
    assert lrs[warm] == pytest.approx(base)  # cosine starts at the peak
    assert lrs[-1] == pytest.approx(base * ratio)  # and ends at final_ratio * base on the last step
    assert all(b <= a for a, b in zip(lrs[warm:], lrs[warm + 1:]))
    mid = warm + (total - 1 - warm) / 2  # halfway through the cosine: the mean of peak and end
    if mid == int(mid):
        assert lrs[int(mid)] == pytest.approx((base + base * ratio) / 2)
    for s in range(warm):  # the warm-up is exactly linear
        assert lrs[s] == pytest.approx(base * (s + 1) / warm)
    # no warm-up: step 0 is the peak
    assert T.lr_at(0, base=1.0, total_steps=5, warmup_steps=0) == pytest.approx(1.0)
    assert T.lr_at(4, base=1.0, total_steps=5, warmup_steps=0, final_ratio=0.0) == pytest.approx(0.0, abs=1e-15)
    # a single step: the peak
    assert T.lr_at(0, base=1.0, total_steps=1, warmup_steps=0) == pytest.approx(1.0)


# ==============================================================================================================
# Sharding
# ==============================================================================================================
def test_epoch_batches_shards_the_single_process_batches():
    n, batch, world = 103, 12, 3
    single = T.epoch_batches(n, batch, epoch=2, seed=7)
    assert single.shape == (n // batch, batch)
    assert len(set(single.flatten().tolist())) == single.numel()  # no image twice in an epoch
    shards = [T.epoch_batches(n, batch, 2, 7, rank=r, world_size=world) for r in range(world)]
    for s in shards:
        assert s.shape == (n // batch, batch // world)
    assert torch.equal(torch.cat(shards, dim=1), single)  # rank-ordered concatenation = the global batch
    assert torch.equal(T.epoch_batches(n, batch, 2, 7), single)  # deterministic
    assert not torch.equal(T.epoch_batches(n, batch, 3, 7), single)  # a new order every epoch
    assert not torch.equal(T.epoch_batches(n, batch, 2, 8), single)
    with pytest.raises(ValueError, match="divisible"):
        T.epoch_batches(n, 10, 0, 0, rank=0, world_size=3)
    with pytest.raises(ValueError, match="larger than"):
        T.epoch_batches(5, 8, 0, 0)


# ==============================================================================================================
# Synchronised batch norm on the CPU
# ==============================================================================================================
def test_global_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
    gbn = T.convert_sync_batchnorm(nn.Sequential(bn), torch.device("cpu"))[0]
    assert isinstance(gbn, T.GlobalBatchNorm)
    bn_ref = nn.BatchNorm2d(3).double()
    bn_ref.load_state_dict(bn.state_dict())
    assert set(gbn.state_dict()) == set(bn_ref.state_dict())  # checkpoints keep their keys
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(gbn(x), bn_ref(x))
    torch.testing.assert_close(gbn.running_var, bn_ref.running_var)
    gbn.eval(), bn_ref.eval()
    torch.testing.assert_close(gbn(x), bn_ref(x))


def _bn_reference(x, weight, bias, eps=1e-5):
    """BatchNorm in training mode from its formula, with explicit per-channel loops."""
    y = torch.empty_like(x)
    means, vars_ = [], []
    for c in range(x.shape[1]):
        v = x[:, c]
        m = v.sum() / v.numel()
        var = ((v - m) ** 2).sum() / v.numel()
        y[:, c] = (v - m) / torch.sqrt(var + eps) * weight[c] + bias[c]
        means.append(m)
        vars_.append(var * v.numel() / (v.numel() - 1))
    return y, torch.stack(means), torch.stack(vars_)


@pytest.mark.distributed
def test_global_batchnorm_two_processes_match_one_batch():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 2, 3, dtype=torch.float64) * 2 + 1
    weight, bias = torch.rand(3, dtype=torch.float64) + 0.5, torch.randn(3, dtype=torch.float64)
    res = run_ranks(__import__("dist_train_cases").global_batchnorm, 2, x, weight, bias)
    xr = x.clone().requires_grad_(True)
    w, b = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    y, mean, var_unbiased = _bn_reference(xr, w, b)
    loss = (y.sin() * torch.arange(1, 4, dtype=y.dtype).view(1, -1, 1, 1)).mean()
    loss.backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in res]), y.detach())
    assert sum(float(r["loss"]) for r in res) / 2 == pytest.approx(float(loss.detach()))
    # the gradient contract of sslbench's collectives: each rank's rows get world_size × the global gradient,
    # and the mean of the ranks' parameter gradients (what DDP applies) is the single-process gradient
    torch.testing.assert_close(torch.cat([r["grad_x"] for r in res]), 2 * xr.grad)
    torch.testing.assert_close((res[0]["grad_w"] + res[1]["grad_w"]) / 2, w.grad)
    torch.testing.assert_close((res[0]["grad_b"] + res[1]["grad_b"]) / 2, b.grad)
    for r in res:
        torch.testing.assert_close(r["running_mean"], 0.1 * mean.detach())
        torch.testing.assert_close(r["running_var"], 0.9 + 0.1 * var_unbiased.detach())


# ==============================================================================================================
# --hp parsing and the command line
# ==============================================================================================================
@pytest.mark.parametrize("text, expected", [
    ("lambd=0.0078", ("lambd", 0.0078)),
    ("lambd=1/128", ("lambd", 1 / 128)),
    ("block_size=64", ("block_size", 64)),
    ("permute=false", ("permute", False)),
    ("normalize=True", ("normalize", True)),
    ("block_size=none", ("block_size", None)),
    ("weights=1,40,40", ("weights", (1, 40, 40))),
    ("weights=(1.0, 40.0)", ("weights", (1.0, 40.0))),
    ("weights=[1, 2]", ("weights", (1, 2))),
    ("algorithm=gram", ("algorithm", "gram")),
    (" algorithm = 'gram' ", ("algorithm", "gram")),
    ("scale=1e-3", ("scale", 1e-3)),
])
def test_parse_hparam_values(text, expected):
    name, value = T.parse_hparam(text)
    assert (name, value) == expected
    assert type(value) is type(expected[1])


@pytest.mark.parametrize("text, match", [
    ("lambd", "NAME=VALUE"),
    ("=3", "not a hyper-parameter name"),
    ("1x=3", "not a hyper-parameter name"),
    ("lambd=", "empty"),
    ("lambd=1/0", "fraction"),
    ("lambd=a/b", "fraction"),
])
def test_parse_hparam_errors(text, match):
    with pytest.raises(ValueError, match=match):
        T.parse_hparam(text)


def test_parse_hparams_rejects_duplicates():
    assert T.parse_hparams(["lambd=0.1", "scale=2"]) == {"lambd": 0.1, "scale": 2}
    with pytest.raises(ValueError, match="twice"):
        T.parse_hparams(["lambd=0.1", "lambd=0.2"])


def _parser():
    p = argparse.ArgumentParser()
    T.add_arguments(p)
    return p


def test_cli_hp_errors_name_the_problem(capsys):
    args = _parser().parse_args(["--regularizer", "vicreg", "--hp", "lambd=0.01"])
    with pytest.raises(ValueError, match=r"lambd.*accepted: .*sim_coeff"):
        T.config_from_args(args)
    assert T.run(args) == 2
    assert "not a hyper-parameter of vicreg" in capsys.readouterr().err
    args = _parser().parse_args(["--regularizer", "barlow_twins", "--hp", "lambd=-1"])
    with pytest.raises(ValueError, match="lambd"):  # values: where the regularizer is built, before any work
        T.config_from_args(args).resolved()
    assert T.run(args) == 2
    assert "lambd=-1 must be >= 0" in capsys.readouterr().err
    args = _parser().parse_args(["--hp", "oops"])
    assert T.run(args) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_cli_maps_arguments_to_the_config():
    args = _parser().parse_args([
        "--regularizer", "barlow_twins", "--hp", "lambd=1/128", "--dataset", "synthetic", "--data-option",
        "num_samples=64", "--dim", "32", "--projector", "64-64", "--views", "3", "--epochs", "2", "--batch-size",
        "16", "--optimizer", "sgd", "--lr", "0.1", "--warmup-epochs", "0.5", "--device", "cpu", "--amp",
        "--out", "none", "--resume", "--no-eval-init", "--max-steps", "5"])
    cfg = T.config_from_args(args)
    assert cfg.hparams == {"lambd": 1 / 128} and cfg.data_options == {"num_samples": 64}
    assert (cfg.dim, cfg.projector, cfg.views, cfg.epochs, cfg.batch_size) == (32, "64-64", 3, 2, 16)
    assert (cfg.optimizer, cfg.lr, cfg.warmup_epochs, cfg.max_steps) == ("sgd", 0.1, 0.5, 5)
    assert cfg.amp == "bf16" and cfg.out is None and cfg.resume == "auto" and cfg.eval and not cfg.eval_init
    assert cfg.full_projector_spec() == "64-64-32"
    defaults = T.config_from_args(_parser().parse_args([]))
    assert defaults == T.TrainConfig(verbose=True)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="regularizer='nope' is unknown"):
        T.TrainConfig(regularizer="nope", dataset="digits").resolved()
    with pytest.raises(ValueError, match="views=1"):
        T.TrainConfig(views=1, dataset="digits").resolved()
    with pytest.raises(ValueError, match="optimizer"):
        T.TrainConfig(optimizer="adam", dataset="digits").resolved()
    with pytest.raises(ValueError, match="ema_tau.*symmetric"):
        T.TrainConfig(ema_tau=0.99, dataset="digits").resolved()
    with pytest.raises(ValueError, match="projector"):
        T.TrainConfig(projector="512-x", dataset="digits").resolved()
    cfg = T.TrainConfig(regularizer="byol", optimizer="adamw", dataset="digits").resolved()
    assert (cfg.lr, cfg.weight_decay, cfg.ema_tau) == (T.DEFAULT_LR["adamw"], T.DEFAULT_WEIGHT_DECAY["adamw"],
                                                       T.DEFAULT_EMA_TAU)
    assert T.TrainConfig(dataset="digits").resolved().ema_tau == 0.0
    # per-regularizer default learning rates: VICReg with SGD gets its own, an explicit lr always wins
    sgd = dict(optimizer="sgd", dataset="digits")
    assert T.TrainConfig(regularizer="vicreg", **sgd).resolved().lr == T.DEFAULT_LR_FOR[("sgd", "vicreg")]
    assert T.TrainConfig(regularizer="barlow_twins", **sgd).resolved().lr == T.DEFAULT_LR["sgd"]
    assert T.TrainConfig(regularizer="vicreg", lr=0.2, **sgd).resolved().lr == 0.2
    assert T.TrainConfig(regularizer="vicreg", optimizer="lars", dataset="digits").resolved().lr == \
        T.DEFAULT_LR["lars"]
    assert T.TrainConfig(regularizer="vicreg", optimizer="adamw", dataset="digits").resolved().lr == \
        T.DEFAULT_LR_FOR[("adamw", "vicreg")] != T.DEFAULT_LR["adamw"]
    assert T.TrainConfig(dataset="digits", projector="", dim=128).full_projector_spec() == "128"


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "sub" / "c.pt"
    T.save_checkpoint(path, {"a": torch.arange(3)})
    T.save_checkpoint(path, {"a": torch.arange(4)})
    assert torch.equal(torch.load(path)["a"], torch.arange(4))
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.pt"]  # no temporary file left behind


# ==============================================================================================================
# The loop, end to end, on tiny synthetic data
# ==============================================================================================================
_cfg = tiny_config


def _log(record):
    with open(record["extra"]["log"]) as f:
        return [json.loads(line) for line in f]


def _losses(lines):
    return {ln["step"]: ln["loss"] for ln in lines if ln["event"] == "step"}


CASE_KEYS = {"regularizer", "hparams", "dataset", "fraction", "dim", "projector", "views", "batch", "epochs", "seed",
             "backbone", "optimizer", "lr", "device", "world_size"}


def test_train_writes_record_log_and_evaluation(tmp_path):
    rec = T.train(_cfg(tmp_path, augment="auto", eval_every=1))
    assert rec["status"] == "ok", rec["message"]
    assert rec["kind"] == "train" and CASE_KEYS <= set(rec["case"])
    assert rec["case"]["hparams"]["lambd"] == 1 / 16 and rec["case"]["projector"] == "32-16"  # lambd = 1/dim
    m = rec["metrics"]
    assert m["steps"] == 2 * (48 // 16)
    for key in ("linear_top1", "knn_top1", "init_linear_top1", "init_knn_top1"):
        assert 0.0 <= m[key] <= 100.0
    assert m["gain_linear"] == pytest.approx(m["linear_top1"] - m["init_linear_top1"])
    assert m["gain_knn"] == pytest.approx(m["knn_top1"] - m["init_knn_top1"])
    for key in ("std_normalized", "rankme", "effective_rank", "init_rankme", "backbone_rankme"):
        assert math.isfinite(m[key])
    assert m["train_time_s"] > 0 and m["images_per_s"] > 0 and m["peak_memory_bytes"] > 0
    assert math.isfinite(m["final_loss"])
    # the store holds the same record
    stored = read_records(tmp_path / "train.jsonl")
    assert len(stored) == 1 and stored[0]["id"] == rec["id"] and stored[0]["metrics"] == json.loads(json.dumps(m))
    # the log: start, one line per step with the loss terms, lr, throughput and memory, end
    lines = _log(rec)
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "end" and lines[-1]["status"] == "ok"
    steps = [ln for ln in lines if ln["event"] == "step"]
    assert [ln["step"] for ln in steps] == list(range(1, 7))
    for ln in steps:
        assert {"loss", "on_diagonal", "off_diagonal", "lr", "images_per_s", "memory_bytes"} <= set(ln)
    assert steps[-1]["loss"] == pytest.approx(m["final_loss"])
    assert steps[0]["lr"] == pytest.approx(0.5 / 2)  # warm-up of half an epoch = 2 steps
    assert steps[-1]["lr"] == pytest.approx(0.5 * 0.001)
    evals = [ln for ln in lines if ln["event"] == "eval"]  # eval_every=1: a kNN check after epoch 1 (not the last)
    assert [(ln["step"], ln["epoch"]) for ln in evals] == [(3, 1)] and 0 <= evals[0]["knn_top1"] <= 100
    assert os.path.exists(rec["extra"]["checkpoint"])


def _sigint_at(k):
    def hook(info):
        if info.step == k:
            os.kill(os.getpid(), signal.SIGINT)
    return hook


def test_interrupt_then_resume_matches_an_uninterrupted_run(tmp_path):
    kw = dict(eval=False, epochs=3, augment="auto")  # random augmentations: the RNG must resume too
    full = T.train(_cfg(tmp_path / "a", **kw))
    assert full["status"] == "ok"
    # Ctrl-C at step 4 (mid-epoch): status interrupted, the partial log and a checkpoint at step 4
    part = T.train(_cfg(tmp_path / "b", **kw), on_step=_sigint_at(4))
    assert part["status"] == "interrupted" and part["metrics"]["steps"] == 4
    assert read_records(tmp_path / "b" / "train.jsonl")[0]["status"] == "interrupted"
    assert torch.load(part["extra"]["checkpoint"], weights_only=False)["step"] == 4
    assert max(_losses(_log(part))) == 4
    resumed = T.train(_cfg(tmp_path / "b", resume="auto", **kw))
    assert resumed["status"] == "ok" and resumed["metrics"]["steps"] == 9
    assert resumed["extra"]["resumed_from_step"] == 4 and resumed["id"] == full["id"]
    # the same trajectory, bit for bit on the CPU, and the same final weights
    assert _losses(_log(resumed)) == _losses(_log(full))
    assert resumed["metrics"]["final_loss"] == full["metrics"]["final_loss"]
    a = torch.load(full["extra"]["checkpoint"], weights_only=False)
    b = torch.load(resumed["extra"]["checkpoint"], weights_only=False)
    assert a["step"] == b["step"] == 9
    for k in a["model"]:
        assert torch.equal(b["model"][k], a["model"][k]), k
    # a finished run resumed again whose ok record is in the store: that record, nothing appended nor logged
    store = tmp_path / "b" / "train.jsonl"
    stored, log_before = read_records(store), open(resumed["extra"]["log"]).read()
    again = T.train(_cfg(tmp_path / "b", epochs=3, augment="auto", resume="auto"))
    assert again == stored[-1] and again["id"] == full["id"] and again["status"] == "ok"
    assert read_records(store) == stored and open(resumed["extra"]["log"]).read() == log_before
    # ... and with a store that lacks its record: evaluated and recorded there, once
    other = tmp_path / "other.jsonl"
    evaluated = T.train(_cfg(tmp_path / "b", epochs=3, augment="auto", resume="auto", out=str(other)))
    assert evaluated["status"] == "ok" and evaluated["metrics"]["steps"] == 9
    assert "linear_top1" in evaluated["metrics"] and evaluated["metrics"]["final_loss"] == full["metrics"]["final_loss"]
    assert [r["id"] for r in read_records(other)] == [full["id"]]
    # a checkpoint of another case is refused
    with pytest.raises(ValueError, match="another case.*lr"):
        T.train(_cfg(tmp_path / "c", eval=False, lr=0.1, resume=b_path(resumed)))


def b_path(record):
    return record["extra"]["checkpoint"]


def test_nonfinite_loss_stops_as_diverged_and_keeps_the_log(tmp_path):
    def poison(info):
        if info.step == 2:
            with torch.no_grad():
                next(info.model.parameters()).fill_(float("nan"))

    rec = T.train(_cfg(tmp_path), on_step=poison)
    assert rec["status"] == "diverged" and "NaN or Inf" in rec["message"]
    assert rec["metrics"]["steps"] == 3 and rec["metrics"]["final_loss"] is None
    assert "linear_top1" not in rec["metrics"]
    lines = _log(rec)
    assert [ln["event"] for ln in lines] == ["start", "step", "step", "diverged", "end"]
    assert read_records(tmp_path / "train.jsonl")[0]["status"] == "diverged"


def test_huge_learning_rate_diverges(tmp_path):
    rec = T.train(_cfg(tmp_path, optimizer="sgd", lr=1e30, eval=False, checkpoint_dir=None))
    assert rec["status"] == "diverged"


def test_out_of_memory_is_a_result_and_other_errors_are_raised(tmp_path):
    def oom(info):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    rec = T.train(_cfg(tmp_path), on_step=oom)
    assert rec["status"] == "oom" and "allocate" in rec["message"]

    def bug(info):
        raise ZeroDivisionError("planted")

    with pytest.raises(ZeroDivisionError, match="planted"):
        T.train(_cfg(tmp_path), on_step=bug)
    records = read_records(tmp_path / "train.jsonl")
    assert [r["status"] for r in records] == ["oom", "error"]
    assert "planted" in records[1]["message"] and "ZeroDivisionError" in records[1]["extra"]["traceback"]


@pytest.mark.parametrize("regularizer, ema_tau", [("directpred", 0.0), ("directpred", 0.99), ("isoloss", 0.0),
                                                  ("byol", 0.99)])
def test_asymmetric_regularizers_train(tmp_path, regularizer, ema_tau):
    rec = T.train(_cfg(tmp_path, regularizer=regularizer, ema_tau=ema_tau, epochs=1, eval=False,
                       checkpoint_every=2))
    assert rec["status"] == "ok", rec["message"]
    assert rec["case"]["ema_tau"] == ema_tau and math.isfinite(rec["metrics"]["final_loss"])
    ckpt = torch.load(rec["extra"]["checkpoint"], weights_only=False)
    assert (ckpt["target"] is None) == (ema_tau == 0)
    if regularizer != "byol":
        assert int(ckpt["regularizer"]["num_updates"]) == 3 * 2  # F is updated once per view and step
    else:
        assert any(k.startswith("predictor.") for k in ckpt["model"])


def test_grad_clip_bounds_the_step_and_logs_the_norm(tmp_path):
    seen = []

    def after_step(info):  # the gradients the optimiser used (zeroed only before the next backward)
        seen.append(float(torch.sqrt(sum(p.grad.square().sum() for p in info.model.parameters()
                                         if p.grad is not None))))

    rec = T.train(_cfg(tmp_path, regularizer="vicreg", epochs=1, eval=False, grad_clip=1e-3), on_step=after_step)
    assert rec["status"] == "ok", rec["message"]
    assert rec["case"]["grad_clip"] == 1e-3
    assert seen and max(seen) <= 1e-3 * (1 + 1e-5)
    logged = [ln["grad_norm"] for ln in _log(rec) if ln["event"] == "step"]
    assert len(logged) == len(seen) and min(logged) > 1e-3  # the norm before clipping
    assert "grad_clip" not in T.train(_cfg(tmp_path / "b", epochs=1, eval=False))["case"]
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="grad_clip"):
            T.TrainConfig(grad_clip=bad, dataset="digits").resolved()


def test_byol_without_predictor_and_with_the_variance_add_on(tmp_path):
    rec = T.train(_cfg(tmp_path, regularizer="byol", ema_tau=0.0, predictor_hidden=0, epochs=1, eval=False,
                       hparams={"variance_coeff": 2.0}))
    assert rec["status"] == "ok", rec["message"]
    assert rec["case"]["predictor_hidden"] == 0
    assert rec["case"]["hparams"]["variance_coeff"] == 2.0
    ckpt = torch.load(rec["extra"]["checkpoint"], weights_only=False)
    assert not any(k.startswith("predictor.") for k in ckpt["model"])
    steps = [ln for ln in _log(rec) if ln["event"] == "step"]
    assert steps and all(0.0 <= ln["variance_addon"] <= 1.0 for ln in steps)
    with pytest.raises(ValueError, match="predictor_hidden"):
        T.TrainConfig(regularizer="byol", predictor_hidden=-1, dataset="digits").resolved()


def test_resume_restores_ema_target_and_regularizer_state(tmp_path):
    kw = dict(regularizer="directpred", ema_tau=0.9, epochs=3, eval=False)
    full = T.train(_cfg(tmp_path / "a", **kw))
    T.train(_cfg(tmp_path / "b", **kw), on_step=_sigint_at(5))
    resumed = T.train(_cfg(tmp_path / "b", resume="auto", **kw))
    assert _losses(_log(resumed)) == pytest.approx(_losses(_log(full)), rel=1e-6, abs=1e-7)
    a = torch.load(full["extra"]["checkpoint"], weights_only=False)
    b = torch.load(resumed["extra"]["checkpoint"], weights_only=False)
    torch.testing.assert_close(b["regularizer"]["F"], a["regularizer"]["F"], rtol=1e-5, atol=1e-7)


def test_views_multiview_and_cli_run(tmp_path, capsys):
    args = _parser().parse_args([
        "--regularizer", "vicreg", "--dataset", "synthetic", "--data-option", "num_samples=32",
        "--data-option", "channels=1", "--data-option", "height=12", "--data-option", "width=12",
        "--backbone", "convnet", "--projector", "", "--dim", "8", "--views", "3", "--batch-size", "16",
        "--epochs", "1", "--device", "cpu", "--no-eval", "--out", str(tmp_path / "r.jsonl"), "--log-dir", "none",
        "--checkpoint-dir", "none", "--augment", "none", "--quiet", "--no-progress"])
    assert T.run(args) == 0
    rec = read_records(tmp_path / "r.jsonl")[0]
    assert rec["status"] == "ok" and rec["case"]["views"] == 3 and rec["case"]["projector"] == "8"
    assert rec["extra"]["log"] is None and rec["extra"]["checkpoint"] is None


@pytest.mark.distributed
def test_ddp_two_processes_match_one_process(tmp_path):
    kw = dict(TINY, epochs=2, out=None, checkpoint_dir=None, eval=True, eval_init=False, optimizer="lars",
              lr=0.5, data_options=dict(TINY["data_options"], num_samples=40))
    single = T.train(T.TrainConfig(**dict(kw, log_dir=str(tmp_path / "one"))), make_views=deterministic_views)
    res = run_ranks(__import__("dist_train_cases").train_run, 2, dict(kw, log_dir=str(tmp_path / "two")))
    assert single["status"] == "ok" and all(r["record"]["status"] == "ok" for r in res)
    assert res[0]["record"]["case"]["world_size"] == 2 and single["case"]["world_size"] == 1
    one, two = _losses(_log(single)), _losses(res[0]["log"])
    assert sorted(one) == sorted(two) == list(range(1, 5))
    assert two == pytest.approx(one, rel=1e-4, abs=1e-5)
    # every rank returns the same record (rank 0's evaluation, broadcast)
    assert res[0]["record"]["metrics"] == res[1]["record"]["metrics"]
    assert "knn_top1" in res[1]["record"]["metrics"]


@pytest.mark.distributed
@pytest.mark.slow
def test_torchrun_two_processes_end_to_end(tmp_path):
    # the torchrun path: env:// rendezvous created and destroyed by sslbench itself, gloo on the CPU
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(T.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "sslbench",
           "train", "--regularizer", "barlow_twins", "--dataset", "synthetic", "--data-option", "num_samples=32",
           "--data-option", "channels=1", "--data-option", "height=12", "--data-option", "width=12",
           "--backbone", "convnet", "--projector", "16", "--dim", "8", "--batch-size", "16", "--epochs", "1",
           "--device", "cpu", "--out", str(tmp_path / "r.jsonl"), "--log-dir", str(tmp_path / "runs"),
           "--checkpoint-dir", str(tmp_path / "ckpt"), "--knn-k", "5", "--probe-epochs", "2", "--log-every", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_records(tmp_path / "r.jsonl")
    assert len(records) == 1  # rank 0 alone writes
    rec = records[0]
    assert rec["status"] == "ok" and rec["case"]["world_size"] == 2 and rec["metrics"]["steps"] == 2
    assert "linear_top1" in rec["metrics"] and os.path.exists(rec["extra"]["checkpoint"])
    assert proc.stdout.count('"status": "ok"') == 1  # one summary line, from rank 0


# ==============================================================================================================
# The fast path: foreach LARS, multi-tensor optimisers, the NaN check at log steps, torch.compile's fallback,
# the augmentation backend in the record, and (on CUDA) no host synchronisation inside the steps
# ==============================================================================================================
def test_foreach_lars_equals_the_per_parameter_lars():
    torch.manual_seed(3)
    nets = [nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 3)).double()
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    with torch.no_grad():
        nets[0][3].weight[0].zero_(), nets[1][3].weight[0].zero_()
        nets[0][0].weight.zero_(), nets[1][0].weight.zero_()  # ‖w‖ = 0: trust ratio 1 in both
    opts = [T.LARS(T.param_groups(net, 0.01), lr=0.7, momentum=0.9, foreach=fe) for net, fe in zip(nets, (True, False))]
    for step in range(4):
        grads = [torch.randn_like(p) for p in nets[0].parameters()]
        if step == 2:
            grads[-1].zero_()
        for net, opt in zip(nets, opts):
            for p, g in zip(net.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert opts[0].state_dict()["state"].keys() == opts[1].state_dict()["state"].keys()
    assert T.build_optimizer(nets[0], "lars", 0.1, 0.0).foreach


def test_sgd_and_adamw_are_multi_tensor_steps():
    model = nn.Linear(3, 2)
    for name in ("sgd", "adamw"):
        opt = T.build_optimizer(model, name, 0.1, 0.0, device="cpu")
        assert opt.defaults["foreach"] is True
    if torch.cuda.is_available():
        assert T.build_optimizer(model.cuda(), "sgd", 0.1, 0.0, device="cuda").defaults["fused"] is True


def test_nonfinite_loss_is_read_at_log_steps_only(tmp_path):
    seen = []

    def poison(info):
        seen.append(info.step)
        if info.step == 1:
            with torch.no_grad():
                next(info.model.parameters()).fill_(float("nan"))

    rec = T.train(_cfg(tmp_path, log_every=2, epochs=3), on_step=poison)
    assert rec["status"] == "diverged" and "at or before step 2" in rec["message"]
    assert seen == [1, 2] and rec["metrics"]["steps"] == 2  # the flag stays on the device until step 2's check
    rec = T.train(_cfg(tmp_path / "b", log_every=100, epochs=3), on_step=poison)  # an epoch end checks too
    assert rec["status"] == "diverged" and rec["metrics"]["steps"] == 3


def test_compile_failure_falls_back_to_eager_in_one_line(tmp_path, monkeypatch, capsys):
    class Broken(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, *a):
            raise RuntimeError("planted: no compiler here\nsecond line")

    monkeypatch.setattr(torch, "compile", lambda net, **kw: Broken(net))
    kw = dict(eval=False, epochs=1, augment="auto")
    rec = T.train(_cfg(tmp_path / "a", compile=True, verbose=True, **kw))
    assert rec["status"] == "ok" and rec["extra"]["compiled"] is False
    err = capsys.readouterr().err
    assert err.count("torch.compile failed") == 1 and "planted: no compiler here" in err and "second" not in err
    plain = T.train(_cfg(tmp_path / "b", **kw))  # the eager step is the one an uncompiled run takes
    assert plain["extra"]["compiled"] is False and plain["id"] == rec["id"]
    assert _losses(_log(plain)) == _losses(_log(rec))
    # the compile_cuda switch is validated
    with pytest.raises(ValueError, match="compile_cuda"):
        T.TrainConfig(compile_cuda="yes", dataset="digits").resolved()


def test_record_names_the_augmentation_backend(tmp_path):
    rec = T.train(_cfg(tmp_path, eval=False, epochs=1, augment="auto"))
    assert rec["extra"]["augment_backend"] == "torch" and rec["case"]["augment_backend"] == "torch"
    assert T.train(_cfg(tmp_path / "v", eval=False, epochs=1), make_views=deterministic_views)["extra"][
        "augment_backend"] is None
    with pytest.raises(ValueError, match="augment_backend='pil' is not allowed"):
        T.TrainConfig(augment_backend="pil", dataset="digits").resolved()
    pytest.importorskip("kornia")
    rec = T.train(_cfg(tmp_path / "k", eval=False, epochs=1, augment="auto", augment_backend="kornia"))
    assert rec["extra"]["augment_backend"] == "kornia" and "augment_backend" not in rec["case"]  # ids as before


def test_kornia_backend_without_kornia_is_one_input_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "kornia", None)
    monkeypatch.setitem(sys.modules, "kornia.augmentation", None)
    with pytest.raises(T.TrainInputError, match="augment_backend='kornia'.*pip install kornia"):
        T.train(_cfg(tmp_path, augment="auto", augment_backend="kornia"))


@pytest.mark.gpu
def test_cuda_steps_between_log_steps_do_not_synchronise(tmp_path):
    # steps 2..9 of 10 run under torch.cuda's sync debug mode "error": any host synchronisation inside them (an
    # .item(), a pageable host-to-device copy, a data-dependent shape) raises and the run would end in "error"
    def hook(info):
        torch.cuda.set_sync_debug_mode("error" if info.step == 1 else "default" if info.step == 9 else
                                       torch.cuda.get_sync_debug_mode())

    cfg = _cfg(tmp_path, device="cuda", epochs=1, log_every=100, augment="auto", eval=False, compile_cuda=False,
               data_options=dict(TINY["data_options"], num_samples=160))
    try:
        rec = T.train(cfg, on_step=hook)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert rec["status"] == "ok", rec["message"]
    assert rec["metrics"]["steps"] == 10


@pytest.mark.gpu
def test_cuda_run_compiles_and_evaluates_on_the_device(tmp_path):
    rec = T.train(_cfg(tmp_path, device="cuda", epochs=1, augment="auto"))
    assert rec["status"] == "ok", rec["message"]
    assert rec["extra"]["compiled"] is True and rec["extra"]["augment_backend"] == "torch"
    assert rec["case"]["amp"] == "bf16" and 0 <= rec["metrics"]["linear_top1"] <= 100


@pytest.mark.gpu
def test_cuda_run_with_images_in_pinned_host_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "MAX_DEVICE_DATA_BYTES", 0)  # every data set is "too large" for the device
    rec = T.train(_cfg(tmp_path, device="cuda", epochs=1, eval=False, compile_cuda=False, augment="auto"))
    assert rec["status"] == "ok", rec["message"]
