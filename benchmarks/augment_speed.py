"""Side by side, in one process: the two augmentation backends (kornia, torch) on the same uint8 batches, V views.

    OMP_NUM_THREADS=2 python benchmarks/augment_speed.py [--device cpu|cuda] [--repeats 15]

Prints the minimum and median milliseconds per call (after 3 warm-up calls) and the ratio kornia / torch. The
calls alternate between the backends so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sslbench.training.augment import build_augment

CASES = [("cifar", (3, 32, 32), 256, 2), ("mnist", (1, 28, 28), 256, 2), ("digits", (1, 8, 8), 256, 2),
         ("stl10", (3, 96, 96), 256, 2)]


def _time(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) * 1e3


def measure(preset, shape, batch, views, device, repeats: int, backends) -> dict:
    x = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, device=device)
    augs = {b: build_augment(shape, preset, backend=b).to(device) for b in backends}
    times = {b: [] for b in backends}
    for i in range(repeats + 3):
        for b, aug in augs.items():
            ms = _time(lambda: aug(x, views), device)
            if i >= 3:
                times[b].append(ms)
    return {b: (min(t), statistics.median(t)) for b, t in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--presets", default="cifar,mnist", help="comma-separated, of " +
                    ",".join(c[0] for c in CASES))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    try:
        import kornia  # noqa: F401
        backends = ("kornia", "torch")
    except ImportError:
        backends = ("torch",)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print(f"{'case':<34}" + "".join(f"{b + ' min/median ms':>26}" for b in backends) + "  kornia/torch (median)")
    wanted = args.presets.split(",")
    for preset, shape, batch, views in CASES:
        if preset not in wanted:
            continue
        r = measure(preset, shape, batch, views, device, args.repeats, backends)
        ratio = f"{r['kornia'][1] / r['torch'][1]:.2f}x" if "kornia" in r else "-"
        label = f"{batch}x{'x'.join(map(str, shape))} {preset} V={views}"
        print(f"{label:<34}" + "".join(f"{a:>14.1f} / {m:>7.1f} ms" for a, m in r.values()) + f"  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
