"""How much of this process's CPUs other processes used while a case was timed.

A CPU timing taken while other processes run is not the case's own: with as many torch threads as free cores, the
OpenMP threads wait for one another whenever one of them is descheduled, and a Barlow Twins step at D = 256,
N = 256 measured 240 ms with 2 threads on 2 cores beside a 2-thread training run, against 1.5 ms on one thread of
the same busy machine. The figure kept with each CPU measurement is the other processes' load over the timed
calls, in cores: the busy time of the CPUs this process may run on (``/proc/stat``, the per-CPU lines of its
affinity set) minus this process's own CPU time, over the wall time. A case is *contended* when its threads and
that load do not fit in those cores (:func:`contended`).

Linux only (``/proc/stat``); elsewhere every reading is None. Standard library only (no torch).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: a case whose threads plus the others' load exceed the cores by more than this is contended
SLACK_CORES = 0.5
#: shorter timed regions than this give no reading (a few clock ticks of /proc/stat)
MIN_WALL_S = 0.05


@dataclass(frozen=True)
class Sample:
    busy_s: float  # CPU time spent busy (user, nice, system, irq, softirq, steal) on this process's CPUs
    own_s: float  # this process's CPU time (user + system, every thread)
    wall_s: float  # time.monotonic()


def _allowed() -> set[int] | None:
    """The CPUs this process may run on (its affinity), or None where the system does not say."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cores() -> int:
    """How many CPUs this process may run on."""
    allowed = _allowed()
    return len(allowed) if allowed else (os.cpu_count() or 1)


def sample(stat_path: str = "/proc/stat") -> Sample | None:
    """The counters now, or None where ``/proc/stat`` cannot be read."""
    allowed = _allowed()
    try:
        with open(stat_path, "rb") as f:
            text = f.read().decode("ascii", "replace")
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    busy = 0
    found = False
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            cpu = int(name[3:])
            f = [int(x) for x in rest.split()]
        except ValueError:
            continue
        if allowed is not None and cpu not in allowed:
            continue
        # user nice system idle iowait irq softirq steal (guest time is already counted in user)
        busy += sum(f[i] for i in (0, 1, 2, 5, 6, 7) if i < len(f))
        found = True
    if not found or hz <= 0:
        return None
    t = os.times()
    return Sample(busy / hz, t.user + t.system, time.monotonic())


def other_cores(before: Sample | None, after: Sample | None) -> float | None:
    """The other processes' mean load over ``before`` → ``after``, in cores (≥ 0); None without both readings or
    over less than :data:`MIN_WALL_S`."""
    if before is None or after is None:
        return None
    wall = after.wall_s - before.wall_s
    if wall < MIN_WALL_S:
        return None
    return max(0.0, ((after.busy_s - before.busy_s) - (after.own_s - before.own_s)) / wall)


def contended(other: float | None, threads: int | None, n_cores: int | None) -> bool:
    """Whether ``threads`` torch threads and ``other`` cores of others' load did not fit in ``n_cores``."""
    if other is None or not threads or not n_cores:
        return False
    return threads + other > n_cores + SLACK_CORES


def busy_note(metrics: dict) -> str:
    """" [busy: ...]" for a CPU measurement (a bench case, a training run) made while other processes left its
    threads too few cores (``metrics``: ``other_cpu_cores``, ``torch_threads``, ``cpu_cores``), else ""."""
    other, threads, n_cores = metrics.get("other_cpu_cores"), metrics.get("torch_threads"), metrics.get("cpu_cores")
    if not contended(other, threads, n_cores):
        return ""
    return f" [busy: other processes used {other:.1f} of {n_cores} cores beside its {threads} thread(s)]"
