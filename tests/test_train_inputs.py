"""Every bad input to ``sslbench train`` is one clear line on stderr and exit status 2, before any work: no
traceback, no record, no training. Table-driven through ``sslbench.cli.main`` (what the ``sslbench`` script
runs), on tiny synthetic data; one case also through a real ``python -m sslbench`` process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from sslbench import cli
from sslbench.training import train as T

#: the arguments of a valid tiny run; a case replaces some (None removes a flag)
BASE = {"--dataset": "synthetic", "--data-option": "num_samples=32", "--batch-size": "16", "--epochs": "1",
        "--max-steps": "1", "--device": "cpu", "--no-eval": None, "--augment": "none", "--quiet": None,
        "--no-progress": None}
NO_CUDA = not torch.cuda.is_available()

# (name, replaced arguments, extra argv, what the one line must say)
CASES = [
    ("unknown data set", {"--dataset": "no_such_data", "--data-option": False}, [], "no_such_data"),
    ("data set without its files", {"--dataset": "cifar10", "--data-option": False}, ["--data-root", "{tmp}/none"],
     "cifar10"),
    ("folder data set without a root", {"--dataset": "folder", "--data-option": False}, [], "root"),
    ("split the data set lacks", {}, ["--pretrain-split", "unlabeled"], "unlabeled"),
    ("misspelled --data-option", {"--data-option": "num_sample=32"}, [], "num_sample"),
    ("--data-option without '='", {"--data-option": "num_samples"}, [], "NAME=VALUE"),
    ("unknown backbone", {}, ["--backbone", "resnet999"], "resnet999"),
    ("unknown augmentation preset", {"--augment": "fancy"}, [], "fancy"),
    ("batch larger than the data", {"--batch-size": "64"}, [], "batch_size=64"),
    ("block_size larger than dim", {}, ["--regularizer", "barlow_twins_fft", "--hp", "block_size=512", "--dim", "128"],
     "block_size=512"),
    ("unknown hyper-parameter", {}, ["--hp", "lambda=0.1"], "lambda"),
    ("bad hyper-parameter value", {}, ["--hp", "lambd=-1"], "lambd"),
    ("fraction out of range", {}, ["--fraction", "1.5"], "fraction"),
    ("one view", {}, ["--views", "1"], "views"),
    ("zero epochs", {"--epochs": "0"}, [], "epochs"),
    ("negative learning rate", {}, ["--lr", "-1"], "lr"),
    ("bad projector widths", {}, ["--projector", "512-x"], "projector"),
    ("EMA on a symmetric regularizer", {}, ["--ema-tau", "0.5"], "ema_tau"),
    ("non-positive gradient clip", {}, ["--grad-clip", "0"], "grad_clip"),
    ("--out below a file", {}, ["--out", "{tmp}/file/r.jsonl"], "--out"),
    ("--out naming a folder", {}, ["--out", "{tmp}"], "--out"),
    ("--out naming a file that is not a store", {}, ["--out", "{tmp}/README"], "--out"),
    ("--log-dir below a file", {}, ["--log-dir", "{tmp}/file/runs"], "--log-dir"),
    ("--checkpoint-dir below a file", {}, ["--checkpoint-dir", "{tmp}/file/ckpt"], "--checkpoint-dir"),
    ("--resume of a missing file", {}, ["--resume", "{tmp}/nothing.pt"], "no such file"),
    ("--resume of a garbage file", {}, ["--resume", "{tmp}/README"], "not a torch file"),
    ("--device cuda without CUDA", {"--device": "cuda"}, [], "CUDA"),
    ("--amp bf16 on the CPU", {}, ["--amp", "bf16"], "amp"),
]
NEEDS_NO_CUDA = ("--device cuda without CUDA", "--amp bf16 on the CPU")


def _argv(tmp_path, replaced: dict, extra: list) -> list[str]:
    args = dict(BASE, **{"--out": str(tmp_path / "r.jsonl"), "--log-dir": str(tmp_path / "runs"),
                         "--checkpoint-dir": str(tmp_path / "ckpt")})
    args.update(replaced)
    argv = ["train"]
    for flag, value in args.items():
        if value is False:
            continue
        argv += [flag] if value is None else [flag, value]
    return argv + [x.format(tmp=tmp_path) for x in extra]


def _prepare(tmp_path) -> None:
    (tmp_path / "file").write_text("a file, not a folder\n")
    (tmp_path / "README").write_text("# not a record store\n")


@pytest.mark.parametrize("name, replaced, extra, says", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, name, replaced, extra, says):
    if name in NEEDS_NO_CUDA and not NO_CUDA:
        pytest.skip("CUDA is available here")
    _prepare(tmp_path)
    monkeypatch.setattr(T, "train_steps", lambda *a, **k: pytest.fail("training started despite a bad input"))
    assert cli.main(_argv(tmp_path, replaced, extra)) == 2
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sslbench train: error: ") and says in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out and captured.out == ""
    assert not (tmp_path / "r.jsonl").exists()  # no record


def test_the_table_covers_the_issue_list():
    # the inputs issue 12 names: data set unknown or missing, CUDA, backbone, augmentation, batch, block_size,
    # --data-option keys
    names = {c[0] for c in CASES}
    for must in ("unknown data set", "data set without its files", "--device cuda without CUDA", "unknown backbone",
                 "unknown augmentation preset", "batch larger than the data", "block_size larger than dim",
                 "misspelled --data-option"):
        assert must in names
    assert len(CASES) >= 25


def test_the_base_arguments_train(tmp_path, capsys):
    # the table's cases differ from a valid run only by what they name
    _prepare(tmp_path)
    assert cli.main(_argv(tmp_path, {}, [])) == 0
    assert (tmp_path / "r.jsonl").exists()


@pytest.mark.slow
def test_the_installed_command_prints_no_traceback(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(T.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "sslbench", *_argv(tmp_path, {}, ["--regularizer", "barlow_twins_fft", "--hp",
                                                                   "block_size=512", "--dim", "128"])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0 and "block_size=512" in proc.stderr


def test_a_missing_test_split_is_one_line_before_any_training(tmp_path, capsys, monkeypatch):
    """An image folder with its classes at the root serves 'train' but has no 'test' split: that must stop the run
    before training (it used to train to the end and then fail in the evaluation, losing the run)."""
    from PIL import Image

    for k in range(2):
        (tmp_path / "imgs" / f"class{k}").mkdir(parents=True)
        for i in range(8):
            Image.new("L", (8, 8), color=40 * k + i).save(tmp_path / "imgs" / f"class{k}" / f"{i}.png")
    steps = []
    monkeypatch.setattr(T, "train_steps", lambda *a, **k: steps.append(1))
    code = cli.main(["train", "--dataset", "folder", "--data-root", str(tmp_path / "imgs"), "--batch-size", "8",
                     "--epochs", "1", "--out", str(tmp_path / "s.jsonl"), "--log-dir", "none", "--checkpoint-dir",
                     "none", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not steps
    assert "'test'" in err and "--no-eval" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
