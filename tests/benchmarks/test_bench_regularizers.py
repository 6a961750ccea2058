"""pytest-benchmark suite: forward + backward of every registered regularizer across D, N and V.

By default (``make test``, and any plain ``pytest``) the project's pytest configuration passes
``--benchmark-disable``: each case then runs once, as a correctness smoke test (finite loss, finite gradients
of the right shape on every input that requires grad). To measure::

    pytest tests/benchmarks --benchmark-enable --benchmark-autosave          # JSON into results/pytest-benchmark/
    pytest tests/benchmarks --benchmark-enable --benchmark-compare --benchmark-compare-fail=median:10%
    SSLBENCH_FULL=1 pytest tests/benchmarks --benchmark-enable ...            # the big grid (D up to 8192)

Runs on CUDA when there is a device (``SSLBENCH_DEVICE=cpu`` forces the CPU). With benchmarks enabled, each
case's ``extra_info`` holds its configuration (regularizer, dim, batch, views, device, dtype, torch version,
threads) and its memory figures, measured apart from the timing with :mod:`sslbench.execution.measure`: on CUDA
``cuda_max_allocated_bytes``, ``cuda_max_reserved_bytes`` and ``nvml_peak_used_bytes``; on the CPU
``peak_rss_bytes`` / ``peak_rss_delta_bytes`` from a fresh process per case.
"""

import importlib
import math
import os

import pytest
import torch

from sslbench import regularizers
from sslbench.execution.bench import make_step, resolve_device
from sslbench.execution.measure import environment, measure, measure_in_subprocess

FULL = os.environ.get("SSLBENCH_FULL", "") not in ("", "0")
DEVICE = resolve_device(os.environ.get("SSLBENCH_DEVICE", "auto"))

if FULL:
    GRID = [(d, n, v) for d in (128, 512, 2048, 8192) for n in (256, 1024) for v in (2, 4)]
else:  # tiny: odd D included, one multi-view case
    GRID = [(32, 24, 2), (129, 64, 2), (64, 32, 3)]


def _cases():
    for name in regularizers.available():
        for d, n, v in GRID:
            yield pytest.param(name, d, n, v, id=f"{name}-D{d}-N{n}-V{v}")


def _require(name):
    """Skip a registered regularizer whose module is not written yet; any other import error fails."""
    module = regularizers._REGISTRY[name].split(":")[0]
    try:
        importlib.import_module(f"sslbench.regularizers.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"sslbench.regularizers.{module}":
            pytest.skip(f"{name}: sslbench/regularizers/{module}.py does not exist yet")
        raise


@pytest.mark.parametrize("name, dim, batch, views", list(_cases()))
def test_forward_backward(benchmark, name, dim, batch, views):
    _require(name)
    step = make_step(name, dim, batch, views, device=DEVICE)
    case = {"regularizer": name, "dim": dim, "batch": batch, "views": views, "device": DEVICE, "dtype": "float32"}
    env = environment()
    benchmark.group = f"D={dim} N={batch} V={views} {DEVICE}"
    benchmark.extra_info.update(case)
    benchmark.extra_info.update({"torch_version": env["torch_version"], "threads": env["threads"],
                                 "device_name": env["device_name"]})

    if DEVICE.startswith("cuda"):
        def timed():
            out = step()
            torch.cuda.synchronize()
            return out
    else:
        timed = step

    loss = benchmark(timed)

    # correctness smoke test (what CI checks with benchmarks disabled)
    assert loss.dim() == 0 and math.isfinite(float(loss)), f"{name}: loss {loss}"
    for z in step.inputs:
        assert z.grad is not None and z.grad.shape == z.shape, f"{name}: no gradient reached the inputs"
        assert torch.isfinite(z.grad).all(), f"{name}: non-finite gradient"
    assert any(float(z.grad.abs().sum()) > 0 for z in step.inputs), f"{name}: all gradients are zero"
    if step.targets is not None:
        assert all(t.grad is None for t in step.targets), f"{name}: gradient leaked into the target branch"

    if benchmark.disabled:
        return
    # memory figures, measured apart from the timing loop
    if DEVICE.startswith("cuda"):
        m = measure(step, device=DEVICE, warmup=1, repeats=3)
    else:
        m = measure_in_subprocess("sslbench.execution.bench:make_step", {**{k: case[k] for k in ("dim", "batch", "views",
                                  "device", "dtype")}, "regularizer": name}, device=DEVICE, warmup=1, repeats=3)
    assert m.status == "ok", m.message
    keys = ("cuda_max_allocated_bytes", "cuda_max_reserved_bytes", "nvml_peak_used_bytes",
            "cuda_max_allocated_delta_bytes", "peak_rss_bytes", "peak_rss_delta_bytes")
    benchmark.extra_info.update({k: m.metrics[k] for k in keys if m.metrics.get(k) is not None})
