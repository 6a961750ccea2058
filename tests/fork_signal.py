"""Run a Python snippet in a fresh interpreter in which one signal lands while the snippet's first
``subprocess.Popen`` forks (sent by an at-fork hook, as a scheduler's stop or a Ctrl-C can land): the case that used
to lose the signal inside logging's at-fork hook (tests/test_runner.py, tests/test_dashboard_launcher.py)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELUDE = """
import os, signal, sys
sys.path.insert(0, {root!r})
sent = []
def during_fork():
    if not sent:
        sent.append(1)
        os.kill(os.getpid(), signal.{sig})
os.register_at_fork(after_in_parent=during_fork)
"""


def run_with_a_signal_during_fork(sig: str, body: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``PRELUDE`` (``sig`` is a name such as "SIGTERM") then ``body``. ``timeout`` only bounds a hang (the
    bodies judge what happened from events: exit statuses, not the clock)."""
    script = PRELUDE.format(root=ROOT, sig=sig) + body
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
