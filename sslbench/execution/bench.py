"""The case library of ``sslbench bench`` and ``sslbench sweep --kind bench``: regularizer micro-benchmarks
(forward + backward), their grid, their validation and their records. The command itself is the thin
:mod:`sslbench.execution.bench_command`; this module imports neither it nor the sweep.

Each case is one regularizer at one shape: D features, N samples per view, V views, on one device and dtype
(and, for the regularizers with an ``algorithm`` hyper-parameter, one algorithm). The step measured is what a
training step pays for the loss::

    out = reg(z_1, ..., z_V)            # symmetric regularizers
    out = reg(online_views, target_views)   # byol, directpred, isoloss (symmetric = False)
    out.loss.backward()

on random float inputs that require grad (the targets of the asymmetric ones do not). Set-up (inputs, module)
is not timed. Measurement is :func:`sslbench.execution.measure.measure`: on the CPU each case runs in a fresh process
(:func:`sslbench.execution.measure.measure_in_subprocess`) so that its peak resident memory is its own; on CUDA it runs in
this process with the allocator's peak statistics reset per case (``--isolate always`` uses a process per case
there too).

Records (``sslbench.records``) have ``kind="regularizer_bench"``, case keys ``regularizer, algorithm (if any),
dim, batch, views, device, dtype`` (and ``hparams`` when some were given) and metrics ``time_median_s,
time_iqr_s, time_min_s, repeats, peak_rss_bytes`` (CPU) or ``cuda_max_allocated_bytes,
cuda_max_reserved_bytes, nvml_peak_used_bytes`` (CUDA), among others. The store is appended to, so a grid that
was interrupted resumes where it stopped: cases with a final status measured on the same setup (device name,
torch version, threads) are skipped; ``--no-resume`` re-measures.

The command (:mod:`sslbench.execution.bench_command`) is a front end of the sweep's loop
(:func:`sslbench.execution.sweep.execute`, ``sslbench sweep --kind bench`` with the same options), which builds on
this module's cases.
"""

from __future__ import annotations

import gc
import itertools
import os
from typing import Any, Callable, Iterable

import torch

from sslbench import regularizers
from sslbench.devices import resolve_device  # noqa: F401 - re-exported: the rules of --device
from sslbench.execution.cases import DTYPE_NAMES, KIND, SETUP_KEYS, describe, same_setup  # noqa: F401 - re-exported
from sslbench.execution.measure import Measurement, is_oom_error, measure, measure_in_subprocess
from sslbench.probe.cpu_load import busy_note

__all__ = [
    "KIND",
    "DEFAULT_OUT",
    "DTYPES",
    "accepts",
    "make_inputs",
    "make_regularizer",
    "make_step",
    "bench_case",
    "iter_cases",
    "run_case",
]

DEFAULT_OUT = "results/runs/bench.jsonl"
DTYPES = dict(zip(DTYPE_NAMES, (torch.float32, torch.float64, torch.bfloat16, torch.float16)))
# hyper-parameters that take the embedding size when a regularizer needs it at construction
_DIM_HPARAMS = ("dim",)


# --------------------------------------------------------------------------------------------------------------
# One case: inputs, module, step
# --------------------------------------------------------------------------------------------------------------
def accepts(name: str, hparam: str) -> bool:
    """Whether regularizer ``name`` has the hyper-parameter ``hparam`` (False when its module does not import)."""
    try:
        return hparam in regularizers.hparam_names(name)
    except Exception:  # noqa: BLE001 - a module that does not import accepts nothing
        return False


def is_symmetric(name: str) -> bool:
    """Whether ``name`` takes views of one branch (True) or online and target views (False); a regularizer whose
    module does not import counts as symmetric (its cases record the import error)."""
    try:
        cls = regularizers.get_class(name)
    except ImportError:
        return True
    return bool(getattr(cls, "symmetric", True))


