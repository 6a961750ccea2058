"""The environment fingerprint of every record: where a measurement ran.

:func:`environment` gives the sslbench version and git commit, torch / CUDA / cuDNN versions, GPU names, count
and memory, the NVIDIA driver and its CUDA version (NVML), CPU model and core counts, torch's thread counts, host
memory, hostname, Python and platform. The records (``sslbench.records.make_record(..., env=...)``) take it as
an argument; they never import it.

Below both :mod:`sslbench.training` (the loop stamps its record with it) and :mod:`sslbench.execution`.
``python -m sslbench.probe.environment`` prints it as JSON.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment", "nvml_module", "nvml_text"]


def _run_git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@lru_cache(maxsize=1)
def _git_info() -> dict:
    """The commit of the checkout this sslbench was imported from (None when installed from a wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        return {"git_commit": os.environ.get("SSLBENCH_GIT_COMMIT"), "git_dirty": None}
    top = _run_git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return {"git_commit": os.environ.get("SSLBENCH_GIT_COMMIT"), "git_dirty": None}
    commit = _run_git(root, "rev-parse", "HEAD")
    status = _run_git(root, "status", "--porcelain", "--untracked-files=no")
    if not commit:
        return {"git_commit": os.environ.get("SSLBENCH_GIT_COMMIT"), "git_dirty": None}
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@lru_cache(maxsize=1)
def nvml_module():
    """The initialised ``pynvml`` module, or None when NVML (nvidia-ml-py or the driver) is not there."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - any failure means "no NVML"
        return None


def nvml_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@lru_cache(maxsize=1)
def _static_environment() -> dict:
    import sslbench

    env: dict[str, Any] = {
        "sslbench_version": sslbench.__version__,
        **_git_info(),
        "torch_version": torch.__version__,
        "torch_cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import psutil

        env["cpu_count_physical"] = psutil.cpu_count(logical=False)
        env["host_memory_bytes"] = int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001
        env["cpu_count_physical"] = None
        env["host_memory_bytes"] = None
    cuda = torch.cuda.is_available()
    env["cuda_available"] = cuda
    env["device_count"] = torch.cuda.device_count() if cuda else 0
    env["device_names"] = [torch.cuda.get_device_name(i) for i in range(env["device_count"])]
    env["device_name"] = env["device_names"][0] if cuda else env["cpu_model"]
    env["device_memory_bytes"] = [
        int(torch.cuda.get_device_properties(i).total_memory) for i in range(env["device_count"])
    ]
    env["driver_version"] = None
    env["cuda_driver_version"] = None
    nv = nvml_module() if cuda else None
    if nv is not None:
        try:
            env["driver_version"] = nvml_text(nv.nvmlSystemGetDriverVersion())
            v = int(nv.nvmlSystemGetCudaDriverVersion())
            env["cuda_driver_version"] = f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:  # noqa: BLE001
            pass
    return env


def environment(refresh: bool = False) -> dict:
    """Where a measurement runs: sslbench version and git commit (``git_dirty``: uncommitted changes to tracked
    files), torch / CUDA / cuDNN versions, GPU names, count and memory, NVIDIA driver and its CUDA version (NVML),
    CPU model and core counts, torch's thread counts (read now, they can change), host memory, hostname, Python
    and platform. Cached per process except the thread counts; ``refresh=True`` re-reads everything."""
    if refresh:
        _static_environment.cache_clear()
        _git_info.cache_clear()
    env = dict(_static_environment())
    env["threads"] = torch.get_num_threads()
    env["interop_threads"] = torch.get_num_interop_threads()
    return env


if __name__ == "__main__":
    print(json.dumps(environment(), indent=2))
