"""Helpers of the tests that start real processes: is a pid running, has a sweep worker started its case."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, exited but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def measuring(pid: int) -> bool:
    """Whether sweep worker ``pid`` has started its case's measurement process (``--isolate always``)."""
    import psutil

    try:
        return any("sslbench.execution.measure" in " ".join(c.cmdline()) for c in psutil.Process(pid).children())
    except psutil.Error:
        return False