def make_inputs(
    name: str, dim: int, batch: int, views: int, *, device: str = "cpu", dtype: str = "float32", seed: int = 0
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Random embeddings for one case: ``(leaves, targets)``.

    Symmetric regularizers: ``views`` leaf tensors (N, D) that require grad, ``targets=None``. Asymmetric ones:
    ``views`` online leaves (require grad) and ``views`` target tensors (no grad).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    for what, value, low in (("dim", dim, 2), ("batch", batch, 2), ("views", views, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{what}={value!r} must be an integer >= {low}")
    g = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]

    def draw(grad: bool) -> torch.Tensor:
        return torch.randn(batch, dim, generator=g).to(device=device, dtype=dt).requires_grad_(grad)

    leaves = [draw(True) for _ in range(views)]
    targets = None if is_symmetric(name) else [draw(False) for _ in range(views)]
    return leaves, targets


def make_regularizer(name: str, dim: int, *, algorithm: str | None = None, hparams: dict | None = None,
                     device: str = "cpu") -> torch.nn.Module:
    """``regularizers.create(name, **hparams)`` with ``algorithm`` and, where the regularizer takes one, its
    embedding size (``dim``) filled in, moved to ``device``."""
    hp = dict(hparams or {})
    if algorithm is not None:
        hp["algorithm"] = algorithm
    for key in _DIM_HPARAMS:
        if key not in hp and accepts(name, key):
            hp[key] = dim
    return regularizers.create(name, **hp).to(device)


def state_bytes(name: str, dim: int, *, algorithm: str | None = None, hparams: dict | None = None) -> int | None:
    """Bytes of the regularizer's parameters and buffers at embedding size ``dim`` (DirectPred's D×D predictor
    and F, ...), counted on the meta device: nothing is allocated, whatever ``dim``. None when even the meta
    tensors cannot be made (a size past int64). Raises what the constructor raises for bad hyper-parameters."""
    try:
        with torch.device("meta"):
            reg = make_regularizer(name, dim, algorithm=algorithm, hparams=hparams, device="meta")
    except (OverflowError, RuntimeError) as exc:
        if "overflow" in str(exc).lower() or isinstance(exc, OverflowError):
            return None
        raise
    except TypeError as exc:
        if "Overflow" in str(exc):
            return None
        raise
    return sum(t.numel() * t.element_size() for t in itertools.chain(reg.parameters(), reg.buffers()))


def case_bytes(case: dict, state: int | None) -> int | None:
    """A lower bound of a case's memory: its inputs and their gradients (V × N × D values each; the targets too for
    the asymmetric regularizers) plus the regularizer's state (:func:`state_bytes`); None for an unknowable one."""
    if state is None:
        return None
    values = case["views"] * case["batch"] * case["dim"] * (2 if is_symmetric(case["regularizer"]) else 3)
    return values * DTYPES[case["dtype"]].itemsize + state


def device_memory(device: str) -> int | None:
    """Bytes of memory of ``device``: the machine's physical memory for the CPU, the GPU's for CUDA (None when
    unknown, e.g. a CUDA device planned on a machine without one)."""
    if device == "cpu":
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        return torch.cuda.get_device_properties(0 if index is None else index).total_memory
    return None


def make_step(
    regularizer: str,
    dim: int,
    batch: int,
    views: int = 2,
    device: str = "cpu",
    dtype: str = "float32",
    algorithm: str | None = None,
    hparams: dict | None = None,
    seed: int = 0,
) -> Callable[[], torch.Tensor]:
    """Build one case (inputs and module; untimed) and return its step: forward + backward, returning the
    detached loss (attributes ``inputs``, ``targets``, ``module`` give access to them). Module-level and
    JSON-argument only, so that :func:`measure_in_subprocess` can call it as ``"sslbench.execution.bench:make_step"``."""
    device = resolve_device(device)
    reg = make_regularizer(regularizer, dim, algorithm=algorithm, hparams=hparams, device=device)
    leaves, targets = make_inputs(regularizer, dim, batch, views, device=device, dtype=dtype, seed=seed)
    params = [p for p in reg.parameters() if p.requires_grad]

    if targets is None:
        def step() -> torch.Tensor:
            for t in leaves:
                t.grad = None
            for p in params:
                p.grad = None
            out = reg(*leaves)
            out.loss.backward()
            return out.loss.detach()
    else:
        def step() -> torch.Tensor:
            for t in leaves:
                t.grad = None
            for p in params:
                p.grad = None
            out = reg(leaves, targets)
            out.loss.backward()
            return out.loss.detach()

    step.inputs, step.targets, step.module = leaves, targets, reg  # for tests that check the gradients
    return step


# --------------------------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------------------------
def bench_case(regularizer: str, dim: int, batch: int, views: int, device: str, dtype: str = "float32",
               algorithm: str | None = None, hparams: dict | None = None) -> dict:
    """The case dict of the results schema (``algorithm`` only when given, ``hparams`` only when non-empty)."""
    case: dict[str, Any] = {"regularizer": regularizer}
    if algorithm is not None:
        case["algorithm"] = algorithm
    case.update({"dim": int(dim), "batch": int(batch), "views": int(views), "device": device, "dtype": dtype})
    if hparams:
        case["hparams"] = dict(sorted(hparams.items()))
    return case


def iter_cases(
    names: Iterable[str],
    dims: Iterable[int],
    batches: Iterable[int],
    views: Iterable[int],
    devices: Iterable[str],
    dtypes: Iterable[str] = ("float32",),
    algorithms: Iterable[str] | None = None,
    hparams: dict | None = None,
) -> list[dict]:
    """Every case of the grid. ``algorithms`` applies to the regularizers that have an ``algorithm``
    hyper-parameter (the others get one case each); ``None`` keeps each regularizer's default. ``hparams`` is
    given to the regularizers that accept each key."""
    algorithms = list(algorithms) if algorithms else None
    cases = []
    for name in names:
        hp = {k: v for k, v in (hparams or {}).items() if accepts(name, k)}
        algos: list[str | None] = [None]
        if algorithms and accepts(name, "algorithm"):
            algos = list(algorithms)
        for algo, d, n, v, dev, dt in itertools.product(algos, dims, batches, views, devices, dtypes):
            cases.append(bench_case(name, d, n, v, dev, dt, algo, hp))
    return cases


def run_case(case: dict, *, isolate: bool, warmup: int = 2, repeats: int | None = None, min_time_s: float = 0.2,
             max_repeats: int = 50, timeout_s: float = 600.0, threads: int | None = None,
             seed: int = 0) -> Measurement:
    """Measure one case, in a fresh process when ``isolate``. Never raises for a failing case (its status says)."""
    kwargs = {"regularizer": case["regularizer"], "dim": case["dim"], "batch": case["batch"],
              "views": case["views"], "device": case["device"], "dtype": case["dtype"],
              "algorithm": case.get("algorithm"), "hparams": case.get("hparams"), "seed": seed}
    mkw = {"warmup": warmup, "repeats": repeats, "min_time_s": min_time_s, "max_repeats": max_repeats}
    if isolate:
        return measure_in_subprocess("sslbench.execution.bench:make_step", kwargs, device=case["device"], timeout_s=timeout_s,
                                     threads=threads, **mkw)
    try:
        step = make_step(**kwargs)
    except Exception as exc:  # noqa: BLE001 - a case that cannot be built is a result
        return Measurement(status="oom" if is_oom_error(exc) else "error", message=f"{type(exc).__name__}: {exc}")
    try:
        return measure(step, device=case["device"], **mkw)
    finally:
        del step
        gc.collect()
        if case["device"].startswith("cuda"):
            torch.cuda.empty_cache()


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def summary_line(m: Measurement) -> str:
    if m.status != "ok":
        return f"{m.status}: {m.message}"
    x = m.metrics
    if "cuda_max_allocated_bytes" in x:
        mem = (f"max_allocated {_human_bytes(x['cuda_max_allocated_bytes'])} "
               f"(+{_human_bytes(x.get('cuda_max_allocated_delta_bytes'))}), "
               f"max_reserved {_human_bytes(x.get('cuda_max_reserved_bytes'))}")
    else:
        mem = f"peak_rss {_human_bytes(x.get('peak_rss_bytes'))} (+{_human_bytes(x.get('peak_rss_delta_bytes'))})"
    return (f"ok {x['time_median_s'] * 1e3:.3f} ms (IQR {x['time_iqr_s'] * 1e3:.3f} ms, n={x['repeats']}) {mem}"
            + busy_note(x))



