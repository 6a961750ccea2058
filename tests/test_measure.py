"""sslbench.execution.measure: timing and memory on the CPU (known sleeps and allocations, a fresh process per case,
simulated and real out-of-memory), and the logic of the CUDA branch with fake back-ends (no GPU needed). The
tests marked ``gpu`` run the real CUDA path and are skipped without a device."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from sslbench.execution import measure as M
from sslbench.records import FINAL_STATUSES, RECORD_KEYS, STATUSES
from sslbench.regularizers import RegularizerOutput

MiB = 2**20
THIS = __name__  # the children import the step factories below from this module


# --------------------------------------------------------------------------------------------------------------
# Step factories for the subprocess tests (module level: the child imports them by name)
# --------------------------------------------------------------------------------------------------------------
def alloc_factory(mib: int):
    """Each call allocates and touches ``mib`` MiB (float32, above glibc's mmap threshold) and frees it."""
    n = mib * MiB // 4

    def step():
        x = torch.ones(n, dtype=torch.float32)
        return x[-1].item()

    return step


def huge_factory(gib: float):
    def step():
        return torch.ones(int(gib * 2**30), dtype=torch.uint8)[-1].item()

    return step


def sleep_factory(seconds: float):
    return lambda: time.sleep(seconds)


def sigkill_factory():
    def step():
        os.kill(os.getpid(), signal.SIGKILL)

    return step


def memory_error_then_sigkill_factory():
    def step():
        print("MemoryError: the allocator gave up", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    return step


def failing_factory():
    raise ValueError("this factory cannot build its case")


# --------------------------------------------------------------------------------------------------------------
# CPU timing
# --------------------------------------------------------------------------------------------------------------
class FakeClock:
    """A clock that only the steps advance: timings in these tests do not depend on how busy the machine is."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_known_durations_are_measured():
    clock = FakeClock()
    durations = iter([0.5, 0.031, 0.029, 0.030, 0.040, 0.030])  # one warm-up, then five timed calls
    m = M.measure(lambda: clock.advance(next(durations)), device="cpu", warmup=1, repeats=5, clock=clock)
    timed = [0.031, 0.029, 0.030, 0.040, 0.030]
    assert m.status == "ok" and m.metrics["repeats"] == 5
    assert m.times_s == pytest.approx(timed)
    assert m.metrics["time_min_s"] == pytest.approx(0.029) and m.metrics["time_median_s"] == pytest.approx(0.030)
    assert m.metrics["time_iqr_s"] == pytest.approx(np.percentile(timed, 75) - np.percentile(timed, 25))


def test_warmup_is_excluded_and_every_call_is_counted():
    clock = FakeClock()
    calls = []

    def step():
        calls.append(1)
        clock.advance(0.15 if len(calls) <= 2 else 0.005)

    m = M.measure(step, device="cpu", warmup=2, repeats=4, clock=clock)
    assert len(calls) == 6 and m.metrics["warmup"] == 2
    assert m.times_s == pytest.approx([0.005] * 4)  # the two slow warm-up calls are not among them


def test_automatic_repeats_reach_min_time_and_stop_at_max_repeats():
    clock = FakeClock()
    m = M.measure(lambda: clock.advance(0.25), warmup=0, min_repeats=3, min_time_s=2.0, clock=clock)
    assert m.metrics["repeats"] == 8 and sum(m.times_s) == 2.0  # exactly when 2 s of timed work is reached
    m = M.measure(lambda: clock.advance(1.0), warmup=0, min_repeats=3, min_time_s=0.5, clock=clock)
    assert m.metrics["repeats"] == 3  # at least min_repeats, even past min_time_s
    n = []
    m = M.measure(lambda: n.append(1), warmup=0, min_repeats=2, max_repeats=7, min_time_s=1e9, clock=clock)
    assert m.metrics["repeats"] == 7 == len(n)


def test_summary_statistics_match_numpy():
    rng = np.random.default_rng(0)
    for k in (1, 2, 5, 10, 31):
        t = list(rng.gamma(2.0, 0.01, size=k))
        s = M.summarize_times(t)
        assert s["repeats"] == k
        assert s["time_median_s"] == pytest.approx(np.median(t))
        assert s["time_iqr_s"] == pytest.approx(np.percentile(t, 75) - np.percentile(t, 25))
        assert s["time_min_s"] == min(t) and s["time_max_s"] == max(t)
        assert s["time_mean_s"] == pytest.approx(np.mean(t))
        assert s["time_std_s"] == pytest.approx(np.std(t, ddof=1) if k > 1 else 0.0)
    assert M.summarize_times([]) == {"repeats": 0}


def test_timer_uses_the_clock():
    ticks = iter([10.0, 10.25])
    with M.Timer("cpu", clock=lambda: next(ticks)) as t:
        pass
    assert t.elapsed_s == 0.25


@pytest.mark.parametrize("kwargs, match", [({"repeats": 0}, "repeats=0"), ({"warmup": -1}, "warmup=-1"),
                                           ({"min_repeats": 0}, "min_repeats=0"), ({"repeats": 2.5}, "repeats=2.5")])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.measure(lambda: None, **kwargs)
    with pytest.raises(TypeError, match="callable"):
        M.measure(42)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cuda_without_cuda_says_so():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        M.measure(lambda: None, device="cuda")


# --------------------------------------------------------------------------------------------------------------
# Outcomes: oom, nonfinite, error are results
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("cuFFT error: CUFFT_ALLOC_FAILED ... out of memory"),
])
def test_simulated_oom_is_a_result_and_the_next_case_runs(exc):
    calls = []

    def step():
        calls.append(1)
        if len(calls) == 3:  # fails on the first timed call after two warm-ups
            raise exc
        return torch.tensor(1.0)

    m = M.measure(step, warmup=2, repeats=3)
    assert m.status == "oom" and type(exc).__name__ in m.message
    assert m.metrics["repeats"] == 0 and "peak_rss_bytes" in m.metrics
    nxt = M.measure(lambda: torch.tensor(2.0), warmup=1, repeats=2)
    assert nxt.status == "ok" and nxt.metrics["repeats"] == 2


def test_other_exceptions_are_errors_with_their_traceback():
    def step():
        raise ValueError("shapes do not match")

    m = M.measure(step, warmup=0, repeats=2)
    assert m.status == "error" and m.message == "ValueError: shapes do not match"
    assert "Traceback" in m.extra["traceback"] and "shapes do not match" in m.extra["traceback"]
    assert not M.is_oom_error(ValueError("x")) and not M.is_oom_error(RuntimeError("size mismatch"))


def test_keyboard_interrupt_is_not_swallowed():
    def step():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        M.measure(step, warmup=0, repeats=1)


@pytest.mark.parametrize("bad_at, value, where", [
    (0, torch.tensor(float("nan")), "warm-up call 1"),
    (3, torch.tensor([1.0, float("inf")]), "timed call 2"),
    (2, RegularizerOutput(torch.tensor(float("nan")), {}), "timed call 1"),
    (1, {"loss": float("-inf")}, "warm-up call 2"),
])
def test_nan_or_inf_output_is_nonfinite(bad_at, value, where):
    calls = []

    def step():
        calls.append(1)
        return value if len(calls) == bad_at + 1 else torch.tensor(0.5)

    m = M.measure(step, warmup=2, repeats=3)
    assert m.status == "nonfinite" and where in m.message
    assert m.metrics["repeats"] == 3  # the timing is kept


def test_is_finite_output_cases():
    assert M.is_finite_output(None) and M.is_finite_output(torch.tensor([1, 2]))
    assert M.is_finite_output([torch.ones(3), 2.0]) and not M.is_finite_output((torch.ones(3), float("nan")))
    assert not M.is_finite_output(torch.tensor(float("nan"), dtype=torch.bfloat16))


def test_measurement_to_record_follows_the_schema():
    m = M.measure(lambda: torch.ones(3).sum(), warmup=1, repeats=3)
    rec = m.to_record("regularizer_bench", {"regularizer": "x", "dim": 3}, env={"host": "h"})
    assert tuple(rec) == RECORD_KEYS and rec["status"] == "ok" and rec["status"] in STATUSES
    for key in ("time_median_s", "time_iqr_s", "time_min_s", "repeats", "peak_rss_bytes"):
        assert key in rec["metrics"], key
    assert len(rec["extra"]["times_s"]) == 3


# --------------------------------------------------------------------------------------------------------------
# A fresh process per case: known allocations, isolation, host OOM, crashes, timeouts
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_known_allocation_is_measured_and_each_process_has_its_own_peak():
    big = M.measure_in_subprocess(f"{THIS}:alloc_factory", {"mib": 320}, warmup=1, repeats=2)
    small = M.measure_in_subprocess(f"{THIS}:alloc_factory", {"mib": 48}, warmup=1, repeats=2)
    assert big.status == small.status == "ok", (big.message, small.message)
    # the step's own allocation, within 5 % + 8 MiB (the interpreter's own churn)
    assert big.metrics["peak_rss_delta_bytes"] == pytest.approx(320 * MiB, rel=0.05, abs=8 * MiB)
    assert small.metrics["peak_rss_delta_bytes"] == pytest.approx(48 * MiB, rel=0.05, abs=8 * MiB)
    # the small case, measured after the big one, does not inherit its peak
    assert small.metrics["peak_rss_bytes"] < big.metrics["peak_rss_bytes"] - 200 * MiB
    assert big.extra["pid"] != small.extra["pid"] != os.getpid()
    # whereas in one process the lifetime peak (ru_maxrss) would stay at the big case's level
    assert big.metrics["rss_process_peak_bytes"] >= big.metrics["peak_rss_bytes"]


@pytest.mark.slow
def test_host_oom_in_a_subprocess_is_recorded():
    m = M.measure_in_subprocess(f"{THIS}:huge_factory", {"gib": 8}, warmup=1, repeats=2,
                                memory_limit_bytes=256 * MiB)
    assert m.status == "oom" and "allocate" in m.message


@pytest.mark.slow
def test_killed_child_is_killed_not_oom_and_failing_setup_is_error():
    # SIGKILL alone is no evidence of the OOM killer: the case is "killed" (not final: it runs again on resume)
    m = M.measure_in_subprocess(f"{THIS}:sigkill_factory", warmup=0, repeats=1)
    assert m.status == "killed" and "SIGKILL" in m.message and "out-of-memory killer" in m.message
    assert m.status not in FINAL_STATUSES
    m = M.measure_in_subprocess(f"{THIS}:failing_factory", warmup=0, repeats=1)
    assert m.status == "error" and m.message == "ValueError: this factory cannot build its case"


@pytest.mark.slow
def test_killed_child_is_oom_with_evidence_of_the_oom_killer(monkeypatch):
    from sslbench.execution import runner

    counts = iter([4, 5])  # the cgroup's oom_kill counter before and after the case
    monkeypatch.setattr(runner, "oom_kill_count", lambda: next(counts))
    m = M.measure_in_subprocess(f"{THIS}:sigkill_factory", warmup=0, repeats=1)
    assert m.status == "oom" and "from 4 to 5" in m.message
    # the child's own report of running out of memory before it died is evidence too
    monkeypatch.setattr(runner, "oom_kill_count", lambda: 0)
    m = M.measure_in_subprocess(f"{THIS}:memory_error_then_sigkill_factory", warmup=0, repeats=1)
    assert m.status == "oom" and "ran out of memory" in m.message


@pytest.mark.slow
def test_child_past_its_time_limit_is_a_timeout():
    m = M.measure_in_subprocess(f"{THIS}:sleep_factory", {"seconds": 600}, warmup=0, repeats=1, timeout_s=2)
    assert m.status == "timeout" and "timeout_s=2 s" in m.message and m.metrics["timeout_s"] == 2


def test_bad_target_is_refused():
    with pytest.raises(ValueError, match="package.module:function"):
        M._resolve("no_colon_here")


# --------------------------------------------------------------------------------------------------------------
# The CUDA branch with fake back-ends
# --------------------------------------------------------------------------------------------------------------
class FakeEvent:
    def __init__(self, gpu):
        self.gpu, self.t = gpu, None

    def record(self):
        self.gpu.log.append("event.record")
        self.t = self.gpu.clock

    def synchronize(self):
        self.gpu.log.append("event.synchronize")

    def elapsed_time(self, end):  # milliseconds, like torch.cuda.Event
        return (end.t - self.t) * 1e3


class FakeCuda:
    """A GPU whose clock advances and whose caching allocator is driven by the fake steps below. NVML's reading
    is the context + what the allocator reserved + what another process uses (``other``)."""

    CONTEXT = 500_000

    def __init__(self, allocated=1000, nvml=True):
        self.clock = 0.0
        self.log = []
        self.allocated = allocated
        self.reserved = allocated
        self.peak_allocated = allocated
        self.peak_reserved = allocated
        self.other = 0
        self.nvml = nvml
        self.sampler = None

    def make_sampler(self, read, interval_s):
        """The NVML sampler measure() uses: no thread, a sample per kernel (see run)."""
        self.sampler = M.NvmlSampler(read, interval_s, background=False)
        return self.sampler

    def run(self, seconds, nbytes, other_spike=0):
        """A kernel: allocates nbytes (the cache keeps them reserved), runs for ``seconds`` of device time while
        another process briefly uses ``other_spike`` bytes, frees its tensors."""
        self.allocated += nbytes
        self.reserved = max(self.reserved, self.allocated)
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.other += other_spike
        if self.sampler is not None:
            self.sampler.tick()  # NVML read while the kernel runs (the other process's spike included)
        self.other -= other_spike
        self.clock += seconds
        self.allocated -= nbytes

    def synchronize(self):
        self.log.append("synchronize")

    def event(self):
        return FakeEvent(self)

    def empty_cache(self):
        self.log.append("empty_cache")
        self.reserved = self.allocated

    def reset_peak_memory_stats(self):
        self.log.append("reset")
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

    def memory_allocated(self):
        return self.allocated

    def max_memory_allocated(self):
        return self.peak_allocated

    def max_memory_reserved(self):
        return self.peak_reserved

    def nvml_reader(self):
        return (lambda: self.CONTEXT + self.reserved + self.other) if self.nvml else None


def test_cuda_branch_times_with_events_and_excludes_warmup():
    gpu = FakeCuda()
    durations = iter([5.0, 5.0, 0.010, 0.012, 0.011, 0.013])  # two slow warm-ups, then the timed calls

    def step():
        gpu.log.append("step")
        gpu.run(next(durations), 0)

    m = M.measure(step, device="cuda", warmup=2, repeats=4, cuda_backend=gpu, nvml_sampler=gpu.make_sampler)
    assert m.status == "ok"
    assert m.times_s == pytest.approx([0.010, 0.012, 0.011, 0.013])
    assert m.metrics["time_median_s"] == pytest.approx(0.0115)
    # the cache is emptied before the warm-up and the peaks are reset after it, before any timed call
    log = gpu.log
    first_timed = log.index("event.record")
    assert log.index("empty_cache") < log.index("step")
    assert [e for e in log[:first_timed] if e == "step"] == ["step", "step"]
    assert log.index("reset") < first_timed and log[:first_timed].count("step") == 2
    # each timed call: synchronize, start event, step, end event, wait for the end event
    assert log[first_timed - 1:first_timed + 4] == ["synchronize", "event.record", "step", "event.record",
                                                     "event.synchronize"]


def test_cuda_branch_memory_figures_come_from_the_allocator_and_nvml():
    gpu = FakeCuda(allocated=1000)
    gpu.reserved = 10**9  # cached blocks left by an earlier case: they must not count as this case's
    # warm-ups reserve 900 B of cache; the timed calls peak at 2500 B, while another process spikes by 10^4 B
    sizes = iter([(900, 0), (900, 0), (300, 0), (2500, 10_000), (500, 0)])

    def step():
        nbytes, spike = next(sizes)
        gpu.run(0.001, nbytes, spike)

    m = M.measure(step, device="cuda", warmup=2, repeats=3, cuda_backend=gpu, nvml_sampler=gpu.make_sampler)
    x = m.metrics
    assert m.status == "ok"
    assert x["cuda_baseline_allocated_bytes"] == 1000
    assert x["cuda_max_allocated_bytes"] == 3500 and x["cuda_max_allocated_delta_bytes"] == 2500
    assert x["cuda_max_reserved_bytes"] == 3500
    assert x["nvml_baseline_used_bytes"] == FakeCuda.CONTEXT + 1900  # the warm-up's cache, not the earlier 1 GB
    assert x["nvml_peak_used_bytes"] == FakeCuda.CONTEXT + 3500 + 10_000  # the sampler saw the spike
    assert x["nvml_samples"] == 5  # at the start, during each of the 3 timed kernels, at the stop
    assert "peak_rss_bytes" not in x


def test_cuda_branch_without_nvml_still_measures():
    gpu = FakeCuda(nvml=False)
    m = M.measure(lambda: gpu.run(0.002, 10), device="cuda", warmup=1, repeats=2, cuda_backend=gpu)
    assert m.status == "ok" and "nvml_peak_used_bytes" not in m.metrics
    assert m.metrics["cuda_max_allocated_bytes"] == gpu.allocated + 10


def test_cuda_oom_is_a_result_and_the_cache_is_freed():
    gpu = FakeCuda()
    calls = []

    def step():
        calls.append(1)
        if len(calls) == 4:
            gpu.allocated += 123  # what it held when it failed
            gpu.peak_allocated = max(gpu.peak_allocated, gpu.allocated)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        gpu.run(0.001, 0)

    m = M.measure(step, device="cuda", warmup=2, repeats=5, cuda_backend=gpu, nvml_sampler=gpu.make_sampler)
    assert m.status == "oom" and "CUDA out of memory" in m.message
    assert m.metrics["repeats"] == 1  # one timed call finished before the failure
    assert m.metrics["cuda_max_allocated_bytes"] == 1123  # the figure at the failure is kept
    assert gpu.log[-1] == "empty_cache"  # memory released for the next case


def test_cuda_timer_synchronizes_and_uses_events():
    gpu = FakeCuda()
    with M.Timer("cuda", cuda_backend=gpu) as t:
        gpu.clock += 0.25
    assert t.elapsed_s == pytest.approx(0.25)
    assert gpu.log == ["synchronize", "event.record", "event.record", "event.synchronize"]


def test_nvml_sampler_keeps_the_peak_and_survives_a_failing_reader():
    values = iter([10, 99, 20, 15])
    s = M.NvmlSampler(lambda: next(values), interval_s=0.001, background=False).start()  # reads 10
    s.tick()  # 99
    s.tick()  # 20
    assert s.stop() == 99 and s.first_bytes == 10 and s.samples == 4  # stop() reads 15
    with pytest.raises(RuntimeError, match="twice"):
        s.start()

    def broken():
        raise OSError("NVML gone")

    s = M.NvmlSampler(broken, interval_s=0.001).start()
    assert s.stop() is None and "NVML gone" in s.error
    with pytest.raises(ValueError, match="interval_s"):
        M.NvmlSampler(lambda: 0, interval_s=0)


def test_nvml_sampler_thread_samples_until_stopped():
    seen = []
    enough = threading.Event()

    def read():
        seen.append(1)
        if len(seen) >= 5:
            enough.set()
        return 7 * len(seen)

    s = M.NvmlSampler(read, interval_s=0.001).start()
    assert enough.wait(120)  # the thread keeps sampling (no bound on how fast: only that it does)
    peak = s.stop()
    assert s.samples == len(seen) >= 5 and peak == 7 * len(seen)
    assert not any(t.name == "sslbench-nvml-sampler" and t.is_alive() for t in threading.enumerate())


# --------------------------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------------------------
def test_environment_fingerprint():
    import sslbench

    env = M.environment(refresh=True)  # the static part is cached per process; HEAD may have moved since
    assert env["sslbench_version"] == sslbench.__version__
    assert env["torch_version"] == torch.__version__
    assert env["threads"] == torch.get_num_threads() and env["cpu_count"] == os.cpu_count()
    assert env["device_count"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert isinstance(env["cpu_model"], str) and env["cpu_model"]
    assert isinstance(env["hostname"], str) and env["python"].count(".") == 2
    for key in ("torch_cuda_version", "driver_version", "cuda_driver_version", "device_name", "git_dirty"):
        assert key in env
    root = os.path.dirname(os.path.dirname(os.path.abspath(sslbench.__file__)))
    head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert env["git_commit"] == head.stdout.strip()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert M.environment()["threads"] == 1  # read live, not cached
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------------------------
# The real CUDA path (skipped without a GPU)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_real_cuda_measurement():
    a = torch.randn(4096, 4096, device="cuda")

    def step():
        return (a @ a).sum()  # allocates a 64 MiB result per call

    m = M.measure(step, device="cuda", warmup=2, repeats=5)
    x = m.metrics
    assert m.status == "ok" and x["repeats"] == 5 and 0 < x["time_median_s"] < 1
    assert x["cuda_max_allocated_delta_bytes"] >= 64 * MiB
    assert x["cuda_max_reserved_bytes"] >= x["cuda_max_allocated_bytes"] >= 128 * MiB
    if x.get("nvml_peak_used_bytes") is not None:
        assert x["nvml_peak_used_bytes"] >= x["cuda_max_reserved_bytes"]
    # a known sleep on the device: ~50 ms of spinning kernel
    m = M.measure(lambda: torch.cuda._sleep(50_000_000), device="cuda", warmup=1, repeats=3)
    assert m.metrics["time_median_s"] > 0.005


@pytest.mark.gpu
def test_real_cuda_oom_is_a_result():
    total = torch.cuda.get_device_properties(0).total_memory

    def step():
        return torch.empty(int(total * 2), dtype=torch.uint8, device="cuda")

    m = M.measure(step, device="cuda", warmup=1, repeats=1)
    assert m.status == "oom" and "out of memory" in m.message.lower()
    m = M.measure(lambda: torch.ones(10, device="cuda").sum(), device="cuda", warmup=1, repeats=2)
    assert m.status == "ok"


@pytest.mark.gpu
@pytest.mark.slow
def test_real_cuda_case_in_a_subprocess():
    m = M.measure_in_subprocess("sslbench.execution.bench:make_step", {"regularizer": "byol", "dim": 256, "batch": 128,
                                                              "device": "cuda"},
                                device="cuda", warmup=1, repeats=3)
    assert m.status == "ok", m.message
    inputs = 2 * 2 * 128 * 256 * 4  # online and target views, float32, alive during the whole measurement
    assert m.metrics["cuda_baseline_allocated_bytes"] >= inputs
    assert m.metrics["cuda_max_allocated_bytes"] > m.metrics["cuda_baseline_allocated_bytes"]
    assert m.extra["pid"] != os.getpid()
