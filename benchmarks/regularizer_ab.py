"""Forward+backward of the regularizers at two commits, side by side in one process (A/B).

The regularizers package of ``--base`` is extracted with ``git archive`` into a temporary folder and imported
under another name next to this checkout's; the two are called alternately, and each figure is the minimum over
``--repeats`` of the thread CPU time (one torch thread: CPU time is less disturbed than wall time by other
processes on a shared machine). Prints one line per case with the ratio new/old.

    OMP_NUM_THREADS=1 python benchmarks/regularizer_ab.py --base 947f3ef --repeats 21
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def load_regularizers_at(commit: str, folder: str):
    """The ``sslbench/regularizers`` package of ``commit``, imported as ``regularizers_<commit>``."""
    blob = subprocess.run(["git", "-C", ROOT, "archive", commit, "sslbench/regularizers"], capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    name = f"regularizers_{commit}"
    os.rename(os.path.join(folder, "sslbench", "regularizers"), os.path.join(folder, name))
    sys.path.insert(0, folder)
    return importlib.import_module(name)


def forward_backward_s(reg, zs) -> float:
    leaves = [z.clone().requires_grad_(True) for z in zs]
    t = time.thread_time()
    reg(*leaves).loss.backward()
    return time.thread_time() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the commit to compare with (git revision)")
    p.add_argument("--names", nargs="+", default=["barlow_twins", "vicreg"])
    p.add_argument("--algorithms", nargs="+", default=["cross_correlation", "gram", "auto"])
    p.add_argument("--dims", nargs="+", type=int, default=[1024, 8192])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    from sslbench import regularizers as new

    with tempfile.TemporaryDirectory() as folder:
        old = load_regularizers_at(args.base, folder)
        for d in args.dims:
            g = torch.Generator().manual_seed(0)
            zs = [torch.randn(args.batch, d, generator=g) for _ in range(2)]
            for name in args.names:
                for alg in args.algorithms:
                    a, b = old.create(name, algorithm=alg), new.create(name, algorithm=alg)
                    forward_backward_s(a, zs), forward_backward_s(b, zs)  # warm-up
                    ta, tb = [], []
                    for _ in range(args.repeats):
                        ta.append(forward_backward_s(a, zs))
                        tb.append(forward_backward_s(b, zs))
                    print(f"{name:13s} {alg:17s} N={args.batch} D={d}: {args.base} {min(ta) * 1e3:8.2f} ms  "
                          f"now {min(tb) * 1e3:8.2f} ms  now/base {min(tb) / min(ta):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
