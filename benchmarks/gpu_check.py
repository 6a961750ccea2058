"""Check sslbench's CUDA measurements against independent figures (needs a CUDA device).

1. **Time**: for a few kernels of known size, the median of ``sslbench.execution.measure.measure`` (CUDA events around each
   call, warm-up excluded) against a synchronised wall clock (``torch.cuda.synchronize(); perf_counter()`` around
   ``k`` back-to-back calls, divided by ``k``). The two should agree within launch overhead.
2. **Memory**: a step that allocates exactly one D × D float32 matrix and returns a scalar (its sum):
   ``cuda_max_allocated_delta_bytes`` against the theoretical 4·D² bytes; ``max_memory_reserved`` ≥ allocated (the caching allocator rounds up to its
   blocks); NVML's device-level peak ≥ reserved (it also counts the CUDA context and other processes).
3. **Barlow Twins at N = 256**: the peak allocation of forward+backward against the gradients of the two (N, D)
   inputs (2 · 4·N·D bytes, in every form) plus, for the primal form, one D × D float32 correlation matrix
   (4·D²): the Gram form needs only N × N matrices on top of the input gradients.

Prints a table and writes JSON to ``results/gpu/<device>-check.json``::

    python benchmarks/gpu_check.py
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from sslbench.execution.bench import make_step  # noqa: E402
from sslbench.execution.measure import environment, measure  # noqa: E402

MiB = 2**20


def wall_per_call(fn, k: int) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / k


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check", file=sys.stderr)
        return 2
    env = environment()
    rows: list[dict] = []

    # 1. time: events vs synchronised wall clock
    for n in (1024, 4096, 8192):
        a = torch.randn(n, n, device="cuda")
        fn = lambda a=a: a @ a  # noqa: E731
        m = measure(fn, device="cuda", warmup=3, repeats=20)
        wall = wall_per_call(fn, 20)
        ev = m.metrics["time_median_s"]
        rows.append({"check": "time", "what": f"matmul {n}x{n} fp32", "events_ms": ev * 1e3, "wall_ms": wall * 1e3,
                     "ratio_events_over_wall": ev / wall})
    for cycles in (10_000_000, 100_000_000):
        fn = lambda c=cycles: torch.cuda._sleep(c)  # noqa: E731
        m = measure(fn, device="cuda", warmup=1, repeats=5)
        wall = wall_per_call(fn, 5)
        ev = m.metrics["time_median_s"]
        rows.append({"check": "time", "what": f"cuda._sleep({cycles:.0e} cycles)", "events_ms": ev * 1e3,
                     "wall_ms": wall * 1e3, "ratio_events_over_wall": ev / wall})

    # 2. memory: one D x D float32 matrix per call
    for d in (4096, 16384):
        fn = lambda d=d: torch.ones(d, d, device="cuda").sum()  # noqa: E731
        m = measure(fn, device="cuda", warmup=1, repeats=3)
        x = m.metrics
        theory = 4 * d * d
        rows.append({"check": "memory", "what": f"one {d}x{d} fp32 matrix", "theory_MiB": theory / MiB,
                     "allocated_delta_MiB": x["cuda_max_allocated_delta_bytes"] / MiB,
                     "reserved_MiB": x["cuda_max_reserved_bytes"] / MiB,
                     "nvml_peak_MiB": (x.get("nvml_peak_used_bytes") or 0) / MiB,
                     "ratio_allocated_over_theory": x["cuda_max_allocated_delta_bytes"] / theory})

    # 3. Barlow Twins primal vs Gram at N=256
    for d in (4096, 16384):
        for algo in ("cross_correlation", "gram"):
            step = make_step("barlow_twins", d, 256, 2, device="cuda", algorithm=algo)
            m = measure(step, device="cuda", warmup=2, repeats=10)
            x = m.metrics
            theory = 2 * 4 * 256 * d + (4 * d * d if algo == "cross_correlation" else 4 * 256 * 256)
            rows.append({"check": "barlow_twins", "what": f"{algo} D={d} N=256", "theory_MiB": theory / MiB,
                         "ratio_allocated_over_theory": x["cuda_max_allocated_delta_bytes"] / theory,
                         "allocated_delta_MiB": x["cuda_max_allocated_delta_bytes"] / MiB,
                         "reserved_MiB": x["cuda_max_reserved_bytes"] / MiB,
                         "events_ms": x["time_median_s"] * 1e3})
            del step
            torch.cuda.empty_cache()

    for r in rows:
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    slug = re.sub(r"[^a-z0-9]+", "-", str(env.get("device_name")).lower()).strip("-")
    out = ROOT / "results" / "gpu" / f"{slug}-check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
