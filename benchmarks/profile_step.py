"""Where one training step of ``sslbench train`` spends its time, before and after the fast path, side by side.

    OMP_NUM_THREADS=2 python benchmarks/profile_step.py --case default --steps 12
    OMP_NUM_THREADS=2 python benchmarks/profile_step.py --case resnet18 --steps 3
    python benchmarks/profile_step.py --case resnet18 --device cuda --steps 30 --variants after   # on a GPU

Each variant runs the real loop (:func:`sslbench.training.train.train`, no evaluation, no outputs) under
``torch.profiler``; the loop marks its phases with ``record_function`` ranges (``sslbench.data``, ``.augment``,
``.forward``, ``.loss``, ``.backward``, ``.optimizer``, ``.log``: :data:`sslbench.training.train.PHASES`). The
table gives, per phase, the mean milliseconds per step over the profiled steps (after ``--skip`` warm-up steps):
the phase's wall time on the host, and on CUDA also the device time of the kernels it launched. ``step`` is the
median wall time between the ends of consecutive steps, ``other`` what the phases leave of it.

Variants (run alternately, ``--rounds`` times each, so that other load on the machine hits both alike):

* ``before``: the loop as it was before the fast path: kornia augmentation and the per-parameter optimiser
  steps (SGD/AdamW ``foreach=False``, LARS's loop over parameters). On the CPU the other changes (the batch
  indices copied once per epoch instead of every step, the NaN/Inf flag read at log steps only) cost nothing
  either way, since nothing runs asynchronously there.
* ``after``: the defaults now: the torch augmentation backend, multi-tensor optimiser steps (and on CUDA
  ``torch.compile``, fused SGD/AdamW).

Cases: ``default`` is the CPU default configuration (:class:`TrainConfig` defaults: Fashion-MNIST when found,
the convnet, batch 256, V = 2, SGD); ``resnet18`` is ``resnet18_cifar`` on synthetic 3×32×32 images, batch 256,
V = 2, LARS, projector 2048-2048 (solo-learn's CIFAR Barlow Twins shape); ``tiny`` is the tests' smoke case.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

import torch

from sslbench.training import train as T
from sslbench.training.optim import LARS, param_groups

CASES = {
    "default": dict(),
    "resnet18": dict(dataset="synthetic", backbone="resnet18_cifar", projector="2048-2048", dim=2048,
                     optimizer="lars", lr=0.3, data_options={"num_samples": 1024, "channels": 3, "height": 32,
                                                             "width": 32, "num_classes": 10}),
    # a few milliseconds a step: the smoke test's case
    "tiny": dict(dataset="synthetic", backbone="convnet", projector="32", dim=16, batch_size=16,
                 data_options={"num_samples": 64, "channels": 1, "height": 12, "width": 12, "num_classes": 4}),
}
VARIANTS = {"before": dict(augment_backend="kornia"), "after": dict(augment_backend="auto")}


def per_parameter_optimizer(model, name, lr, weight_decay, momentum=0.9, device=None):
    """The optimiser steps as they were before the fast path (one update per parameter tensor)."""
    groups = param_groups(model, weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, foreach=False)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, foreach=False)
    return torch.optim.AdamW(groups, lr=lr, foreach=False)


def profile_variant(case: str, variant: str, device: str, steps: int, skip: int) -> dict:
    """Milliseconds per step of each phase (host wall, and device time on CUDA), and the median step time."""
    cfg = T.TrainConfig(**CASES[case], **VARIANTS[variant], device=device, max_steps=steps + skip, eval=False,
                        out=None, log_dir=None, checkpoint_dir=None, progress=False, verbose=False)
    ends: list[float] = []
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    schedule = torch.profiler.schedule(wait=0, warmup=skip, active=steps, repeat=1)
    patch = (contextlib.nullcontext() if variant == "after"
             else _patched(T, "build_optimizer", per_parameter_optimizer))
    with patch, torch.profiler.profile(activities=activities, schedule=schedule) as prof:
        def on_step(info):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            ends.append(time.perf_counter())
            prof.step()

        record = T.train(cfg, on_step=on_step)
    if record["status"] != "ok":
        raise SystemExit(f"profile_step: the {variant} run ended {record['status']}: {record.get('message')}")
    table = {}
    for event in prof.key_averages():
        if event.key.startswith("sslbench."):
            host = event.cpu_time_total / 1e3 / steps
            dev = getattr(event, "device_time_total", getattr(event, "cuda_time_total", 0.0)) / 1e3 / steps
            table[event.key.split(".", 1)[1]] = (host, dev)
    gaps = [b - a for a, b in zip(ends[skip:], ends[skip + 1:])]
    return {"phases": table, "step_ms": statistics.median(gaps) * 1e3 if gaps else float("nan"),
            "backend": record["extra"]["augment_backend"], "compiled": record["extra"]["compiled"],
            "batch": cfg.batch_size}


@contextlib.contextmanager
def _patched(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def _mean(results: list[dict], phase: str, i: int) -> float:
    return statistics.mean(r["phases"].get(phase, (0.0, 0.0))[i] for r in results)


def print_table(case: str, device: str, results: dict[str, list[dict]]) -> None:
    variants = list(results)
    cuda = device.startswith("cuda")
    print(f"\ncase {case} on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          + ", ".join(f"{v}: augment {results[v][0]['backend']}, compiled {results[v][0]['compiled']}"
                      for v in variants))
    head = "".join(f"{v + ' host ms':>16}" + (f"{v + ' device ms':>18}" if cuda else "") for v in variants)
    ratio = len(variants) == 2
    print(f"{'phase':<12}{head}" + (f"{'before/after':>14}" if ratio else ""))
    for phase in T.PHASES:
        cells = "".join(f"{_mean(results[v], phase, 0):>16.1f}" + (f"{_mean(results[v], phase, 1):>18.1f}"
                                                                    if cuda else "") for v in variants)
        r = ""
        if ratio:
            a, b = (_mean(results[v], phase, 0) for v in variants)
            r = f"{a / b:>13.2f}x" if b > 0 else f"{'-':>14}"
        print(f"{phase:<12}{cells}{r}")
    step = {v: statistics.mean(r["step_ms"] for r in results[v]) for v in variants}
    other = {v: step[v] - sum(_mean(results[v], p, 0) for p in T.PHASES) for v in variants}
    print(f"{'other':<12}" + "".join(f"{other[v]:>16.1f}" + (" " * 18 if cuda else "") for v in variants))
    print(f"{'step':<12}" + "".join(f"{step[v]:>16.1f}" + (" " * 18 if cuda else "") for v in variants)
          + (f"{step[variants[0]] / step[variants[1]]:>13.2f}x" if ratio else ""))
    batch = results[variants[0]][0]["batch"]
    print(f"{'images/s':<12}" + "".join(f"{batch / step[v] * 1e3:>16.0f}" + (" " * 18 if cuda else "")
                                        for v in variants))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), default="default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10, help="profiled steps per run")
    ap.add_argument("--skip", type=int, default=2, help="warm-up steps per run, not profiled")
    ap.add_argument("--rounds", type=int, default=1, help="runs per variant, alternating")
    ap.add_argument("--variants", default="before,after", help="comma-separated: before, after")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    if any(v not in VARIANTS for v in variants):
        print(f"profile_step: --variants takes {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            results[v].append(profile_variant(args.case, v, args.device, args.steps, args.skip))
    print_table(args.case, args.device, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
