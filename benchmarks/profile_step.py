"""Where one training step of ``sslbench train`` spends its time, before and after the fast path, side by side.

    OMP_NUM_THREADS=2 python benchmarks/profile_step.py --case default --steps 12
    OMP_NUM_THREADS=2 python benchmarks/profile_step.py --case resnet18 --steps 3
    python benchmarks/profile_step.py --case resnet18 --device cuda --steps 30 --variants after   # on a GPU

Each variant is set up as ``sslbench train`` sets a run up (:func:`sslbench.training.train.set_up`, no
evaluation, no outputs) and its steps run under ``torch.profiler``; the loop marks its phases with
``record_function`` ranges (``sslbench.data``, ``.augment``,
``.forward``, ``.loss``, ``.backward``, ``.optimizer``, ``.log``: :data:`sslbench.training.train.PHASES`). The
table gives, per phase, the mean milliseconds per step over the profiled steps (after ``--skip`` warm-up steps):
the phase's wall time on the host, and on CUDA also the device time of the kernels it launched. ``step`` is the
median wall time between the ends of consecutive steps (on CUDA the script synchronises the device at the end of
every step to read it), ``other`` what the phases leave of it.

Variants (their steps alternate, step by step, in one process, so that other load on the machine hits them
alike; ``--rounds`` repeats the whole comparison with fresh runs):

* ``before``: the loop as it was before the fast path: kornia augmentation (it must be installed), the
  per-parameter optimiser steps (SGD/AdamW ``foreach=False``, LARS's loop over parameters), no
  ``torch.compile``. The other changes (the batch indices copied once per epoch instead of every step, the
  NaN/Inf flag read at log steps only) are not undone: on the CPU they cost nothing either way, since nothing
  runs asynchronously there; on CUDA the ``before`` figures are therefore a little flattering.
* ``eager``: the fast path without ``torch.compile`` (on the CPU the same as ``after``).
* ``after``: the defaults now: the torch augmentation backend, multi-tensor optimiser steps, and on CUDA
  ``torch.compile`` and fused SGD/AdamW.

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
VARIANTS = {"before": dict(augment_backend="kornia", compile_cuda=False),
            "eager": dict(augment_backend="auto", compile_cuda=False),
            "after": dict(augment_backend="auto")}


def per_parameter_optimizer(model, name, lr, weight_decay, momentum=0.9, device=None):
    """The optimiser steps as they were before the fast path (one update per parameter tensor)."""
    groups = param_groups(model, weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, foreach=False)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, foreach=False)
    return torch.optim.AdamW(groups, lr=lr, foreach=False)


def build(case: str, variant: str, device: str, total_steps: int):
    """A set-up run of ``variant`` (no evaluation, no outputs), its state and its batch source."""
    cfg = T.TrainConfig(**CASES[case], **VARIANTS[variant], device=device, max_steps=total_steps, eval=False,
                        out=None, log_dir=None, checkpoint_dir=None, progress=False, verbose=False).resolved()
    patch = _patched(T, "build_optimizer", per_parameter_optimizer) if variant == "before" else \
        contextlib.nullcontext()
    with patch:
        run = T.set_up(cfg, 0, 1, T.resolve_device(device, 0))
    run.net.train()
    return run, T.RunState(), T._EpochBatches(run)


def one_step(run, state, batches) -> None:
    """What one iteration of :func:`sslbench.training.train.train_steps` does, in its phases: gather the batch,
    the step (falling back to eager if compiling fails), and at log steps the read of the NaN flag and the terms."""
    with T._phase("data"):
        images = batches(state.step)
    out, _, _ = T.step_or_fall_back(run, state, images)
    bad = ~torch.isfinite(out.loss.detach())
    if state.step % run.cfg.log_every == 0:
        with T._phase("log"):
            bool(bad), out.detached()


def profile(case: str, variants: list[str], device: str, steps: int, skip: int) -> dict[str, dict]:
    """Per variant: milliseconds per step of each phase (host wall, and device time on CUDA) and the median
    step time. The variants' steps alternate (step i of each, then step i + 1 of each) inside one profiler."""
    runs = {v: build(case, v, device, steps + skip) for v in variants}
    cuda = device.startswith("cuda")
    wall: dict[str, list[float]] = {v: [] for v in variants}
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for i in range(steps + skip):
            for v, (run, state, batches) in runs.items():
                t = time.perf_counter()
                with torch.profiler.record_function(f"variant.{v}.{i}"):
                    one_step(run, state, batches)
                if cuda:
                    torch.cuda.synchronize()
                if i >= skip:
                    wall[v].append((time.perf_counter() - t) * 1e3)
    phases: dict[str, dict] = {v: {} for v in variants}
    for event in prof.events():
        if not event.name.startswith("sslbench."):
            continue
        v, i = _variant_of(event)
        if v is None or i < skip:
            continue
        device_us = event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
        host, dev = phases[v].get(event.name.split(".", 1)[1], (0.0, 0.0))
        phases[v][event.name.split(".", 1)[1]] = (host + event.cpu_time_total / 1e3 / steps,
                                                  dev + device_us / 1e3 / steps)
    return {v: {"phases": phases[v], "step_ms": statistics.median(wall[v]), "backend": runs[v][0].augment_backend,
                "compiled": runs[v][0].eager_net is not None, "batch": runs[v][0].cfg.batch_size}
            for v in variants}


def _variant_of(event) -> tuple[str | None, int]:
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith("variant."):
        parent = parent.cpu_parent
    if parent is None:
        return None, -1
    _, v, i = parent.name.split(".")
    return v, int(i)


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
    ratio = len(variants) >= 2  # the first variant's time over the last's
    print(f"{'phase':<12}{head}" + (f"{variants[0] + '/' + variants[-1]:>14}" if ratio else ""))
    for phase in T.PHASES:
        cells = "".join(f"{_mean(results[v], phase, 0):>16.1f}" + (f"{_mean(results[v], phase, 1):>18.1f}"
                                                                    if cuda else "") for v in variants)
        r = ""
        if ratio:
            a, b = (_mean(results[v], phase, 0) for v in (variants[0], variants[-1]))
            r = f"{a / b:>13.2f}x" if b > 0 else f"{'-':>14}"
        print(f"{phase:<12}{cells}{r}")
    step = {v: statistics.mean(r["step_ms"] for r in results[v]) for v in variants}
    other = {v: step[v] - sum(_mean(results[v], p, 0) for p in T.PHASES) for v in variants}
    print(f"{'other':<12}" + "".join(f"{other[v]:>16.1f}" + (" " * 18 if cuda else "") for v in variants))
    print(f"{'step':<12}" + "".join(f"{step[v]:>16.1f}" + (" " * 18 if cuda else "") for v in variants)
          + (f"{step[variants[0]] / step[variants[-1]]:>13.2f}x" if ratio else ""))
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
    ap.add_argument("--variants", default="before,after", help="comma-separated: before, eager, after")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    if any(v not in VARIANTS for v in variants):
        print(f"profile_step: --variants takes {', '.join(VARIANTS)} (comma-separated)", file=sys.stderr)
        return 2
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v, r in profile(args.case, variants, args.device, args.steps, args.skip).items():
            results[v].append(r)
    print_table(args.case, args.device, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
