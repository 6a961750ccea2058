"""Every command, a table of bad arguments: each must end with a non-zero exit and one clear line that names the
problem, never a Python traceback, and never after doing the work (each case would take minutes if the input were
only checked at the end: the base arguments keep them tiny, and the time-out catches a run that starts anyway).

Run in process through :func:`sslbench.cli.main` (an exception escaping it is what a user would see as a
traceback), plus a few in real processes to check what the console script prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from sslbench import cli

TRAIN = ["train", "--dataset", "digits", "--epochs", "1", "--max-steps", "1", "--no-eval", "--quiet",
         "--no-progress"]
BENCH = ["bench", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32", "--isolate", "never",
         "--warmup", "0", "--repeats", "1"]
SWEEP = ["sweep", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32"]


def _cases(tmp):
    """(name, argv, a word the one line must contain). ``tmp`` holds a plain file and a folder to misuse."""
    f, d = tmp / "afile.txt", tmp / "adir"
    store = str(tmp / "store.jsonl")
    garbage = tmp / "garbage.pt"
    return [
        ("unknown command", ["trian"], "invalid choice"),
        # ------------------------------------------------------------------ train
        ("train unknown dataset", [*TRAIN[:1], "--dataset", "no_such_data", "--epochs", "1", "--out", store],
         "no_such_data"),
        ("train dataset files missing", [*TRAIN[:1], "--dataset", "cifar10", "--data-root", str(tmp / "none"),
                                         "--epochs", "1", "--out", store], "cifar"),
        ("train cuda without cuda", [*TRAIN, "--device", "cuda", "--out", store], "cuda"),
        ("train unknown backbone", [*TRAIN, "--backbone", "resnet999", "--out", store], "resnet999"),
        ("train unknown augmentation", [*TRAIN, "--augment", "no_such_preset", "--out", store], "no_such_preset"),
        ("train batch larger than the data", [*TRAIN, "--batch-size", "100000", "--out", store], "batch"),
        ("train block_size larger than dim", [*TRAIN, "--regularizer", "barlow_twins_fft", "--hp", "block_size=512",
                                              "--dim", "128", "--out", store], "block_size"),
        ("train misspelled data option", [*TRAIN[:1], "--dataset", "synthetic", "--data-option", "num_sampels=64",
                                          "--epochs", "1", "--out", store], "num_sampels"),
        ("train bad fashion_mnist pad", [*TRAIN[:1], "--dataset", "fashion_mnist", "--data-option", "pad=-2",
                                         "--epochs", "1", "--out", store], "pad=-2"),
        ("train unknown hyper-parameter", [*TRAIN, "--hp", "nope=1", "--out", store], "nope"),
        ("train out-of-range hyper-parameter", [*TRAIN, "--hp", "lambd=-1", "--out", store], "lambd"),
        ("train hyper-parameter without value", [*TRAIN, "--hp", "lambd", "--out", store], "NAME=VALUE"),
        ("train zero epochs", [*TRAIN[:1], "--dataset", "digits", "--epochs", "0", "--out", store], "epochs"),
        ("train fraction above one", [*TRAIN, "--fraction", "2", "--out", store], "fraction"),
        ("train negative lr", [*TRAIN, "--lr", "-1", "--out", store], "lr"),
        ("train bad projector", [*TRAIN, "--projector", "abc", "--out", store], "projector"),
        ("train one view", [*TRAIN, "--views", "1", "--out", store], "views"),
        ("train unknown optimizer", [*TRAIN, "--optimizer", "adam", "--out", store], "invalid choice"),
        ("train out is a folder", [*TRAIN, "--out", str(d)], str(d)),
        ("train out below a file", [*TRAIN, "--out", str(f / "x.jsonl")], str(f)),
        ("train out is not a store", [*TRAIN, "--out", str(f)], str(f)),
        ("train checkpoint dir below a file", [*TRAIN, "--out", store, "--checkpoint-dir", str(f / "ck")], str(f)),
        ("train log dir below a file", [*TRAIN, "--out", store, "--log-dir", str(f / "logs")], str(f)),
        ("train resume from garbage", [*TRAIN, "--out", store, "--resume", str(garbage)], str(garbage)),
        ("train resume from a missing file", [*TRAIN, "--out", store, "--resume", str(tmp / "missing.pt")],
         "missing.pt"),
        ("train epochs not a number", [*TRAIN[:1], "--epochs", "many"], "invalid int"),
        ("train plugin that fails to import", [*TRAIN, "--regularizer", "no_such_pkg.losses:Loss"], "no_such_pkg"),
        # ------------------------------------------------------------------ bench
        ("bench unknown hparam", [*BENCH, "--hparam", "no_such=1", "--out", store], "no_such"),
        ("bench invalid hparam value", [*BENCH, "--hparam", "lambd=-1", "--out", store], "lambd"),
        ("bench unknown regularizer", ["bench", "--regularizers", "nope", "--dims", "16", "--out", store], "nope"),
        ("bench zero dim", ["bench", "--regularizers", "barlow_twins", "--dims", "0", "--out", store], "0"),
        ("bench plugin that fails to import", ["bench", "--regularizers", "no_such_pkg.losses:Loss", "--dims", "16",
                                               "--out", store], "no_such_pkg"),
        ("bench negative batch", ["bench", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "-5",
                                  "--out", store], "-5"),
        ("bench cuda without cuda", [*BENCH, "--device", "cuda", "--out", store], "cuda"),
        ("bench out is a folder", [*BENCH, "--out", str(d)], str(d)),
        ("bench out is not a store", [*BENCH, "--out", str(f)], str(f)),
        ("bench out below a file", [*BENCH, "--out", str(f / "s.jsonl")], str(f)),
        # ------------------------------------------------------------------ sweep
        ("sweep missing config", ["sweep", "--config", str(tmp / "missing.toml")], "missing.toml"),
        ("sweep broken config", ["sweep", "--config", str(f)], str(f)),
        ("sweep unknown regularizer", ["sweep", "--regularizers", "nope", "--dims", "16", "--out", store], "nope"),
        ("sweep unknown hparam", [*SWEEP, "--hparam", "no_such=1", "--out", store], "no_such"),
        ("sweep out is not a store", [*SWEEP, "--out", str(f)], str(f)),
        ("sweep out is a folder", [*SWEEP, "--out", str(d)], str(d)),
        ("sweep unknown study", ["sweep", "--study", "no_such_study"], "no_such_study"),
        ("sweep unknown study scale", ["sweep", "--study", "sfrik", "--scale", "tpu"], "tpu"),
        ("sweep scale without study", ["sweep", "--scale", "gpu"], "--study"),
        # sidecars (<store>.sweep: claims, jobs.txt) in odd states, made by _prepare_sidecars
        ("sweep sidecar is a file", [*SWEEP, "--out", str(tmp / "sc-file.jsonl")], "sc-file.jsonl.sweep"),
        ("sweep claims is a file", [*SWEEP, "--out", str(tmp / "sc-claims.jsonl")], "claims"),
        ("train sidecar is a file", [*TRAIN, "--out", str(tmp / "sc-file.jsonl")], "sc-file.jsonl.sweep"),
        ("sweep store with two hard links", [*SWEEP, "--out", str(tmp / "sc-hard.jsonl")], "hard links"),
        ("sweep local with jobs.txt a folder", [*SWEEP, "--executor", "local", "--out", str(tmp / "sc-jobs.jsonl")],
         "jobs.txt"),
        ("sweep status with jobs.txt a folder", [*SWEEP, "--status", "--out", str(tmp / "sc-jobs.jsonl")], "jobs.txt"),
        ("sweep cancel with jobs.txt a folder", [*SWEEP, "--cancel", "--out", str(tmp / "sc-jobs.jsonl")], "jobs.txt"),
        ("sweep status sidecar is a file", [*SWEEP, "--status", "--out", str(tmp / "sc-file.jsonl")],
         "sc-file.jsonl.sweep"),
        ("sweep status of a mistyped store", [*SWEEP, "--status", "--out", str(tmp / "typo" / "s.jsonl")],
         "no such store"),
        ("sweep cancel of a mistyped store", [*SWEEP, "--cancel", "--out", str(tmp / "typo" / "s.jsonl")],
         "no such store"),
        ("sweep status out is a folder", [*SWEEP, "--status", "--out", str(d)], str(d)),
        # ------------------------------------------------------------------ analyze, report, dashboard, demo
        ("analyze results is /dev/null", ["analyze", "--results", "/dev/null"], "/dev/null"),
        ("analyze results missing", ["analyze", "--results", str(tmp / "nothing")], "nothing"),
        ("analyze unknown table", ["analyze", "--tables", "nope"], "invalid choice"),
        ("report results missing", ["report", "--results", str(tmp / "nothing")], "nothing"),
        ("report unknown study", ["report", "--study", "no_such_study"], "no_such_study"),
        ("report --run, the old spelling", ["report", "--run", "fft", "--scale", "gpu"], "sslbench sweep --study fft"),
        ("dashboard results is a file", ["dashboard", "--results", str(f), "--dry-run"], str(f)),
        ("dashboard bad port", ["dashboard", "--port", "-1", "--dry-run"], "port"),
        ("demo unknown regularizer", ["demo", "--regularizer", "nope"], "invalid choice"),
        ("demo unknown dataset", ["demo", "--dataset", "no_such_data", "--skip-bench",
                                  "--out-dir", str(tmp / "demo")], "no_such_data"),
        # ------------------------------------------------------------------ bench inputs (issue 18 item 11)
        ("bench dims beyond memory", [*BENCH[:2], "barlow_twins", "--dims", "10000000000000", "--out", store],
         "memory"),
        ("bench dims past int64", [*BENCH[:2], "barlow_twins", "--dims", str(10**24), "--dry-run", "--out", store],
         "memory"),
        ("bench directpred D=10**6 dry run", ["bench", "--regularizers", "directpred", "--dims", "1000000",
                                              "--batches", "4", "--dry-run", "--out", store], "memory"),
        ("bench device meta", [*BENCH, "--device", "meta", "--out", store], "meta"),
        ("bench device mps", [*BENCH, "--device", "mps", "--out", store], "mps"),
        ("bench device xla", [*BENCH, "--device", "xla", "--out", store], "xla"),
        ("bench device cpu:1", [*BENCH, "--device", "cpu:1", "--dry-run", "--out", store], "cpu:1"),
        ("bench grid over 10000 cases", ["bench", "--dims", *map(str, range(2, 202)), "--batches",
                                         *map(str, range(2, 62)), "--out", store], "--yes"),
        ("sweep bench device xla", [*SWEEP, "--kind", "bench", "--device", "xla", "--out", store], "xla"),
        ("sweep bench dims beyond memory", [*SWEEP[:3], "--kind", "bench", "--dims", "10000000000000",
                                            "--out", store], "memory"),
        ("sweep bench grid over 10000 cases", [*SWEEP[:3], "--kind", "bench", "--dims", *map(str, range(2, 202)),
                                               "--batches", *map(str, range(2, 62)), "--dry-run"], "--yes"),
        ("sweep train device meta", ["sweep", "--kind", "train", "--device", "meta", "--dry-run"], "meta"),
        # ------------------------------------------------------------------ check
        ("check unknown regularizer", ["check", "nope"], "nope"),
        ("check plugin that fails to import", ["check", "no_such_package.losses:Loss"], "no_such_package"),
        ("check out-of-range hyper-parameter", ["check", "barlow_twins", "--hp", "lambd=-1"], "lambd"),
        ("check no spec", ["check"], "SPEC"),
    ]


def _prepare(tmp):
    (tmp / "afile.txt").write_text("# A README\n\nProse, not a record store nor a config file.\n")
    (tmp / "adir").mkdir()
    (tmp / "garbage.pt").write_bytes(b"\x00not a checkpoint\xff" * 10)
    _prepare_sidecars(tmp)


def _prepare_sidecars(tmp):
    """Stores whose sidecar is in an odd state: <store>.sweep a file, its claims a file, jobs.txt a folder, a store
    with two names (hard links)."""
    for name in ("sc-file", "sc-claims", "sc-hard", "sc-jobs"):
        (tmp / f"{name}.jsonl").touch()
    (tmp / "sc-file.jsonl.sweep").write_text("not a folder\n")
    (tmp / "sc-claims.jsonl.sweep").mkdir()
    (tmp / "sc-claims.jsonl.sweep" / "claims").write_text("not a folder\n")
    os.link(tmp / "sc-hard.jsonl", tmp / "sc-hard-2.jsonl")
    (tmp / "sc-jobs.jsonl.sweep" / "jobs.txt").mkdir(parents=True)


CASES = _cases(Path("/tmp"))  # for the test ids only; each test builds its own under tmp_path


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(index, tmp_path, capsys, monkeypatch):
    _prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    name, argv, word = _cases(tmp_path)[index]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    except BaseException:  # noqa: BLE001 - this is what a user would see as a traceback
        pytest.fail(f"{name}: sslbench {' '.join(argv)} raised:\n{traceback.format_exc()}")
    out = capsys.readouterr()
    text = out.out + out.err
    assert code not in (0, None), f"{name}: exit {code}, expected non-zero\n{text}"
    assert "Traceback" not in text, text
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert lines, f"{name}: nothing on stderr:\n{text}"
    assert any(word.lower() in line.lower() for line in lines), f"{name}: no line names {word!r}:\n{out.err}"


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["train", "--dataset", "no_such_data", "--epochs", "1", "--out", "s.jsonl"],
                                  ["bench", "--regularizers", "barlow_twins", "--dims", "16", "--batches", "32",
                                   "--hparam", "no_such=1", "--out", "s.jsonl"],
                                  ["analyze", "--results", "/dev/null"]])
def test_console_script_prints_no_traceback(argv, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "sslbench", *argv], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env=env)
    assert p.returncode != 0
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    assert p.stderr.strip(), "no message"
