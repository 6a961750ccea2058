"""Files sslbench writes at guessable paths are never written through a link planted there (issue 18, item 2).

Run ids are hashes of the configuration, so ``<log-dir>/<run id>.jsonl``, ``<checkpoint-dir>/<run id>.pt`` and (in
the old code) the checkpoint's temporary file ``.<run id>.pt.tmp<pid>`` could be guessed. A symlink or hard link
planted there must be replaced (or refused), and the file it points to must stay byte for byte as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dist_train_cases import tiny_config
from sslbench.training import train as T
from sslbench.training.checkpoint import save_checkpoint

PRECIOUS = b"precious data that must survive\n"


def _victim(tmp_path) -> Path:
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_bytes(PRECIOUS)
    return victim


def _plant(kind: str, at: Path, victim: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    (os.symlink if kind == "symlink" else os.link)(victim, at)


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_train_never_writes_its_log_through_a_planted_link(tmp_path, kind):
    cfg = tiny_config(tmp_path, eval=False, epochs=1, checkpoint_dir=None)
    run_id = T.set_up(cfg.resolved(), 0, 1, torch.device("cpu")).run_id
    log, victim = tmp_path / "runs" / f"{run_id}.jsonl", _victim(tmp_path)
    _plant(kind, log, victim)
    rec = T.train(cfg)
    assert rec["status"] == "ok" and rec["id"] == run_id
    assert victim.read_bytes() == PRECIOUS
    assert not log.is_symlink() and log.stat().st_ino != victim.stat().st_ino
    events = [line for line in log.read_text().splitlines() if line]
    assert '"event": "start"' in events[0] and '"event": "end"' in events[-1]


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_a_resumed_log_is_not_read_or_written_through_a_planted_link(tmp_path, kind):
    log, victim = tmp_path / "runs" / "r.jsonl", _victim(tmp_path)
    victim.write_bytes(b'{"event": "secret", "step": 1}\n')
    _plant(kind, log, victim)
    w = T._Log(log, resume_step=3)
    w.write("resume", step=3)
    w.close()
    assert victim.read_bytes() == b'{"event": "secret", "step": 1}\n'
    assert not log.is_symlink() and "secret" not in log.read_text() and '"resume"' in log.read_text()


def test_a_resumed_log_keeps_its_own_lines_up_to_the_step(tmp_path):
    log = tmp_path / "r.jsonl"
    log.write_text('{"event": "start"}\n{"event": "step", "step": 2}\n{"event": "step", "step": 5}\n{"ev')
    w = T._Log(log, resume_step=3)
    w.write("resume", step=3)
    w.close()
    events = [line for line in log.read_text().splitlines()]
    assert events[:2] == ['{"event": "start"}', '{"event": "step", "step": 2}'] and len(events) == 3


@pytest.mark.parametrize("where", ["final", "old temporary"])
def test_a_checkpoint_is_never_written_through_a_planted_link(tmp_path, where):
    path, victim = tmp_path / "ckpt" / "run.pt", _victim(tmp_path)
    # the old code wrote to .<name>.tmp<pid>, a name anyone could plant a link at in advance
    at = path if where == "final" else path.with_name(f".{path.name}.tmp{os.getpid()}")
    _plant("symlink", at, victim)
    save_checkpoint(path, {"format": 2, "step": 1})
    assert victim.read_bytes() == PRECIOUS
    assert not path.is_symlink() and torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left behind


def test_a_failed_checkpoint_write_leaves_the_old_one_and_no_temporary(tmp_path):
    path = tmp_path / "run.pt"
    save_checkpoint(path, {"format": 2, "step": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"format": 2, "step": 2, "x": Boom()})
    assert torch.load(path, weights_only=True)["step"] == 1 and sorted(os.listdir(tmp_path)) == ["run.pt"]
