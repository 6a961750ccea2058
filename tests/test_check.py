"""``sslbench check`` and :mod:`sslbench.execution.contract` on losses written outside sslbench: the example
plugin's correct global-batch decorrelation loss, its plain-``all_gather`` twin (lightly #1977), a loss without
input checks and one that never gathers. The built-ins' rows are tests/test_conformance.py."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sslbench.cli import main
from sslbench.execution import contract

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"
FIXED = "sslbench_toy.losses:ToyDecorrelation"
BUGGY = "sslbench_toy.losses:PlainGatherDecorrelation"
NO_CHECKS = "contract_fixtures:NoChecks"
NO_GATHER = "contract_fixtures:NoGather"
FLOAT32 = "contract_fixtures:Float32Only"
RAISES = "contract_fixtures:FailsUnderDDP"
DIST = "distributed (2 gloo ranks)"
BAD_INPUT = ["bad input: mismatched shapes", "bad input: N < 2", "bad input: NaN"]


@pytest.fixture(autouse=True)
def example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["check", *argv])
    return rc, out.getvalue(), err.getvalue()


def tables(text):
    """{spec: {property: (status, why)}} from the printed tables."""
    out, spec = {}, None
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 1 and line.strip() and not line.startswith(("all ", "-")):
            spec = line.strip()
            out[spec] = {}
        elif len(parts) == 3 and parts[1] in ("PASS", "FAIL", "WARN"):
            out[spec][parts[0]] = (parts[1].lower(), parts[2])
    return out


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    """One `sslbench check` of the four losses, a float32-only one and one that raises on rank 1. They share one pair
    of gloo processes; the raising one goes first, so the others run again on a fresh pair."""
    sys.path[:0] = [str(EXAMPLE / "src")]
    try:
        rc, out, err = run_cli(RAISES, FIXED, BUGGY, NO_CHECKS, NO_GATHER, FLOAT32)
    finally:
        sys.path.remove(str(EXAMPLE / "src"))
    return rc, out, err, tables(out)


@pytest.mark.slow
def test_the_plain_all_gather_loss_fails_only_the_distributed_row_with_the_ratio(four):
    rc, out, err, t = four
    rows = t[BUGGY]
    assert len(rows) == len(contract.LOCAL_CHECKS) + 1
    assert [p for p, (status, _) in rows.items() if status != "pass"] == [DIST]
    why = rows[DIST][1]
    assert "gradient is 1/2 of what DDP needs" in why and "measured ratio 0.500" in why
    assert "torch.distributed.nn.functional.all_gather" in why
    assert rc == 1 and BUGGY in err


@pytest.mark.slow
def test_its_fixed_twin_passes_every_row(four):
    rows = four[3][FIXED]
    assert len(rows) == len(contract.LOCAL_CHECKS) + 1
    assert {s for s, _ in rows.values()} == {"pass"}, rows
    assert "each rank's gradient = 2 × single-process gradient" in rows[DIST][1]


@pytest.mark.slow
def test_a_loss_without_input_checks_gets_the_warn_rows(four):
    rows = four[3][NO_CHECKS]
    assert [p for p, (s, _) in rows.items() if s != "pass"] == BAD_INPUT
    assert all(rows[p][0] == "warn" and "no check: returns" in rows[p][1] for p in BAD_INPUT)


@pytest.mark.slow
def test_a_loss_that_does_not_gather_fails_with_its_own_explanation(four):
    rows = four[3][NO_GATHER]
    assert [p for p, (s, _) in rows.items() if s != "pass"] == [DIST]
    assert "loss of its own rows only" in rows[DIST][1] and "gather" in rows[DIST][1]


def test_exit_0_when_every_row_passes_or_warns():
    rc, out, err = run_cli(FIXED, NO_CHECKS, "--no-distributed")
    assert rc == 0 and err == "", err
    assert "all 2 pass (3 warning(s))" in out
    assert {s for s, _ in tables(out)[FIXED].values()} == {"pass"}


def test_hyper_parameters_reach_the_class():
    rc, out, _ = run_cli(FIXED, "--hp", "lambd=0.02", "--no-distributed")
    assert rc == 0 and f"{FIXED}(lambd=0.02)" in out
    rc, _, err = run_cli(FIXED, "--hp", "lambd=-1", "--no-distributed")
    assert rc == 2 and "lambd=-1" in err and len(err.strip().splitlines()) == 1


def _one_line_exit_2(*argv):
    rc, out, err = run_cli(*argv)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_is_exit_2_with_one_line(tmp_path, monkeypatch):
    assert "unknown regularizer 'no_such_loss'" in _one_line_exit_2("no_such_loss")
    assert "no_such_package" in _one_line_exit_2("no_such_package.losses:Loss")
    assert "NotALoss" in _one_line_exit_2("contract_fixtures:NotALoss")
    assert "lamda" in _one_line_exit_2(FIXED, "--hp", "lamda=0.1")
    (tmp_path / "broken_plugin.py").write_text("import torch\nraise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _one_line_exit_2(FIXED, "broken_plugin:Loss")
    assert "broken_plugin" in err and "boom at import" in err


def test_assert_contract_in_a_users_test_suite():
    rows = contract.assert_contract(FIXED, distributed=False, allow_warn=False)
    assert all(r.status == contract.PASS for r in rows)
    contract.assert_contract(NO_CHECKS, distributed=False)  # warnings are allowed by default
    with pytest.raises(AssertionError, match=r"(?s)breaks the regularizer contract.*bad input: NaN +\| WARN"):
        contract.assert_contract(NO_CHECKS, distributed=False, allow_warn=False)


def test_a_class_that_changes_its_input_fails_that_row(monkeypatch):
    import sslbench_toy.losses as toy

    class InPlace(toy.ToyDecorrelation):
        def forward(self, *views):
            views[0].data.clamp_(-1.0, 1.0)  # "normalises" the caller's tensor, unseen by autograd
            return super().forward(*views)

    monkeypatch.setattr(toy, "InPlace", InPlace, raising=False)
    row = contract.run_check(contract.LOCAL_CHECKS["inputs unchanged"],
                             contract.Subject("sslbench_toy.losses:InPlace"), "inputs unchanged")
    assert row.status == contract.FAIL and "input 0 was changed in place" in row.why


@pytest.mark.slow
def test_the_example_plugin_installs_and_is_checked_by_entry_point_name(tmp_path):
    """pip installs examples/plugin (no download: --no-deps --no-build-isolation) into a folder of its own; its
    entry point is then found by name, and its own test suite (assert_contract) passes."""
    target, source = tmp_path / "site", tmp_path / "plugin"  # a copy: the build writes beside the sources
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(source)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(target)])}
    check = subprocess.run([sys.executable, "-m", "sslbench", "check", "toy_decorrelation", FIXED,
                            "toy_decorrelation_plain_gather"], capture_output=True, text=True, env=env, cwd=tmp_path)
    found = tables(check.stdout)
    assert set(found) == {"toy_decorrelation", FIXED, "toy_decorrelation_plain_gather"}, check.stdout + check.stderr
    for spec in ("toy_decorrelation", FIXED):  # by entry-point name and by module:Class
        assert {s for s, _ in found[spec].values()} == {"pass"}, check.stdout
    buggy = found["toy_decorrelation_plain_gather"]
    assert [p for p, (s, _) in buggy.items() if s != "pass"] == [DIST]
    assert buggy[DIST][1].startswith("V=2: gradient is 1/2 of what DDP needs")
    assert check.returncode == 1
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           capture_output=True, text=True, env=env, cwd=source)
    assert suite.returncode == 0 and "2 passed" in suite.stdout, suite.stdout + suite.stderr


@pytest.mark.slow
def test_an_error_on_one_rank_fails_that_row_and_the_next_spec_still_runs(four):
    """The others' rows (the tests above) come from the fresh pair of processes started after this error."""
    status, why = four[3][RAISES][DIST]
    assert status == "fail" and "rank 1: RuntimeError: this loss does not support torch.distributed" in why
    assert four[3][FIXED][DIST][0] == "pass"


