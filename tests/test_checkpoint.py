"""Checkpoints, resume and the record, each part of the run alone: a checkpoint loads without running code
(a crafted pickle's payload must not run), a file that is not a checkpoint is one clear line and exit 2, resume
restores exactly what was saved, the log is cut back to the checkpoint's step, --resume says when it starts
afresh, the record is built from a Run and a RunState alone, and a record whose store cannot be written is saved
beside the log. Also: a linear-algebra failure on a NaN state is a divergence, not an error."""

from __future__ import annotations

import argparse
import builtins
import json
import os
import pickle
import random

import pytest
import torch

from dist_train_cases import tiny_config
from sslbench.records import read_records
from sslbench.training import train as T
from sslbench.training.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state

def _cfg(tmp_path, **kw):
    return tiny_config(tmp_path, **kw).resolved()


def _set_up(cfg):
    return T.set_up(cfg, 0, 1, torch.device("cpu"))


def _cli(*args, out="none", log_dir="none", checkpoint_dir="none"):
    """``sslbench train`` on a tiny synthetic run with ``args`` added; its exit status."""
    p = argparse.ArgumentParser()
    T.add_arguments(p)
    argv = ["--dataset", "synthetic", "--data-option", "num_samples=32", "--batch-size", "16", "--epochs", "1",
            "--device", "cpu", "--no-eval", "--augment", "none", "--quiet", "--no-progress", "--out", str(out),
            "--log-dir", str(log_dir), "--checkpoint-dir", str(checkpoint_dir), *args]
    return T.run(p.parse_args(argv))


