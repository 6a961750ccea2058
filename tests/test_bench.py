"""sslbench.execution.bench: the cases, the step that is measured, and the `sslbench bench` command (records, resume,
failures as results)."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sslbench import cli, regularizers
from sslbench.execution import bench as B
from sslbench.execution import bench_command as BC
from sslbench.records import append_record, read_records


def test_iter_cases_builds_the_grid_with_the_schema_keys(monkeypatch):
    real = B.accepts
    monkeypatch.setattr(B, "accepts", lambda name, hp: (name, hp) == ("simclr", "algorithm") or real(name, hp))
    cases = B.iter_cases(["simclr", "byol"], [8, 17], [4], [2, 3], ["cpu"], ["float32"],
                         algorithms=["gram", "cross_correlation"], hparams={"temperature": 0.5})
    simclr = [c for c in cases if c["regularizer"] == "simclr"]
    byol = [c for c in cases if c["regularizer"] == "byol"]
    assert len(simclr) == 2 * 2 * 2 and len(byol) == 2 * 2
    assert {c["algorithm"] for c in simclr} == {"gram", "cross_correlation"}
    assert all(c["hparams"] == {"temperature": 0.5} for c in simclr)
    assert all("algorithm" not in c and "hparams" not in c for c in byol)  # byol has neither
    assert list(byol[0]) == ["regularizer", "dim", "batch", "views", "device", "dtype"]


def _reference_grads(name, leaves, targets=None, **hp):
    reg = regularizers.create(name, **hp)
    zs = [z.detach().clone().requires_grad_(True) for z in leaves]
    out = reg(*zs) if targets is None else reg(zs, [t.clone() for t in targets])
    out.loss.backward()
    return out.loss.detach(), [z.grad for z in zs]


def test_symmetric_step_is_forward_and_backward_without_accumulation():
    step = B.make_step("simclr", dim=9, batch=6, views=3, seed=3)
    loss = step()
    ref_loss, ref_grads = _reference_grads("simclr", step.inputs)
    torch.testing.assert_close(loss, ref_loss)
    for z, g in zip(step.inputs, ref_grads):
        torch.testing.assert_close(z.grad, g)
    step()  # the gradients are reset each call, not accumulated
    for z, g in zip(step.inputs, ref_grads):
        torch.testing.assert_close(z.grad, g)
    assert step.targets is None and len(step.inputs) == 3 and step.inputs[0].shape == (6, 9)


def test_asymmetric_step_takes_online_and_target_views():
    step = B.make_step("byol", dim=7, batch=5, views=2)
    loss = step()
    ref_loss, ref_grads = _reference_grads("byol", step.inputs, step.targets)
    torch.testing.assert_close(loss, ref_loss)
    for z, g in zip(step.inputs, ref_grads):
        torch.testing.assert_close(z.grad, g)
    assert all(not t.requires_grad and t.grad is None for t in step.targets)


def test_dim_is_given_to_regularizers_that_take_it():
    reg = B.make_regularizer("directpred", 12)
    assert reg.F.shape == (12, 12)
    assert B.make_regularizer("directpred", 12, hparams={"dim": 12, "tau": 0.5}).tau == 0.5


def test_inputs_are_seeded_and_typed():
    a, _ = B.make_inputs("simclr", 4, 3, 2, seed=1, dtype="float64")
    b, _ = B.make_inputs("simclr", 4, 3, 2, seed=1, dtype="float64")
    assert a[0].dtype == torch.float64 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize("kwargs, match", [({"dtype": "int8"}, "dtype='int8'"), ({"dim": 1}, "dim=1"),
                                           ({"views": 1}, "views=1"), ({"batch": 2.0}, "batch=2.0")])
def test_bad_case_arguments(kwargs, match):
    args = {"name": "simclr", "dim": 4, "batch": 3, "views": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        B.make_inputs(args.pop("name"), args.pop("dim"), args.pop("batch"), args.pop("views"), **args)


def test_run_case_records_oom_while_building(monkeypatch):
    def boom(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")

    monkeypatch.setattr(B, "make_step", boom)
    m = B.run_case(B.bench_case("simclr", 8, 4, 2, "cpu"), isolate=False)
    assert m.status == "oom" and "64.00 GiB" in m.message


def test_command_writes_records_resumes_and_reports_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(regularizers._REGISTRY, "broken", "no_such_module:Nothing")
    out = tmp_path / "runs" / "bench.jsonl"
    argv = ["--regularizers", "simclr", "byol", "broken", "--dims", "8", "--batches", "6", "--views", "2",
            "--device", "cpu", "--isolate", "never", "--repeats", "3", "--warmup", "1", "--out", str(out)]
    assert _bench(argv) == 1  # one case failed
    recs = read_records(out)
    assert [r["status"] for r in recs] == ["ok", "ok", "error"]
    ok = recs[0]
    assert ok["kind"] == "regularizer_bench"
    assert ok["case"] == {"regularizer": "simclr", "dim": 8, "batch": 6, "views": 2, "device": "cpu",
                          "dtype": "float32"}
    for key in ("time_median_s", "time_iqr_s", "time_min_s", "repeats", "peak_rss_bytes"):
        assert key in ok["metrics"], key
    assert ok["metrics"]["repeats"] == 3 and ok["env"]["torch_version"] == torch.__version__
    assert "no_such_module" in recs[2]["message"]
    # resume: the ok cases are skipped, the failed one is tried again
    capsys.readouterr()
    assert _bench(argv) == 1
    text = capsys.readouterr().out
    assert "2 already done, skipped" in text
    assert [r["status"] for r in read_records(out)] == ["ok", "ok", "error", "error"]
    # a record measured on another setup (another GPU, torch or thread count) does not count as done
    recs = read_records(out)
    recs[0]["env"]["device_name"] = "Some Other GPU"
    other = tmp_path / "other.jsonl"
    for r in recs:
        append_record(other, r)
    assert _bench(argv[:-1] + [str(other)]) == 1
    assert [r["case"]["regularizer"] for r in read_records(other)][len(recs):] == ["simclr", "broken"]
    # --no-resume measures a case again even though it is in the store
    assert _bench(["--regularizers", "simclr", "--dims", "8", "--batches", "6", "--device", "cpu",
                   "--isolate", "never", "--repeats", "2", "--warmup", "0", "--out", str(out), "--no-resume"]) == 0
    assert [r["case"]["regularizer"] for r in read_records(out)].count("simclr") == 2


def test_command_dry_run_and_bad_names(capsys, tmp_path):
    assert _bench(["--regularizers", "simclr", "--dims", "8", "16", "--batches", "4", "--views", "2", "3",
                   "--device", "cpu", "--dry-run", "--out", str(tmp_path / "x.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "4 case(s)" in out and "simclr D=16 N=4 V=3 cpu float32" in out
    assert not (tmp_path / "x.jsonl").exists()
    assert _bench(["--regularizers", "nope", "--dry-run"]) == 2
    assert "unknown regularizer" in capsys.readouterr().err


def test_hparam_flag_reads_values_as_train_and_sweep_do():
    assert BC._hparam("lambd=1/128") == ("lambd", 1 / 128)
    assert BC._hparam("weights=1,40,40") == ("weights", (1, 40, 40))
    assert BC._hparam("permute=false") == ("permute", False)
    assert BC._hparam("algorithm=gram") == ("algorithm", "gram")
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        BC._hparam("lambd")


def test_command_records_an_interrupted_case(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(B, "run_case", interrupt)
    out = tmp_path / "b.jsonl"
    assert _bench(["--regularizers", "simclr", "--dims", "8", "--batches", "4", "--device", "cpu",
                   "--out", str(out)]) == 130
    assert [r["status"] for r in read_records(out)] == ["interrupted"]


@pytest.mark.slow
def test_isolated_cpu_case_measures_peak_rss_in_its_own_process(tmp_path):
    out = tmp_path / "b.jsonl"
    assert _bench(["--regularizers", "simclr", "--dims", "64", "--batches", "32", "--device", "cpu",
                   "--repeats", "2", "--warmup", "1", "--threads", "1", "--out", str(out)]) == 0
    (rec,) = read_records(out)
    assert rec["status"] == "ok" and rec["extra"]["isolated"] is True
    assert rec["extra"]["pid"] > 0 and rec["metrics"]["peak_rss_bytes"] > 50 * 2**20
    assert rec["env"]["threads"] == 1
    json.dumps(rec, allow_nan=False)


# --------------------------------------------------------------------------------------------------------------
# Bad input is refused before any case runs, with one line and exit status 2 (the sweep's checks, in one place)
# --------------------------------------------------------------------------------------------------------------
GRID = ["--regularizers", "barlow_twins", "--dims", "16", "--batches", "32", "--device", "cpu"]


@pytest.mark.parametrize("argv, expected", [
    (["--hp", "no_such=1"], "--hp no_such: none of the regularizers of the grid (barlow_twins)"),
    (["--hparam", "no_such=1"], "--hp no_such: none of the regularizers of the grid (barlow_twins)"),  # the alias
    (["--hp", "lambd=1", "--hparam", "lambd=2"], "lambd is given twice"),  # one option, two spellings
    (["--hparam", "lambd=-1"], "lambd=-1 must be >= 0"),
    (["--hparam", "lambd=abc"], "lambd='abc'"),
    (["--hparam", "lambd=1", "--hparam", "lambd=2"], "lambd is given twice"),
    (["--dims", "1"], "--dims=1 must be >= 2"),
    (["--warmup", "-1"], "--warmup=-1 must be >= 0"),
    (["--device", "tpu"], "--device tpu:"),
])
def test_bad_input_is_refused_before_any_case_runs(tmp_path, monkeypatch, capsys, argv, expected):
    ran = []
    monkeypatch.setattr(B, "run_case", lambda *a, **k: ran.append(a))
    out = tmp_path / "b.jsonl"
    assert _bench(GRID + argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sslbench bench: error:") and expected in err, err
    assert len(err.strip().splitlines()) == 1 and not ran and not out.exists()


def test_a_bad_sfrik_weights_value_is_explained_in_the_form_the_help_shows(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    BC.add_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    assert "tuples 1,40,40" in help_text
    assert _bench(["--regularizers", "sfrik", "--dims", "16", "--batches", "32", "--device", "cpu",
                   "--hparam", "weights=1x40", "--out", str(tmp_path / "b.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "such as 1,40,40" in err and "joined by" not in err, err
    # and the form the help shows is accepted
    assert _bench(["--regularizers", "sfrik", "--dims", "16", "--batches", "32", "--device", "cpu",
                   "--hparam", "weights=1,40,40", "--dry-run"]) == 0


@pytest.mark.slow
def test_unknown_hparam_from_the_command_line_is_one_line_and_no_traceback(tmp_path):
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "X.jsonl"
    proc = subprocess.run([sys.executable, "-m", "sslbench", "bench", *GRID[:-2], "--hparam", "no_such=1",
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no_such" in proc.stderr and not out.exists()


def _bench(argv: list[str]) -> int:
    """`sslbench bench ARGV` through the command-line dispatcher."""
    return cli.main(["bench", *argv])
