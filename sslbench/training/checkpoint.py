"""Checkpoints of ``sslbench train``: written atomically, read back without running code.

A checkpoint holds tensors and plain data only (dicts, lists, tuples, strings, numbers, None): the model, the EMA
target, the regularizer's buffers, the optimiser, the RNG states (as tensors and plain tuples), the case and the
configuration as plain values. It is therefore read with ``torch.load(weights_only=True)``, which refuses any
other object: a crafted file passed to ``--resume`` cannot run its payload. A file that is not a checkpoint
(empty, truncated, garbage, another kind of torch file, objects other than plain data) raises
:class:`CheckpointError`, one line naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
from pathlib import Path

import torch

from sslbench.records.files import is_regular, write_atomically
from sslbench.training.config import TrainInputError

__all__ = ["FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "check_progress", "rng_state", "set_rng_state"]

#: 2: read with weights_only=True (RNG states and the config as plain data); 1 (before) held numpy arrays
FORMAT = 2
#: what a checkpoint of :func:`sslbench.training.train.train` must hold
REQUIRED_KEYS = ("format", "step", "case", "model", "target", "regularizer", "optimizer", "rng", "init_state",
                 "train_time_s", "images_seen", "last_terms")


class CheckpointError(TrainInputError):
    """A file given to ``--resume`` (or found in ``--checkpoint-dir``) that is not a usable checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then an atomic rename (a crash leaves either
    the old checkpoint or the new one, never half a file). The temporary file is created with ``O_EXCL`` under an
    unpredictable name and a link planted at ``path`` is replaced, never written through
    (:func:`sslbench.records.files.write_atomically`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` (no code runs); :class:`CheckpointError`
    when the file is not a checkpoint of this format."""
    path = Path(path)
    problem = _unreadable(path)
    if problem is None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - whatever the file holds, the answer is one line
            problem = _load_problem(exc)
        else:
            problem = _content_problem(state)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path}: {problem}; resume from a checkpoint written by sslbench train, "
                              "or start afresh without --resume")
    return state


def _unreadable(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "this is a folder, not a file"
    if not is_regular(path):  # a FIFO would block torch.load, waiting for a writer
        return "not a regular file (a FIFO, a device or a socket)"
    if path.stat().st_size == 0:
        return "the file is empty"
    return None


def _load_problem(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return (f"it holds an object other than tensors and plain data ({found.group(1)}), refused because loading "
                "it could run code (a crafted file, another program's file, or an older sslbench's checkpoint)")
    detail = re.search(r"Unsupported operand \S+", text)
    first = detail.group(0) if detail else (text.strip().splitlines() or [""])[0][:160]
    return f"not a readable checkpoint, truncated or not a torch file ({type(exc).__name__}: {first})"


def _content_problem(state) -> str | None:
    if not isinstance(state, dict):
        return f"not an sslbench checkpoint (it holds a {type(state).__name__}, not a dict)"
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        return f"not an sslbench checkpoint (it lacks {', '.join(missing)})"
    if state["format"] != FORMAT:
        return f"checkpoint format {state['format']!r}, this sslbench reads format {FORMAT}"
    return None


def check_progress(path: str | os.PathLike, state: dict, total_steps: int) -> None:
    """The run's progress a checkpoint claims, checked before it is trusted: ``step`` an integer in
    ``[0, total_steps]``, ``train_time_s`` a finite number >= 0, ``images_seen`` an integer >= 0, ``last_terms`` a
    dict of names to numbers and ``init_state`` a dict of tensors. A crafted file could otherwise give an ``ok``
    record of 10**12 steps for a 4-step run, or a traceback. Raises :class:`CheckpointError` (one line)."""
    problem = _progress_problem(state, total_steps)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path}: {problem}; resume from a checkpoint written by sslbench train for "
                              "this run, or start afresh without --resume")


def _progress_problem(state: dict, total_steps: int) -> str | None:
    def integer(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    def number(x) -> bool:
        return (integer(x) or isinstance(x, float)) and math.isfinite(x)

    step, seconds, images, terms = (state.get(k) for k in ("step", "train_time_s", "images_seen", "last_terms"))
    if not integer(step) or not 0 <= step <= total_steps:
        return f"its step {_short(step)} is not an integer from 0 to the run's {total_steps} steps"
    if not number(seconds) or seconds < 0:
        return f"its train_time_s {_short(seconds)} is not a finite number of seconds >= 0"
    if not integer(images) or images < 0:
        return f"its images_seen {_short(images)} is not an integer >= 0"
    if not isinstance(terms, dict) or not all(isinstance(k, str) and number(v) for k, v in terms.items()):
        return f"its last_terms {_short(terms)} is not a table of loss-term names to numbers"
    init = state.get("init_state")
    if not isinstance(init, dict) or not all(isinstance(v, torch.Tensor) for v in init.values()):
        return "its init_state is not a table of tensors"
    return None


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


# ==============================================================================================================
# RNG states as tensors and plain data
# ==============================================================================================================
def rng_state() -> dict:
    """The global RNG states (torch, CUDA, Python, numpy) as tensors and plain tuples."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    with contextlib.suppress(ImportError):
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                          float(cached))
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        with contextlib.suppress(ImportError):
            import numpy as np

            kind, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def _as_tuples(x):
    """``random.setstate`` wants tuples; a round trip through other tools may give lists."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
