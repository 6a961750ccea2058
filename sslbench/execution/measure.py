"""Timing and memory measured the right way for the device, and the environment fingerprint of every record.

The one entry point is :func:`measure`: it calls a step (a zero-argument callable, typically a regularizer's
forward + backward on prepared inputs) ``warmup`` times without timing it, then times ``repeats`` calls one by
one and returns a :class:`Measurement` with the median and the spread (inter-quartile range) of the times, the
memory figures of the device, and a status:

* **CUDA**: each call is timed between two CUDA events recorded on the current stream, after
  ``torch.cuda.synchronize`` and up to the end event's completion, so the figure is the device time of the whole
  step including launch gaps (what a training step pays), never the asynchronous launch time. The caching
  allocator's cache is emptied before the warm-up, the peak statistics are reset after it
  (``torch.cuda.reset_peak_memory_stats``) and read after the timed calls:
  ``cuda_max_allocated_bytes`` (``max_memory_allocated``: the tensors alive at the worst moment, the inputs
  included) and ``cuda_max_reserved_bytes`` (``max_memory_reserved``: what the caching allocator held from the
  driver, allocated plus cached fragments). ``nvml_peak_used_bytes`` is the device-level reading of NVML
  (``nvmlDeviceGetMemoryInfo().used``: every process, the CUDA context and cuBLAS/cuDNN workspaces included)
  sampled every ``nvml_interval_s`` by a background thread during the timed calls.
* **CPU**: ``time.perf_counter`` around each call; the peak resident set size of the process
  (``peak_rss_bytes``, Linux ``VmHWM``, reset after the warm-up through ``/proc/self/clear_refs`` where the
  kernel allows it, ``ru_maxrss`` otherwise). A process's peak can only grow, so one case would inherit the peak
  of the cases before it: :func:`measure_in_subprocess` runs each case in a fresh Python process and is what
  the bench command uses on the CPU.

Failures are results, not crashes: an out-of-memory error (``torch.OutOfMemoryError``, ``MemoryError``, the CPU
allocator's "can't allocate memory", a child killed by the kernel's OOM killer) gives ``status="oom"``, a loss
with NaN or Inf gives ``status="nonfinite"``, any other exception ``status="error"`` with its message; a child
that runs past its limit gives ``status="timeout"``, one killed from outside without evidence of the OOM killer
``status="killed"`` (see :mod:`sslbench.execution.runner`). The caller records it and goes on with the next case.

The CUDA calls go through a :class:`CudaBackend` object and NVML through a reader callable, so that the logic of
the GPU branch (warm-up excluded, events, reset/read order, the sampler thread, OOM handling) is tested without
a GPU by injecting fakes (``tests/test_measure.py``).

The environment fingerprint lives in :mod:`sslbench.probe.environment` and the resident-memory tracker and OOM
test in :mod:`sslbench.probe.memory`, below both training and execution (``environment``, ``RssTracker`` and
``is_oom_error`` are re-exported here); the child process of :func:`measure_in_subprocess` is started by
:mod:`sslbench.execution.runner`. ``python -m sslbench.probe.environment`` prints :func:`environment` as JSON.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import math
import os
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from sslbench.execution.runner import case_folder, run_child
from sslbench.probe import cpu_load
from sslbench.probe.environment import environment, nvml_module
from sslbench.probe.memory import RssTracker, _proc_status_bytes, _ru_maxrss_bytes, is_oom_error

__all__ = [
    "environment",
    "Measurement",
    "measure",
    "measure_in_subprocess",
    "Timer",
    "CudaBackend",
    "NvmlSampler",
    "RssTracker",
    "nvml_reader",
    "summarize_times",
    "is_oom_error",
    "is_finite_output",
]


# --------------------------------------------------------------------------------------------------------------
# Back-ends: CUDA, NVML, resident memory
# --------------------------------------------------------------------------------------------------------------
class CudaBackend:
    """The CUDA calls :func:`measure` and :class:`Timer` make, on one device. Tests pass a fake with the same
    methods to check the GPU branch's logic without a GPU."""

    def __init__(self, device: torch.device | str | int = "cuda"):
        device = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        if device.type != "cuda":
            raise ValueError(f"CudaBackend needs a CUDA device, got {device}")
        self.index = device.index if device.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", self.index)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def event(self):
        return torch.cuda.Event(enable_timing=True)

    def empty_cache(self) -> None:
        gc.collect()
        torch.cuda.empty_cache()

    def reset_peak_memory_stats(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def memory_allocated(self) -> int:
        return int(torch.cuda.memory_allocated(self.device))

    def memory_reserved(self) -> int:
        return int(torch.cuda.memory_reserved(self.device))

    def max_memory_allocated(self) -> int:
        return int(torch.cuda.max_memory_allocated(self.device))

    def max_memory_reserved(self) -> int:
        return int(torch.cuda.max_memory_reserved(self.device))

    def nvml_reader(self) -> Callable[[], int] | None:
        return nvml_reader(self.index)


def _nvml_handle(nv, index: int):
    """The NVML handle of torch's CUDA device ``index`` (which CUDA_VISIBLE_DEVICES may renumber): by UUID, then
    by PCI bus id, then by index."""
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        for text in (uuid, f"GPU-{uuid}", f"MIG-{uuid}"):
            try:
                return nv.nvmlDeviceGetHandleByUUID(text)
            except Exception:  # noqa: BLE001
                continue
    except Exception:  # noqa: BLE001
        pass
    try:
        props = torch.cuda.get_device_properties(index)
        bus = f"{getattr(props, 'pci_domain_id', 0):08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        return nv.nvmlDeviceGetHandleByPciBusId(bus)
    except Exception:  # noqa: BLE001
        pass
    return nv.nvmlDeviceGetHandleByIndex(index)


def nvml_reader(index: int = 0) -> Callable[[], int] | None:
    """A callable returning the bytes in use on CUDA device ``index`` as NVML sees it (all processes), or None
    when NVML is not available (no ``nvidia-ml-py``, no driver)."""
    nv = nvml_module()
    if nv is None:
        return None
    try:
        handle = _nvml_handle(nv, index)
        nv.nvmlDeviceGetMemoryInfo(handle)
    except Exception:  # noqa: BLE001
        return None
    return lambda: int(nv.nvmlDeviceGetMemoryInfo(handle).used)


class NvmlSampler:
    """Samples ``read()`` (bytes in use on the device) every ``interval_s`` in a daemon thread and keeps the peak.

    One sample is taken synchronously at :meth:`start` and one at :meth:`stop`, so even a step shorter than the
    interval has a reading. A reader that raises stops the sampling; the error is kept in ``error``.
    ``background=False`` starts no thread: the samples are then :meth:`start`'s, :meth:`stop`'s and those of the
    caller's :meth:`tick` calls (tests drive the sampler this way, with no dependence on timing).
    """

    def __init__(self, read: Callable[[], int], interval_s: float = 0.002, *, background: bool = True):
        if not callable(read):
            raise TypeError("read must be a callable returning the device's used bytes")
        if not (interval_s > 0):
            raise ValueError(f"interval_s={interval_s!r} must be > 0")
        self.read = read
        self.interval_s = interval_s
        self.background = background
        self.peak_bytes: int | None = None
        self.first_bytes: int | None = None
        self.samples = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._lock = threading.Lock()

    def tick(self) -> None:
        """Take one sample now."""
        self._sample()

    def _sample(self) -> None:
        if self.error is not None:
            return
        try:
            used = int(self.read())
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self.samples += 1
            if self.first_bytes is None:
                self.first_bytes = used
            if self.peak_bytes is None or used > self.peak_bytes:
                self.peak_bytes = used

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()
            if self.error is not None:
                return

    def start(self) -> "NvmlSampler":
        if self._started:
            raise RuntimeError("NvmlSampler.start() called twice; make a new sampler per measurement")
        self._started = True
        self._sample()
        if self.background:
            self._thread = threading.Thread(target=self._loop, name="sslbench-nvml-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> int | None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._sample()
        return self.peak_bytes

    def __enter__(self) -> "NvmlSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------------------
# Outcome classification
# --------------------------------------------------------------------------------------------------------------
def is_finite_output(out: Any) -> bool:
    """Whether a step's return value is free of NaN/Inf: tensors, numbers, objects with ``.loss`` (a
    RegularizerOutput), dicts, lists and tuples of these; anything else (None included) counts as finite."""
    if out is None:
        return True
    if isinstance(out, torch.Tensor):
        if not out.is_floating_point() and not out.is_complex():
            return True
        return bool(torch.isfinite(out.detach()).all())
    if isinstance(out, bool):
        return True
    if isinstance(out, (int, float)):
        return math.isfinite(out)
    if hasattr(out, "loss") and not isinstance(out, dict):
        return is_finite_output(out.loss)
    if isinstance(out, dict):
        return all(is_finite_output(v) for v in out.values())
    if isinstance(out, (list, tuple)):
        return all(is_finite_output(v) for v in out)
    return True


# --------------------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------------------
class Timer:
    """``with Timer(device) as t: step()`` then ``t.elapsed_s``.

    CPU: ``time.perf_counter`` (or the ``clock`` given). CUDA: synchronize, record a start event, run the block,
    record an end event, wait for it; ``elapsed_s`` is the events' elapsed time, i.e. the device's time for all
    the work the block queued.
    """

    def __init__(self, device: torch.device | str = "cpu", *, cuda_backend=None,
                 clock: Callable[[], float] = time.perf_counter):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.backend = cuda_backend if cuda_backend is not None else (CudaBackend(self.device) if self.cuda else None)
        self.clock = clock
        self.elapsed_s: float | None = None

    def __enter__(self) -> "Timer":
        self.elapsed_s = None
        if self.cuda:
            self.backend.synchronize()
            self._start, self._end = self.backend.event(), self.backend.event()
            self._start.record()
        else:
            self._t0 = self.clock()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.cuda:
            self._end.record()
            if exc_type is None:
                self._end.synchronize()
                self.elapsed_s = self._start.elapsed_time(self._end) / 1e3
        else:
            self.elapsed_s = self.clock() - self._t0


def summarize_times(times: list[float]) -> dict:
    """Median, inter-quartile range (q75 − q25, linear interpolation as ``numpy.percentile``), min, max, mean,
    sample standard deviation and count of a list of durations in seconds."""
    if not times:
        return {"repeats": 0}
    ts = sorted(float(t) for t in times)
    if len(ts) >= 2:
        q1, _, q3 = statistics.quantiles(ts, n=4, method="inclusive")
    else:
        q1 = q3 = ts[0]
    return {
        "time_median_s": statistics.median(ts),
        "time_iqr_s": q3 - q1,
        "time_q25_s": q1,
        "time_q75_s": q3,
        "time_min_s": ts[0],
        "time_max_s": ts[-1],
        "time_mean_s": statistics.fmean(ts),
        "time_std_s": statistics.stdev(ts) if len(ts) >= 2 else 0.0,
        "repeats": len(ts),
    }


@dataclass
class Measurement:
    """What :func:`measure` returns: a status (one of ``sslbench.records.STATUSES``), the raw times, the metrics
    (time statistics and memory figures, keys as in the results schema) and, when not ok, a message."""

    status: str = "ok"
    times_s: list[float] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    message: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_record(self, kind: str, case: dict, *, env: dict, extra: dict | None = None) -> dict:
        from sslbench.records import make_record

        all_extra = {"times_s": list(self.times_s), **self.extra, **(extra or {})}
        return make_record(kind, case, self.metrics, self.status, env=env, message=self.message, extra=all_extra)

    def to_json(self) -> dict:
        return {"status": self.status, "times_s": self.times_s, "metrics": self.metrics, "message": self.message,
                "extra": self.extra}

    @classmethod
    def from_json(cls, data: dict) -> "Measurement":
        return cls(status=data["status"], times_s=list(data.get("times_s") or []),
                   metrics=dict(data.get("metrics") or {}), message=data.get("message"),
                   extra=dict(data.get("extra") or {}))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500]


def measure(
    fn: Callable[[], Any],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 2,
    repeats: int | None = None,
    min_repeats: int = 5,
    max_repeats: int = 100,
    min_time_s: float = 0.2,
    nvml: bool = True,
    nvml_interval_s: float = 0.002,
    cuda_backend=None,
    nvml_read: Callable[[], int] | None = None,
    rss_tracker: RssTracker | None = None,
    clock: Callable[[], float] = time.perf_counter,
    nvml_sampler: Callable[..., "NvmlSampler"] | None = None,
) -> Measurement:
    """Measure ``fn()`` (one step: e.g. forward + backward) on ``device``; see the module docstring.

    ``warmup`` untimed calls first (compilation, allocator and cuBLAS warm-up, lazy init). Then ``repeats`` timed
    calls when given; otherwise at least ``min_repeats`` and until ``min_time_s`` of timed work or
    ``max_repeats`` calls. Each call's output is checked for NaN/Inf outside the timed region.

    ``cuda_backend``, ``nvml_read``, ``rss_tracker``, ``clock`` and ``nvml_sampler`` (called as
    ``nvml_sampler(read, interval_s)``, default :class:`NvmlSampler`) replace the real back-ends (for tests).
    ``KeyboardInterrupt`` is not caught: the caller records the case as "interrupted".
    """
    _check_arguments(fn, warmup, repeats, min_repeats, max_repeats)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda and cuda_backend is None:
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={dev} was asked for but CUDA is not available; use device='cpu'")
        cuda_backend = CudaBackend(dev)
    tracker = rss_tracker if rss_tracker is not None else RssTracker()

    result = Measurement()
    times: list[float] = []
    sampler: NvmlSampler | None = None
    metrics: dict[str, Any] = {"warmup": warmup}
    held: list = [None]  # the step's last output, alive until the next call returns (as in a training loop)
    try:
        if cuda:
            cuda_backend.empty_cache()  # earlier cases' cached blocks must not count as this case's reserve
            cuda_backend.synchronize()
        nonfinite_at = _warm_up(fn, warmup, held)
        if cuda:
            read = nvml_read if nvml_read is not None else (cuda_backend.nvml_reader() if nvml else None)
            sampler = _start_cuda_memory(metrics, cuda_backend, read if nvml else None,
                                         lambda r: (nvml_sampler or NvmlSampler)(r, nvml_interval_s))
        else:
            metrics["rss_peak_reset"] = tracker.reset()
            metrics["rss_baseline_bytes"] = tracker.current()
        timer = Timer(dev, cuda_backend=cuda_backend, clock=clock)
        load = None if cuda else cpu_load.sample()  # the other processes' load over the timed calls
        timed_nonfinite = _timed_calls(fn, timer, times, held, repeats, min_repeats, max_repeats, min_time_s)
        if not cuda:
            _read_cpu_load(metrics, load)
        nonfinite_at = nonfinite_at or timed_nonfinite
        held[0] = None
        _read_memory(metrics, cuda, cuda_backend, tracker, sampler)
        if nonfinite_at is not None:
            result.status = "nonfinite"
            result.message = f"the step returned NaN or Inf (first seen at the {nonfinite_at})"
    except KeyboardInterrupt:
        if sampler is not None:
            sampler.stop()
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is a result
        held[0] = None
        result.status = "oom" if is_oom_error(exc) else "error"
        result.message = _describe(exc)
        if result.status == "error":
            result.extra["traceback"] = traceback.format_exc()[-4000:]
    if result.status in ("oom", "error"):
        # outside the except block, so that the traceback's frames (holding the step's tensors) are gone
        _release_after_failure(metrics, cuda, cuda_backend, tracker, sampler)
    result.times_s = times
    result.metrics = {**summarize_times(times), **metrics}
    return result


def _read_cpu_load(metrics: dict, before) -> None:
    """``other_cpu_cores``: the other processes' mean load, in cores, over the timed calls, beside ``cpu_cores``
    (the CPUs this process may use) and ``torch_threads``: a 2-thread timing on 2 cores beside another busy
    process can be a hundred times its own (:mod:`sslbench.probe.cpu_load`)."""
    other = cpu_load.other_cores(before, cpu_load.sample())
    metrics["torch_threads"] = torch.get_num_threads()
    metrics["cpu_cores"] = cpu_load.cores()
    if other is not None:
        metrics["other_cpu_cores"] = round(other, 2)


def _check_arguments(fn, warmup, repeats, min_repeats, max_repeats) -> None:
    for name, value, low in (("warmup", warmup, 0), ("min_repeats", min_repeats, 1), ("max_repeats", max_repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1):
        raise ValueError(f"repeats={repeats!r} must be an integer >= 1 (or None to run for min_time_s)")
    if not callable(fn):
        raise TypeError(f"fn must be a zero-argument callable (one step), got {type(fn).__name__}")


def _warm_up(fn: Callable[[], Any], warmup: int, held: list) -> str | None:
    """``warmup`` untimed calls (the last output kept in ``held``); where the output was first NaN/Inf, or None."""
    nonfinite_at = None
    for i in range(warmup):
        held[0] = fn()
        if nonfinite_at is None and not is_finite_output(held[0]):
            nonfinite_at = f"warm-up call {i + 1}"
    return nonfinite_at


def _start_cuda_memory(metrics: dict, backend, read: Callable[[], int] | None,
                       make_sampler: Callable[[Callable[[], int]], NvmlSampler]) -> NvmlSampler | None:
    """After the warm-up: peaks reset, the baseline read, the NVML sampler started (None without NVML)."""
    backend.synchronize()
    backend.reset_peak_memory_stats()
    metrics["cuda_baseline_allocated_bytes"] = backend.memory_allocated()
    return make_sampler(read).start() if read is not None else None


def _timed_calls(fn: Callable[[], Any], timer: "Timer", times: list[float], held: list, repeats: int | None,
                 min_repeats: int, max_repeats: int, min_time_s: float) -> str | None:
    """The timed calls, each appended to ``times`` as it ends (the last output kept in ``held``); where the
    output was first NaN/Inf, or None."""
    nonfinite_at = None
    total = 0.0
    while True:
        with timer:
            held[0] = fn()
        times.append(timer.elapsed_s)
        total += timer.elapsed_s
        if nonfinite_at is None and not is_finite_output(held[0]):
            nonfinite_at = f"timed call {len(times)}"
        if repeats is not None:
            if len(times) >= repeats:
                return nonfinite_at
        elif len(times) >= max_repeats or (len(times) >= min_repeats and total >= min_time_s):
            return nonfinite_at


def _release_after_failure(metrics: dict, cuda: bool, backend, tracker: "RssTracker",
                           sampler: NvmlSampler | None) -> None:
    """The memory figures at the failure (kept when they can be read), then the memory released for the next
    case."""
    with contextlib.suppress(Exception):
        _read_memory(metrics, cuda, backend, tracker, sampler)
    gc.collect()
    if cuda:
        with contextlib.suppress(Exception):
            backend.empty_cache()


def _read_memory(metrics: dict, cuda: bool, backend, tracker: RssTracker, sampler: NvmlSampler | None) -> None:
    if cuda:
        backend.synchronize()
        if sampler is not None:
            sampler.stop()
            metrics["nvml_peak_used_bytes"] = sampler.peak_bytes
            metrics["nvml_baseline_used_bytes"] = sampler.first_bytes
            metrics["nvml_samples"] = sampler.samples
            if sampler.error:
                metrics["nvml_error"] = sampler.error
        metrics["cuda_max_allocated_bytes"] = backend.max_memory_allocated()
        metrics["cuda_max_reserved_bytes"] = backend.max_memory_reserved()
        base = metrics.get("cuda_baseline_allocated_bytes")
        if base is not None:
            metrics["cuda_max_allocated_delta_bytes"] = metrics["cuda_max_allocated_bytes"] - base
    else:
        peak = tracker.peak()
        metrics["peak_rss_bytes"] = peak
        base = metrics.get("rss_baseline_bytes")
        if peak is not None and base is not None:
            metrics["peak_rss_delta_bytes"] = max(0, peak - base)


# --------------------------------------------------------------------------------------------------------------
# One case in a fresh process
# --------------------------------------------------------------------------------------------------------------
def _resolve(target: str) -> Callable:
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(f"target={target!r} must be 'package.module:function' (a factory returning the step)")
    module, name = target.split(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def measure_in_subprocess(
    target: str,
    kwargs: dict | None = None,
    *,
    device: str = "cpu",
    timeout_s: float = 600.0,
    threads: int | None = None,
    memory_limit_bytes: int | None = None,
    env_vars: dict | None = None,
    **measure_kwargs,
) -> Measurement:
    """Run one case in a fresh Python process and measure it there, so that its peak memory is its own.

    ``target`` is ``"package.module:factory"``; the child imports it, calls ``factory(**kwargs)`` (the set-up:
    build the inputs and the module, untimed) to get the step, and runs :func:`measure` on it with
    ``measure_kwargs`` (``warmup``, ``repeats``, ``min_time_s``, ...). ``kwargs`` must be JSON data. The child
    sees the parent's ``sys.path`` and the sslbench the parent imported.

    ``threads`` sets ``torch.set_num_threads`` in the child. ``memory_limit_bytes`` caps the address space the
    child may add after the set-up (``RLIMIT_AS``; Linux): an allocation past it fails and the case is an "oom".
    A child running past ``timeout_s`` is killed ("timeout"); one killed by SIGKILL is an "oom" when the kernel's
    OOM killer did it (:func:`sslbench.execution.runner.classify_signal`), else "killed"; one that dies otherwise
    is an "error" carrying the end of its output. A Ctrl-C (or SIGTERM under the sweep) is forwarded to the child
    and re-raised here.
    """
    spec = {
        "target": target,
        "kwargs": kwargs or {},
        "device": str(device),
        "threads": threads,
        "memory_limit_bytes": memory_limit_bytes,
        "measure": measure_kwargs,
        "sys_path": [p for p in sys.path if p],
    }
    with case_folder() as folder:
        spec["out"] = str(folder / "out.json")
        child = run_child("sslbench.execution.measure", "--worker", spec, folder, timeout_s=timeout_s,
                          limit=f"timeout_s={timeout_s:g} s", env_vars=env_vars)
        if child.interrupt is not None:
            raise child.interrupt
        if os.path.exists(spec["out"]):
            with open(spec["out"]) as f:
                return Measurement.from_json(json.load(f))
    metrics = {"timeout_s": timeout_s} if child.status == "timeout" else {}
    if child.status is not None:
        return Measurement(status=child.status, message=child.message, metrics=metrics,
                           extra={"stderr": child.output[-2000:]})
    return Measurement(status="error", message=f"the case's process {child.exit_text()}: {child.last_line}",
                       extra={"stderr": child.output[-2000:]})


def _limit_address_space(extra_bytes: int) -> None:
    import resource

    size = _proc_status_bytes("VmSize")
    if size is None:
        raise RuntimeError("memory_limit_bytes needs Linux (/proc/self/status)")
    limit = size + int(extra_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _worker(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    for p in reversed(spec.get("sys_path") or []):
        if p not in sys.path:
            sys.path.insert(1, p)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    try:
        factory = _resolve(spec["target"])
        step = factory(**spec["kwargs"])
        if spec.get("memory_limit_bytes"):
            _limit_address_space(spec["memory_limit_bytes"])
        m = measure(step, device=spec["device"], **spec["measure"])
    except Exception as exc:  # noqa: BLE001 - set-up failures are results too
        m = Measurement(status="oom" if is_oom_error(exc) else "error", message=_describe(exc),
                        extra={"traceback": traceback.format_exc()[-4000:]})
    m.metrics["rss_process_peak_bytes"] = _ru_maxrss_bytes()
    m.extra["pid"] = os.getpid()
    tmp = spec["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(m.to_json(), f)
    os.replace(tmp, spec["out"])
    return 0


if __name__ == "__main__":  # a measurement's child process (measure_in_subprocess starts it)
    if len(sys.argv) != 3 or sys.argv[1] != "--worker":
        sys.exit("python -m sslbench.execution.measure runs one measurement for measure_in_subprocess; "
                 "the environment is printed by python -m sslbench.probe.environment")
    sys.exit(_worker(sys.argv[2]))
