"""The grid of ``sweep --status`` / ``--cancel`` without torch: a cache of what building the grid computed.

Building a sweep's grid checks it with torch (the regularizers' hyper-parameters on the meta device, the memory of
the devices, each training case's configuration and run id, :func:`sslbench.training.train.planned_run_id`), about
5 s of imports. ``--status`` runs the same command line again and again, so the grid (the cases as built, before
duplicates are dropped, each training case's run id, and the store) is kept in the snapshot folder
(:func:`sslbench.records.columnar.cache_dir`; ``SSLBENCH_CACHE_DIR=off`` for none) under a key that holds
everything it was computed from: the settings, ``--config``'s path, ``--yes``, the size and modification time of
every source file of sslbench, the plugins' entry points, ``sys.path``, torch's installed version, the host, its
memory, the GPUs visible and the ``SSLBENCH_*`` environment variables (the data folder's among them). A later ``--status`` with the same key reads the grid from there and imports no torch.
Grids that depend on something the key cannot see are never cached: a ``package.module:Class`` regularizer (it may
live in the working folder), a training grid with the default data set (found on disk), a CUDA device.

The file is read as hostile: a link or a non-regular file is ignored, and the grid must have the shape the
builder gives (lists of dicts, one run id per case), else it is ignored with one warning and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import warnings
from pathlib import Path

from sslbench.records.files import NotRegularFile, open_regular

__all__ = ["cacheable", "key_of", "load", "save"]

_VERSION = 1
_MAX_BYTES = 64 * 2**20
_PACKAGE = Path(__file__).resolve().parent.parent


def cacheable(s: dict) -> bool:
    """Whether the grid of settings ``s`` depends only on what :func:`key_of` sees."""
    names = s.get("regularizers") or []
    if any(":" in str(n) for n in names):
        return False
    if s["kind"] == "train" and not s.get("datasets"):
        return False
    return not any(str(d).startswith("cuda") for d in s.get("device") or [])


def _sources() -> list:
    """(path, size, mtime) of every Python file of the sslbench package: a change to any rebuilds the grid."""
    out = []
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                p = os.path.join(root, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                out.append([os.path.relpath(p, _PACKAGE), st.st_size, st.st_mtime_ns])
    return out


def _torch_version() -> str | None:
    import importlib.metadata as md

    try:
        return md.version("torch")
    except md.PackageNotFoundError:
        return None


def _entry_points() -> list:
    import importlib.metadata as md

    return sorted([ep.name, ep.value] for ep in md.entry_points(group="sslbench.regularizers"))


def key_of(command: str, s: dict, config: str | None, yes: bool) -> str:
    """The text every cached grid of these settings is filed under and checked against."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    material = {"version": _VERSION, "command": command, "settings": s,
                "config": os.path.realpath(config) if config else None, "yes": bool(yes), "cwd": os.getcwd(),
                "sources": _sources(), "entry_points": _entry_points(), "sys_path": sys.path,
                "torch": _torch_version(), "host": socket.gethostname(), "memory": memory,
                "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "nvidia": os.path.exists("/dev/nvidiactl"),
                "sslbench_env": sorted((k, v) for k, v in os.environ.items() if k.startswith("SSLBENCH_"))}
    return json.dumps(material, sort_keys=True, default=repr)


def _path(key: str) -> Path | None:
    from sslbench.records import columnar

    folder = columnar.cache_dir()
    if folder is None or not columnar._own_folder(folder):
        return None
    return folder / f"grid-{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.json"


def load(key: str) -> tuple[list[dict], list[str] | None, str] | None:
    """(cases, run ids, store) cached under ``key``, or None (none yet, another key, or not valid: a warning)."""
    path = _path(key)
    if path is None:
        return None
    try:
        f = open_regular(path, _MAX_BYTES)
    except NotRegularFile:
        return _invalid(path, "is not a regular file of a plausible size")
    except OSError as exc:
        return _invalid(path, f"cannot be opened ({exc.strerror or exc})")
    if f is None:
        return None
    try:
        with f:
            data = json.loads(f.read())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return _invalid(path, f"cannot be read ({type(exc).__name__}: {exc})")
    if not isinstance(data, dict) or data.get("key") != key:
        return None if isinstance(data, dict) and isinstance(data.get("key"), str) else _invalid(path, "has no key")
    cases, run_ids, out = data.get("cases"), data.get("run_ids"), data.get("out")
    if not (isinstance(cases, list) and all(isinstance(c, dict) for c in cases) and isinstance(out, str)
            and (run_ids is None or (isinstance(run_ids, list) and all(isinstance(r, str) for r in run_ids)))):
        return _invalid(path, "does not hold a grid")
    return cases, run_ids, out


def save(key: str, cases: list[dict], run_ids: list[str] | None, out: str) -> None:
    """Keep the grid under ``key``; a folder that cannot be written leaves none (the next --status builds it)."""
    from sslbench.records.files import write_atomically

    path = _path(key)
    if path is None:
        return
    try:
        text = json.dumps({"key": key, "cases": cases, "run_ids": run_ids, "out": out}, allow_nan=False)
    except (TypeError, ValueError):
        return
    if json.loads(text)["cases"] != cases:  # a value JSON would change (a tuple): rebuilt each time instead
        return
    try:
        write_atomically(path, lambda f: f.write(text.encode("utf-8")))
    except OSError:
        pass


def _invalid(path: Path, problem: str) -> None:
    warnings.warn(f"{path}: the cached grid of the sweep {problem}; ignored and rebuilt", RuntimeWarning,
                  stacklevel=3)
    return None
