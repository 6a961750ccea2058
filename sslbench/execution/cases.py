"""What a bench case is, without torch: its record kind, its dtypes' names, its one-line description and the setup
keys resume compares. :mod:`sslbench.execution.bench` (torch) builds and measures the cases; ``sweep --status``
(:mod:`sslbench.execution.plan_cache`) only names them, so these live here, below both, torch-free."""

from __future__ import annotations

__all__ = ["KIND", "DTYPE_NAMES", "SETUP_KEYS", "describe", "same_setup"]

KIND = "regularizer_bench"
#: the dtypes a bench case may use (:data:`sslbench.execution.bench.DTYPES` maps them to torch's)
DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")
#: a stored case counts as done only if it was measured with the same device, torch and thread count
SETUP_KEYS = ("device_name", "torch_version", "threads")


def describe(case: dict) -> str:
    algo = f"[{case['algorithm']}]" if case.get("algorithm") else ""
    hp = " " + ",".join(f"{k}={v}" for k, v in case["hparams"].items()) if case.get("hparams") else ""
    return (f"{case['regularizer']}{algo} D={case['dim']} N={case['batch']} V={case['views']} "
            f"{case['device']} {case['dtype']}{hp}")


def same_setup(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in SETUP_KEYS)
