"""One run, whichever command starts it (issue 18 item 4): ``sslbench train`` and a sweep's training case of the same
configuration have one run id, one claim (``run-<run id>`` in the store's claims) and one record: the sweep lists a
case that ``sslbench train`` already recorded as done (the accuracy means never pool a seed twice), and while one of
them holds the run, the other refuses it."""

from __future__ import annotations

import os

import pytest

from sslbench import cli
from sslbench.execution import plan as plan_module
from sslbench.execution import sweep
from sslbench.records import read_records
from sslbench.records.claims import read_claims, try_claim

DATA = ["--data-option", "num_samples=48", "--data-option", "channels=1", "--data-option", "height=12",
        "--data-option", "width=12", "--data-option", "num_classes=4"]
TRAIN = ["train", "--regularizer", "vicreg", "--dataset", "synthetic", "--dim", "8", "--epochs", "1",
         "--batch-size", "16", "--device", "cpu", *DATA, "--backbone", "convnet", "--projector", "16",
         "--max-steps", "2", "--no-eval", "--log-dir", "none", "--checkpoint-dir", "none", "--quiet", "--no-progress"]
SWEEP = ["sweep", "--kind", "train", "--regularizers", "vicreg", "--datasets", "synthetic", "--dims", "8", "--epochs",
         "1", "--batches", "16", "--device", "cpu", *DATA, "--train-option", "backbone=convnet", "--train-option",
         "projector=16", "--train-option", "max_steps=2", "--train-option", "eval=false", "--train-option",
         "log_dir=none", "--train-option", "checkpoint_dir=none", "--no-progress", "--threads", "1"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _plan(store) -> plan_module.Plan:
    import argparse

    p = argparse.ArgumentParser()
    sweep.add_arguments(p)
    s, cases, out = sweep._settings_and_cases(p.parse_args([*SWEEP[1:], "--out", str(store)]))
    return plan_module.make_plan("sweep", s, cases, out)


def _train_run_id(plan: plan_module.Plan) -> str:
    """The id train's own set-up gives the grid's one case (data loaded, networks built)."""
    import torch

    from sslbench.training import train as T

    cfg = plan_module.train_config(plan.cases[0], plan.settings).resolved()
    return T.set_up(cfg, 0, 1, torch.device("cpu")).run_id


def test_a_sweep_lists_a_case_trained_by_sslbench_train_as_done(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    assert cli.main([*TRAIN, "--out", str(store)]) == 0
    (trained,) = read_records(store)
    capsys.readouterr()
    assert cli.main([*SWEEP, "--out", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 case(s): 1 already done" in out and "0 to run" in out, out
    assert _plan(store).run_ids == [trained["id"]]  # the sweep names the case's run as train does
    assert cli.main([*SWEEP, "--out", str(store)]) == 0
    assert len(read_records(store)) == 1  # not trained (and recorded) a second time
    assert cli.main([*SWEEP, "--out", str(store), "--status"]) == 0
    assert "1 done, 0 running" in capsys.readouterr().out


def test_train_and_a_sweep_case_of_one_run_share_one_claim_and_refuse_one_another(tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    store.touch()
    plan = _plan(store)
    run_id = _train_run_id(plan)
    held = try_claim(store, f"run-{run_id}")  # this live process plays a running `sslbench train` of that run
    try:
        assert cli.main([*SWEEP, "--out", str(store)]) == 0
        out = capsys.readouterr().out
        assert "skipped vicreg" in out and f"running elsewhere (host {held.owner['host']}, pid {os.getpid()}" in out
        assert read_records(store) == []
        # and this process as a running sweep case: train refuses the same run in one line
        assert cli.main([*TRAIN, "--out", str(store)]) == 2
        err = capsys.readouterr().err
        assert f"run {run_id} is already running" in err and "Traceback" not in err
        assert plan.claim_key(plan.ids[0]) == f"run-{run_id}" and plan.run_ids == [run_id]
    finally:
        held.release()
    assert read_claims(store) == {}
