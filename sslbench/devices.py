"""Device names, in one place: what ``--device`` accepts and what ``auto`` means, for ``sslbench train`` (its
config and each rank), ``bench``, ``sweep`` and the scripts under ``benchmarks/``.

The rules:

* ``auto`` is CUDA when this machine has it (``torch.cuda.is_available()``), else the CPU;
* ``cpu``;
* ``cuda`` (the current CUDA device; a distributed rank takes its local rank's) and ``cuda:N`` (N = 0, 1, ...),
  which need CUDA here, and N below the number of CUDA devices;
* anything else is refused in one line naming the accepted names.

It imports nothing of sslbench (torch only inside the functions that ask CUDA), so that every layer may use it:
training and execution both do, and a plan checks names without torch.
"""

from __future__ import annotations

import re

__all__ = ["NAMES", "HELP", "DeviceError", "check_name", "cuda_available", "is_cuda", "resolve_device"]

#: the device names --device accepts, besides ``cuda:N``
NAMES = ("auto", "cpu", "cuda")
#: what the --device options' help says
HELP = "auto (cuda if available, else cpu), cpu, cuda, cuda:N"
_CUDA_N = re.compile(r"cuda:(\d+)")


class DeviceError(ValueError):
    """A device name that is not allowed, or not available here; the message is one line naming the fix."""


def check_name(name: str) -> str:
    """``name`` if ``--device`` accepts it (``auto``, ``cpu``, ``cuda``, ``cuda:N``), written as torch writes it
    (``cuda:01`` → ``cuda:1``); :class:`DeviceError` otherwise. Asks nothing of this machine: a plan for another
    one is checked too."""
    if isinstance(name, str):
        if name in NAMES:
            return name
        if (m := _CUDA_N.fullmatch(name)) is not None:
            return f"cuda:{int(m.group(1))}"
    raise DeviceError(f"device={name!r} is not allowed; choose auto, cpu, cuda or cuda:N")


def is_cuda(name: str) -> bool:
    """Whether ``name`` is an allowed name of a CUDA device (``cuda``, ``cuda:N``); ``auto`` is not one."""
    try:
        return check_name(name).startswith("cuda")
    except DeviceError:
        return False


def cuda_available() -> bool:
    """Whether this machine has a CUDA device torch can use."""
    import torch

    return torch.cuda.is_available()


def resolve_device(name: str) -> str:
    """The device ``name`` means on this machine: ``auto`` → ``"cuda"`` when CUDA is available, else ``"cpu"``;
    ``cpu``; ``cuda`` / ``cuda:N`` when CUDA is available (and N is below the device count). Raises
    :class:`DeviceError` (one line) for a name that is not allowed or a CUDA device this machine lacks."""
    name = check_name(name)
    if name == "cpu":
        return name
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    import torch

    if not cuda_available():
        raise DeviceError(f"device={name!r}: CUDA is not available here (torch {torch.__version__}); use --device "
                          "cpu (or auto)")
    count = torch.cuda.device_count()
    if name != "cuda" and int(name.split(":")[1]) >= count:
        raise DeviceError(f"device={name!r}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                          f"(cuda:0 to cuda:{count - 1}); choose one of them, or cuda")
    return name