class _Payload:
    """Unpickling it calls open(marker, "w"): a file appears if the loader runs code from the checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


# ==============================================================================================================
# Loading: no code runs, and a bad file is one line
# ==============================================================================================================
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_crafted_checkpoint_does_not_run_its_payload(tmp_path, capsys, writer):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    payload = {"format": 2, "step": 0, "case": _Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert not marker.exists()
    refusal = "could run code" if writer == "torch.save" else "not a torch file"
    with pytest.raises(CheckpointError, match=f"evil.pt.*{refusal}"):
        load_checkpoint(path)
    assert not marker.exists()
    # through the command: exit 2, one line naming the file, no payload run, no record
    assert _cli("--resume", str(path), out=tmp_path / "r.jsonl") == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
    assert read_records(tmp_path / "r.jsonl") == []


def _real_checkpoint(tmp_path):
    rec = T.train(_cfg(tmp_path, eval=False, epochs=1))
    return rec["extra"]["checkpoint"]


@pytest.mark.parametrize("damage, problem", [
    ("empty", "empty"),
    ("truncated", "truncated or not a torch file"),
    ("garbage", "truncated or not a torch file"),
    ("tensor", "not an sslbench checkpoint"),
    ("missing keys", "lacks"),
    ("folder", "folder"),
    ("absent", "no such file"),
])
def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys, damage, problem):
    path = tmp_path / "c.pt"
    good = open(_real_checkpoint(tmp_path / "good"), "rb").read()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    elif damage == "tensor":
        torch.save(torch.arange(3), path)
    elif damage == "missing keys":
        torch.save({"format": 2, "step": 3}, path)
    elif damage == "folder":
        path.mkdir()
    with pytest.raises(CheckpointError, match=problem) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert _cli("--resume", str(path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err and "Traceback" not in err


def test_a_real_checkpoint_loads_with_weights_only(tmp_path):
    for reg in ("barlow_twins", "directpred", "byol"):  # regularizer buffers, an EMA target, a predictor
        ckpt = torch.load(_real_checkpoint(tmp_path / reg) if reg == "barlow_twins" else
                          T.train(_cfg(tmp_path / reg, regularizer=reg, ema_tau=0.9, eval=False,
                                       epochs=1))["extra"]["checkpoint"], weights_only=True)
        assert ckpt["format"] == 2 and ckpt["step"] == 3
        json.dumps(ckpt["config"])  # the configuration is plain data


def test_rng_state_round_trip_is_plain_data(tmp_path):
    import numpy as np

    save_checkpoint(tmp_path / "r.pt", {"rng": rng_state()})
    expected = (torch.rand(3), random.random(), float(np.random.rand()))
    set_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    again = (torch.rand(3), random.random(), float(np.random.rand()))
    assert torch.equal(again[0], expected[0]) and again[1:] == expected[1:]


# ==============================================================================================================
# Resume and record, each alone
# ==============================================================================================================
def test_resume_alone_restores_what_was_saved(tmp_path):
    cfg = _cfg(tmp_path, regularizer="directpred", ema_tau=0.9)
    a = _set_up(cfg)
    with torch.no_grad():
        for p in a.model.parameters():
            p.add_(1.0)
        a.reg.F = torch.full((16, 16), 0.25)  # DirectPred's F (created at its first call)
    state = T.RunState(step=4, train_time_s=1.5, images_seen=64, last_terms={"loss": 0.5})
    torch.manual_seed(123)
    T.save(a, state, train_time_s=2.5)
    draw = torch.rand(4)
    b = _set_up(cfg)  # fresh weights
    assert not torch.equal(next(b.model.parameters()), next(a.model.parameters()))
    restored = T.resume(b, a.ckpt_path)
    assert (restored.step, restored.train_time_s, restored.images_seen, restored.resumed_from) == (4, 2.5, 64, 4)
    assert restored.last_terms == {"loss": 0.5} and restored.status == "ok"
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert torch.equal(b.reg.F, a.reg.F) and torch.equal(torch.rand(4), draw)  # buffers and RNG
    for va, vb in zip(a.target.state_dict().values(), b.target.state_dict().values()):
        assert torch.equal(va, vb)
    other = _set_up(_cfg(tmp_path, regularizer="directpred", ema_tau=0.9, lr=0.1))
    with pytest.raises(CheckpointError, match="another case.*lr"):
        T.resume(other, a.ckpt_path)


def test_build_record_alone(tmp_path):
    cfg = _cfg(tmp_path, hparams={"lambd": 0.01})
    run = _set_up(cfg)
    state = T.RunState(step=6, train_time_s=2.0, images_seen=96, last_terms={"loss": 1.25}, status="interrupted",
                       message="interrupted by the user at step 6", resumed_from=3)
    rec = T.build_record(run, state, {"steps": 6, "final_loss": 1.25}, tmp_path / "log.jsonl",
                         env={"host": "test"})
    assert rec["kind"] == "train" and rec["id"] == run.run_id and rec["status"] == "interrupted"
    assert rec["case"] == json.loads(json.dumps(run.case)) and rec["case"]["hparams"]["lambd"] == 0.01
    assert rec["message"] == state.message and rec["metrics"] == {"steps": 6, "final_loss": 1.25}
    extra = rec["extra"]
    assert (extra["run_id"], extra["log"], extra["checkpoint"]) == (run.run_id, str(tmp_path / "log.jsonl"), None)
    assert extra["resumed_from_step"] == 3 and extra["final_terms"] == {"loss": 1.25}
    assert (extra["total_steps"], extra["steps_per_epoch"]) == (6, 3) and extra["hparams_set"] == {"lambd": 0.01}
    assert "hparams" not in extra["config"] and extra["config"]["lr"] == 0.5


def test_log_is_cut_back_to_the_checkpoint_step_on_resume(tmp_path):
    kw = dict(eval=False, epochs=3, checkpoint_every=4)
    full = T.train(_cfg(tmp_path / "a", **kw))
    # a run stopped after the checkpoint at step 4 (no checkpoint at its stop), with steps 5-6 in its log, and
    # a half-written last line as a kill leaves it
    part = T.train(_cfg(tmp_path / "b", **kw), on_step=lambda info: info.step == 7 and _raise_kill())
    assert part["status"] == "oom"
    log = tmp_path / "b" / "runs" / f"{full['id']}.jsonl"
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["step"] for x in lines if x["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    with open(log, "a") as f:
        f.write('{"event": "step", "step": 7, "lo')
    resumed = T.train(_cfg(tmp_path / "b", resume="auto", **kw))
    assert resumed["extra"]["resumed_from_step"] == 4
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines() if '"event": "step"' in x]
    assert steps == list(range(1, 10))  # each step once


def _raise_kill():
    raise RuntimeError("CUDA out of memory. Tried to allocate 1 bytes")  # stops the run without a checkpoint


def test_resume_says_when_it_starts_afresh(tmp_path, capsys):
    rec = T.train(_cfg(tmp_path, resume="auto", checkpoint_dir=None, eval=False, max_steps=1))
    assert rec["extra"]["resumed_from_step"] is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no --checkpoint-dir" in err and "step 0" in err
    T.train(_cfg(tmp_path, eval=False, max_steps=1))
    rec = T.train(_cfg(tmp_path, resume="auto", eval=False, max_steps=1, lr=0.25))  # another setting: another id
    assert rec["extra"]["resumed_from_step"] is None
    err = capsys.readouterr().err
    assert f"no checkpoint of run {rec['id']}" in err and "1 other checkpoint" in err and "step 0" in err


# ==============================================================================================================
# Outputs: checked before any work, and a record that cannot be written is not lost
# ==============================================================================================================
@pytest.mark.parametrize("flag", ["--out", "--out-folder", "--log-dir", "--checkpoint-dir"])
def test_output_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch, flag):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    paths = {"out": tmp_path / "r.jsonl", "log_dir": "none", "checkpoint_dir": "none"}
    if flag == "--out-folder":
        paths["out"] = tmp_path
    else:
        paths[flag[2:].replace("-", "_")] = blocker / "below" / ("r.jsonl" if flag == "--out" else "d")
    monkeypatch.setattr(T, "set_up", lambda *a, **k: pytest.fail("set-up ran despite a bad output path"))
    assert _cli(**paths) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag.split("-folder")[0] in err and "Traceback" not in err


def test_a_record_that_cannot_be_written_is_saved_beside_the_log(tmp_path, monkeypatch, capsys):
    import sslbench.records.store as records  # the writer that append_record_safely calls

    def disk_full(path, record):
        if str(path).endswith("train.jsonl"):
            raise OSError(28, "No space left on device")
        return real(path, record)

    real = records.append_record
    monkeypatch.setattr(records, "append_record", disk_full)
    rec = T.train(_cfg(tmp_path, eval=False, max_steps=2))
    store = tmp_path / "train.jsonl"  # the run's claim locks the store file, which may therefore exist, empty
    assert rec["status"] == "ok" and (not store.exists() or store.stat().st_size == 0)
    saved = read_records(tmp_path / "runs" / f"unsaved-{rec['id']}.jsonl")
    assert [r["id"] for r in saved] == [rec["id"]] and saved[0]["metrics"]["steps"] == 2
    assert "No space left" in capsys.readouterr().err


# ==============================================================================================================
# Divergence through a linear-algebra failure
# ==============================================================================================================
@pytest.mark.parametrize("regularizer", ["directpred", "isoloss"])
def test_nan_weights_end_directpred_and_isoloss_as_diverged(tmp_path, regularizer):
    def poison(info):
        if info.step == 2:
            with torch.no_grad():
                next(info.model.parameters()).fill_(float("nan"))

    rec = T.train(_cfg(tmp_path, regularizer=regularizer, ema_tau=0.0), on_step=poison)
    assert rec["status"] == "diverged", rec["message"]
    assert read_records(tmp_path / "train.jsonl")[0]["status"] == "diverged"


def test_linalg_failure_is_a_divergence_only_on_a_nonfinite_state(tmp_path, monkeypatch):
    run = _set_up(_cfg(tmp_path, regularizer="directpred", ema_tau=0.0))
    err = torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
    assert not T.diverged_in_linalg(err, run)  # a finite state: a real error
    assert not T.diverged_in_linalg(RuntimeError("other"), run)
    run.reg.F = torch.full((16, 16), float("inf"))
    assert T.diverged_in_linalg(err, run)
    assert not T.diverged_in_linalg(ValueError("x"), run)
    # end to end: eigh fails at step 3 after the state went NaN; a failure on a finite state stays an error
    calls = {"n": 0}
    real_eigh = torch.linalg.eigh

    def failing_eigh(a, *args, **kw):
        calls["n"] += 1
        if calls["n"] > 4:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return real_eigh(a, *args, **kw)

    monkeypatch.setattr(torch.linalg, "eigh", failing_eigh)
    with pytest.raises(torch.linalg.LinAlgError):
        T.train(_cfg(tmp_path / "finite", regularizer="directpred", ema_tau=0.0, eval=False))
    assert read_records(tmp_path / "finite" / "train.jsonl")[0]["status"] == "error"


# ==============================================================================================================
# Two identical runs on one store
# ==============================================================================================================
def test_a_second_identical_run_is_refused_while_the_first_holds_its_claim(tmp_path):
    """Two identical `sslbench train` runs on one store used to share (and corrupt) one log and checkpoint: while
    a live process holds the run's claim, the same run is refused in one line; once released, it runs."""
    from sslbench.records.claims import read_claims, try_claim
    from sslbench.training.config import TrainInputError

    first = T.train(_cfg(tmp_path, eval=False, max_steps=2))
    store = tmp_path / "train.jsonl"
    assert read_claims(store) == {}  # released at the end
    claim = try_claim(store, f"run-{first['id']}")  # this (live) process plays the first run
    try:
        with pytest.raises(TrainInputError, match=f"run {first['id']} is already running .*pid {os.getpid()}"):
            T.train(_cfg(tmp_path, eval=False, max_steps=2, resume="auto"))
    finally:
        claim.release()
    again = T.train(_cfg(tmp_path, eval=False, max_steps=2, resume="auto"))
    assert again["id"] == first["id"]


