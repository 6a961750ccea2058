"""asv entry of the training-step throughput benchmark (the script ``benchmarks/train_throughput.py``), CPU-sized.

:class:`TrainThroughput` — ``track_`` of the images/s and the ms per step of sslbench's loop and of the peer-style
loop (torchvision/PIL augmentation in one ``DataLoader`` worker) on the small convnet, batch 64, V = 2, 3×32×32
synthetic images, 3 warm-up + 6 timed steps. ``setup_cache`` measures both loops once (a few seconds on 2 cores);
the ``track_`` methods read the figures. ``SSLBENCH_ASV_DEVICE`` (``auto``, ``cpu``, ``cuda``) picks the device as
for the rest of the suite. Skipped for commits whose training loop lacks what the benchmark calls.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import torch

CASE = dict(backbone="convnet", batch=64, views=2, warmup=3, steps=6, workers=1, num_images=512)


def _script(name: str):
    """The script ``benchmarks/<name>.py`` beside this suite, imported as ``benchmarks.<name>``: the checkout that
    holds it goes at the END of ``sys.path`` (sslbench itself is already imported, from where asv installed it)."""
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.append(root)
    return importlib.import_module(f"benchmarks.{name}")


def _device() -> torch.device:
    device = os.environ.get("SSLBENCH_ASV_DEVICE", "auto")
    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        "cpu" if device == "auto" else device)


class TrainThroughput:
    """sslbench's training loop against the peer-style loop, CPU-sized case (see the module docstring)."""

    params = [["sslbench", "peer"]]
    param_names = ["loop"]
    timeout = 300

    def setup_cache(self):
        try:
            from sslbench.execution.measure import environment

            tt = _script("train_throughput")
            Case, matmul_tflops, measure = tt.Case, tt.matmul_tflops, tt.measure
        except ImportError:
            return None
        device = _device()
        env, peak, case = environment(), matmul_tflops(device), Case(**CASE)
        out = {}
        for loop in self.params[0]:
            try:
                out[loop] = measure(case, loop, device, env=env, peak=peak, flops=None)
            except Exception as exc:  # noqa: BLE001 - a commit whose loop lacks a hook: that loop is skipped
                out[loop] = {"status": "error", "message": f"{type(exc).__name__}: {exc}", "metrics": {}}
        return out

    def setup(self, records, loop):
        if records is None:
            raise NotImplementedError("the throughput benchmark does not import in this commit")

    def _metric(self, records, loop, key):
        r = records[loop]
        if r["status"] != "ok":
            raise NotImplementedError(f"{loop} loop ended with status {r['status']}: {r.get('message')}")
        return float(r["metrics"][key])

    def track_images_per_s(self, records, loop):
        return self._metric(records, loop, "images_per_s")

    track_images_per_s.unit = "images/s"

    def track_step_ms(self, records, loop):
        return self._metric(records, loop, "step_ms")

    track_step_ms.unit = "ms"
