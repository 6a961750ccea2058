"""Side-by-side: every sslbench regularizer next to the official Barlow Twins and VICReg formulations.

Forward + backward of each loss on random (N, D) float32 views, N = 256 by default and D from 512 to 16384,
measured in ONE run so that the ratios are not skewed by the load of a shared machine drifting between runs. On
the CPU each case runs in a fresh process (``sslbench.execution.measure.measure_in_subprocess``): its peak resident memory is
its own. On CUDA each case runs in this process with the allocator's peak statistics reset (CUDA events; NVML).

The contenders (derived from the registry, :func:`contenders`): ``official_barlow_twins`` / ``official_vicreg``
(``benchmarks/official.py``: the papers' code, step for step, measured through the plugin path as the specs
``benchmarks.official:OfficialBarlowTwins`` / ``:OfficialVICReg``), then every built-in; those with an ``algorithm``
choice (``barlow_twins``, ``vicreg``) twice, with ``"auto"`` (what a user gets) and ``"cross_correlation"`` (the
primal form, to show what the dual buys). Those that eigendecompose a D × D predictor each step (O(D³):
``eigendecomposes`` on the class) are skipped above ``--max-dim-eigh`` on the CPU (listed as such).
``--contenders`` also takes any regularizer spec: a plugin's entry-point name or ``package.module:Class``.

Memory column: on the CPU the peak resident set growth during the timed steps (``peak_rss_delta_bytes``: peak RSS
minus the RSS after set-up, so the inputs and the module are not counted); on CUDA ``max_memory_allocated`` minus
what was allocated before the timed steps.

Run from the repository root (it prints the table as it goes and writes it, in Markdown, next to the records)::

    python benchmarks/side_by_side.py                        # N=256, D=512..16384, every contender
    python benchmarks/side_by_side.py --dims 1024 8192 --contenders official_barlow_twins barlow_twins
    python benchmarks/side_by_side.py --dims 1024 --contenders barlow_twins mypkg.losses:MyLoss

This file is a script, not an asv benchmark: it defines no ``time_``/``peakmem_``/``track_`` names.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/side_by_side.py` puts benchmarks/ first, not the root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from sslbench import regularizers  # noqa: E402
from sslbench.execution.bench import accepts, make_step, resolve_device  # noqa: E402
from sslbench.execution.measure import Measurement, environment, measure, measure_in_subprocess  # noqa: E402
from sslbench.records import append_record  # noqa: E402

KIND = "side_by_side"
DEFAULT_DIMS = [512, 1024, 2048, 4096, 8192, 16384]
#: the official transcriptions go through the plugin path (``package.module:Class`` specs, plain ``nn.Module``
#: losses), as a user's own loss does: code that sslbench did not write for its registry
OFFICIAL_SPECS = {"official_barlow_twins": "benchmarks.official:OfficialBarlowTwins",
                  "official_vicreg": "benchmarks.official:OfficialVICReg"}


def contenders() -> dict[str, tuple[str, str | None]]:
    """label -> (spec, algorithm): the official ones, then every built-in of the registry (those with an
    ``algorithm`` choice twice: ``auto`` and the primal ``cross_correlation``)."""
    out: dict[str, tuple[str, str | None]] = {label: (spec, None) for label, spec in OFFICIAL_SPECS.items()}
    for name in regularizers.available():
        if accepts(name, "algorithm"):
            out[name] = (name, "auto")
            out[f"{name}[cross_correlation]"] = (name, "cross_correlation")
        else:
            out[name] = (name, None)
    return out


CONTENDERS = contenders()
#: the contenders that eigendecompose a D × D matrix each step (derived from the registry)
EIGH = tuple(regularizers.where("eigendecomposes"))
# which official formulation each contender is compared with
BASELINE = {"barlow_twins": "official_barlow_twins", "barlow_twins_fft": "official_barlow_twins",
            "vicreg": "official_vicreg", "vicreg_fft": "official_vicreg"}


def run_one(label: str, dim: int, batch: int, device: str, *, isolate: bool, timeout_s: float, **mkw) -> Measurement:
    """One contender (a label of :data:`CONTENDERS`, or any regularizer spec: a plugin is measured the same way)
    through ``sslbench.execution.bench:make_step``."""
    name, algo = CONTENDERS.get(label, (label, None))
    kwargs = {"regularizer": name, "dim": dim, "batch": batch, "views": 2, "device": device, "algorithm": algo}
    if isolate:
        return measure_in_subprocess("sslbench.execution.bench:make_step", kwargs, device=device,
                                     timeout_s=timeout_s, **mkw)
    try:
        step = make_step(**kwargs)
        return measure(step, device=device, **mkw)
    except Exception as exc:  # noqa: BLE001 - a case that cannot be built is a result
        from sslbench.execution.measure import is_oom_error

        return Measurement(status="oom" if is_oom_error(exc) else "error", message=f"{type(exc).__name__}: {exc}")
    finally:
        step = None
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def memory_of(m: Measurement) -> int | None:
    x = m.metrics
    if "cuda_max_allocated_delta_bytes" in x:
        return x["cuda_max_allocated_delta_bytes"]
    return x.get("peak_rss_delta_bytes")


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f}"


def table(results: dict[tuple[str, int], Measurement], labels: list[str], dims: list[int]) -> str:
    """Markdown: one row per (contender, D): median time, spread, memory, and the ratios to the official form."""
    lines = ["| contender | D | time (ms) | IQR (ms) | peak memory (MiB) | speed-up vs official | memory vs official |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label in labels:
        for d in dims:
            m = results.get((label, d))
            if m is None:
                continue
            if m.status != "ok":
                lines.append(f"| {label} | {d} | {m.status} | | | | |")
                continue
            t = m.metrics["time_median_s"]
            mem = memory_of(m)
            base = BASELINE.get(CONTENDERS.get(label, (label,))[0])
            ref = results.get((base, d)) if base else None
            speed = memf = ""
            if ref is not None and ref.status == "ok":
                speed = f"{ref.metrics['time_median_s'] / t:.1f}×"
                rmem = memory_of(ref)
                if rmem and mem is not None:
                    memf = f"{mem / rmem:.3f}"
            lines.append(f"| {label} | {d} | {t * 1e3:,.1f} | {m.metrics['time_iqr_s'] * 1e3:,.1f} | {mib(mem)} | "
                         f"{speed} | {memf} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", nargs="+", type=int, default=DEFAULT_DIMS)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), metavar="NAME",
                   help=f"labels ({', '.join(CONTENDERS)}) or any regularizer spec, e.g. a plugin's "
                        f"package.module:Class (default: every label)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--min-repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timed steps per case (at least)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per case before it is killed (CPU)")
    p.add_argument("--max-dim-eigh", type=int, default=None,
                   help="largest D for directpred/isoloss (default: 4096 on the CPU, no limit on CUDA)")
    p.add_argument("--out-dir", default=str(ROOT / "results" / "side_by_side"))
    args = p.parse_args(argv)
    for label in args.contenders:
        if label not in CONTENDERS:
            try:
                regularizers.check_spec(label)
            except ValueError as exc:
                p.error(f"--contenders {label}: {exc}")

    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    max_eigh = args.max_dim_eigh if args.max_dim_eigh is not None else (None if cuda else 4096)
    env = environment()
    slug = re.sub(r"[^a-z0-9]+", "-", str(env.get("device_name") or device).lower()).strip("-")
    out_dir = Path(args.out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jsonl, md = out_dir / f"{slug}-{stamp}.jsonl", out_dir / f"{slug}-{stamp}.md"
    print(f"side by side on {env.get('device_name')} ({device}), torch {env.get('torch_version')}, "
          f"{env.get('threads')} threads, N={args.batch}; records -> {jsonl}", flush=True)

    mkw = {"warmup": args.warmup, "min_repeats": args.min_repeats, "min_time_s": args.min_time}
    results: dict[tuple[str, int], Measurement] = {}
    for d in args.dims:
        for label in args.contenders:
            name = CONTENDERS.get(label, (label,))[0]
            case = {"contender": label, "dim": d, "batch": args.batch, "views": 2, "device": device,
                    "dtype": "float32"}
            if name in EIGH and max_eigh is not None and d > max_eigh:
                results[(label, d)] = Measurement(status="skipped", message=f"D > --max-dim-eigh={max_eigh}")
                continue
            m = run_one(label, d, args.batch, device, isolate=not cuda, timeout_s=args.timeout, **mkw)
            results[(label, d)] = m
            append_record(jsonl, m.to_record(KIND, case, env=env, extra={
                "regularizer_source": regularizers.source_record(name)}))
            if m.ok:
                print(f"  D={d:>5} {label:<32} {m.metrics['time_median_s'] * 1e3:>10.2f} ms  "
                      f"{mib(memory_of(m)):>8} MiB", flush=True)
            else:
                print(f"  D={d:>5} {label:<32} {m.status}: {m.message}", flush=True)
    text = table(results, args.contenders, args.dims)
    header = (f"Side by side, forward+backward, N={args.batch}, V=2, float32, on {env.get('device_name')} "
              f"(torch {env.get('torch_version')}, {env.get('threads')} threads, sslbench {env.get('sslbench_version')}"
              f" {str(env.get('git_commit') or '')[:10]}), measured {stamp} with\n`python benchmarks/side_by_side.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(header + text + "\n")
    print()
    print(text)
    print(f"\nwritten: {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
