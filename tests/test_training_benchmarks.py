"""Smoke tests of the training-speed scripts beside the asv suite (benchmarks/profile_step.py,
benchmarks/augment_speed.py): they run on a tiny case and print their tables, so that they cannot rot. No timing
is asserted (the machine is shared); the tables' structure and the variants' settings are."""

from __future__ import annotations

import importlib.util
import re

import pytest

from benchmarks import augment_speed, profile_step
from sslbench.training.train import PHASES

HAVE_KORNIA = importlib.util.find_spec("kornia") is not None


def test_profile_step_prints_every_phase_for_both_variants(capsys):
    variants = "before,after" if HAVE_KORNIA else "after"
    assert profile_step.main(["--case", "tiny", "--steps", "2", "--skip", "1", "--variants", variants]) == 0
    out = capsys.readouterr().out
    for phase in (*PHASES, "other", "step", "images/s"):
        assert re.search(rf"^{re.escape(phase)}\s+[-\d.]", out, re.M), phase
    assert "after: augment torch, compiled False" in out
    if HAVE_KORNIA:
        assert "before: augment kornia" in out and "before/after" in out


def test_profile_step_measures_phases_from_the_loop():
    r = profile_step.profile("tiny", ["after"], "cpu", steps=3, skip=1)["after"]
    assert set(PHASES) - {"log"} <= set(r["phases"])  # every phase of a step ran inside its range
    assert all(host >= 0 for host, _ in r["phases"].values()) and r["step_ms"] > 0


def test_profile_step_rejects_unknown_variants(capsys):
    assert profile_step.main(["--case", "tiny", "--variants", "fastest"]) == 2
    assert "--variants takes before, eager, after" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_KORNIA, reason="kornia is not installed")
def test_augment_speed_prints_both_backends(capsys):
    assert augment_speed.main(["--presets", "digits", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"256x1x8x8 digits V=2\s+[\d.]+ /\s+[\d.]+ ms\s+[\d.]+ /\s+[\d.]+ ms\s+[\d.]+x", out)


@pytest.mark.slow
def test_gpu_fastpath_script_runs_its_parts_on_the_cpu(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(profile_step.__file__)))
    env = dict(os.environ, DEVICE="cpu", CASE="tiny", PRESETS="digits", REPEATS="1", STEPS="2", SKIP="1",
               PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", os.path.join(root, "benchmarks", "gpu_fastpath.sh"), str(tmp_path / "out")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["augment-speed.txt", "device.txt", "profile.txt", "pytest-gpu.txt"]
    assert "images/s" in (tmp_path / "out" / "profile.txt").read_text()
