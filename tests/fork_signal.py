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
if {interactive!r}:  # Ctrl-C raises KeyboardInterrupt, as in a terminal (a background launcher may ignore SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
sent = []
def during_fork():
    if not sent:
        sent.append(1)
        os.kill(os.getpid(), signal.{sig})
os.register_at_fork(after_in_parent=during_fork)
"""


def run_with_a_signal_during_fork(sig: str, body: str, timeout: float = 120,
                                  sigint_ignored: bool = False) -> subprocess.CompletedProcess:
    """Run ``PRELUDE`` (``sig`` is a name such as "SIGTERM") then ``body``. ``timeout`` only bounds a hang (the
    bodies judge what happened from events: exit statuses, not the clock). The snippet's Ctrl-C raises
    KeyboardInterrupt whatever this process inherited; ``sigint_ignored``: it starts with SIGINT ignored instead,
    as a command run in the background by a shell (``nohup sslbench sweep ... &``) does."""
    script = PRELUDE.format(root=ROOT, sig=sig, interactive=not sigint_ignored) + body
    import signal

    def ignore() -> None:  # pragma: no cover - runs in the child
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=ignore if sigint_ignored else None)