def test_the_checks_leave_the_global_rng_and_threads_as_they_were():
    import torch

    threads = torch.get_num_threads()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    contract.local_rows(contract.Subject(FIXED))
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


def test_a_two_view_loss_is_not_called_with_three():
    subject = contract.Subject("contract_fixtures:TwoViews")
    assert subject.max_views == 2 and [c.views for c in contract.distributed_cases(subject)] == [2]
    rows = {r.property: r for r in contract.local_rows(subject)}
    views = rows["V=3 views"]
    assert views.status == contract.PASS and "not applicable: forward takes 2 views" in views.why
    assert all(r.status == contract.PASS for r in rows.values()), rows


@pytest.mark.slow
def test_a_float32_loss_meets_the_distributed_contract_within_float32_rounding(four):
    assert four[3][FLOAT32][DIST][0] == "pass", four[3][FLOAT32][DIST]


def test_a_float32_only_loss_warns_on_float64_and_gradcheck():
    rows = {r.property: r for r in contract.local_rows(contract.Subject("contract_fixtures:Float32Only"))}
    assert {p for p, r in rows.items() if r.status != contract.PASS} == {"dtype float64", "gradcheck float64"}
    assert rows["dtype float64"].status == contract.WARN and "torch.float32" in rows["dtype float64"].why
    assert rows["gradcheck float64"].status == contract.WARN and "not run" in rows["gradcheck float64"].why
