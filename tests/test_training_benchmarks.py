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
