"""What a training loop and a benchmark runner both need to know about memory: the resident memory of this
process (current and peak) and whether an exception means the device or host ran out of memory.

Below both :mod:`sslbench.training` and :mod:`sslbench.execution` (the loop records its peak resident memory and
turns an out-of-memory step into a clean status; the runner does the same for a measured case), so neither has to
import the other. ``sslbench.execution.measure`` re-exports :class:`RssTracker` and :func:`is_oom_error`.
"""

from __future__ import annotations

import sys

import torch

__all__ = ["RssTracker", "is_oom_error"]


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ru_maxrss_bytes() -> int | None:
    try:
        import resource

        v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(v) if sys.platform == "darwin" else int(v) * 1024
    except (ImportError, OSError):
        return None


class RssTracker:
    """Resident memory of this process: current (``VmRSS``) and peak (``VmHWM``, or ``ru_maxrss``).

    :meth:`reset` resets the peak to the current size where Linux allows it (writing ``5`` to
    ``/proc/self/clear_refs``) and says whether it could; otherwise the peak is the process's lifetime peak.
    """

    def current(self) -> int | None:
        rss = _proc_status_bytes("VmRSS")
        if rss is None:
            try:
                import psutil

                rss = int(psutil.Process().memory_info().rss)
            except Exception:  # noqa: BLE001
                rss = None
        return rss

    def peak(self) -> int | None:
        hwm = _proc_status_bytes("VmHWM")
        return hwm if hwm is not None else _ru_maxrss_bytes()

    def reset(self) -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False


def _oom_types() -> tuple[type, ...]:
    types: list[type] = [MemoryError]
    for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)):
        if isinstance(t, type):
            types.append(t)
    return tuple(types)


_OOM_PHRASES = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate memory")


def is_oom_error(exc: BaseException) -> bool:
    """True for out-of-memory errors: ``torch.OutOfMemoryError`` (CUDA), ``MemoryError``, and runtime errors of
    the CPU allocator ("DefaultCPUAllocator: can't allocate memory") or of cuBLAS/cuFFT ("out of memory")."""
    if isinstance(exc, _oom_types()):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(p in text for p in _OOM_PHRASES)
    return False