@pytest.fixture(scope="module")
def finished_checkpoint(tmp_path_factory):
    """The bytes of the checkpoint of ``_cli``'s 2-step run (trained once for the module)."""
    ck = tmp_path_factory.mktemp("finished") / "ck"
    assert _cli(checkpoint_dir=ck) == 0
    (path,) = ck.glob("*.pt")
    return path.name, path.read_bytes()


@pytest.mark.parametrize("field, value, problem", [
    ("step", 10**12, "its step 1000000000000 is not an integer from 0 to the run's 2 steps"),
    ("step", -5, "its step -5 is not an integer from 0"),
    ("step", "3", "its step '3' is not an integer"),
    ("step", True, "its step True is not an integer"),
    ("train_time_s", "1.5", "its train_time_s '1.5' is not a finite number"),
    ("train_time_s", float("nan"), "its train_time_s nan is not a finite number"),
    ("images_seen", -1, "its images_seen -1 is not an integer"),
    ("last_terms", {"loss": "x"}, "its last_terms"),
    ("init_state", [1, 2], "its init_state is not a table of tensors"),
    ("case", "not a case", "is for another case"),
])
def test_a_crafted_checkpoint_progress_is_refused_in_one_line(tmp_path, capsys, finished_checkpoint, field, value,
                                                              problem):
    """issue 18 item 5: a crafted step of 10**12 gave an ok record of 10**12 steps for a 2-step run, -5 was
    accepted, a string step or train_time_s gave a traceback."""
    name, data = finished_checkpoint
    ck = tmp_path / "ck"
    ck.mkdir()
    path = ck / name
    path.write_bytes(data)
    state = torch.load(path, weights_only=True)
    assert state["step"] == 2
    state[field] = value
    torch.save(state, path)
    capsys.readouterr()
    assert _cli("--resume", str(path), out=tmp_path / "r.jsonl", checkpoint_dir=ck) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err and str(path) in err and "Traceback" not in err
    assert read_records(tmp_path / "r.jsonl") == []
