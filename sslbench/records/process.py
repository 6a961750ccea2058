"""Process helpers of the torch-free floor (the standard library only), for the launchers of both halves: the
training runner and the local executor (execution) and the dashboard's launcher (torch-free)."""

from __future__ import annotations

import os
import signal

__all__ = ["die_with_parent"]


def die_with_parent(signum: int = signal.SIGKILL, parent: int | None = None) -> None:  # pragma: no cover
    """Linux: this process gets ``signum`` when its parent dies (``PR_SET_PDEATHSIG``): run in a child between fork
    and exec (the runner's cases, the dashboard's server, the local executor's controllers), or first thing in a
    process (a local worker). ``parent``: the pid the parent had; if it is already gone (it died before the call,
    and the child was re-parented), the process exits at once rather than run on as an orphan."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signum))  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the child may outlive a killed parent
        return
    if parent is not None and os.getppid() != parent:
        os._exit(128 + int(signum))
