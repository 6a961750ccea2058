"""Regularizers from other packages: entry points, ``package.module:Class`` specs, plain ``torch.nn.Module`` losses,
their listing and their provenance.

A *spec* names a regularizer wherever a name is accepted (``regularizers.create``, ``sslbench train
--regularizer``, ``sslbench bench --regularizers``, sweep configs, the asv suite). It is one of:

* a built-in name (``barlow_twins``): ``_REGISTRY`` in :mod:`sslbench.regularizers`; built-ins win over an entry
  point of the same name;
* an entry-point name of the group ``sslbench.regularizers`` (the packaging convention of pytest's plugins)::

      [project.entry-points."sslbench.regularizers"]
      my_loss = "mypkg.losses:MyLoss"

* ``package.module:Class`` (``Outer.Inner`` attributes allowed). Like ``python -m``, the working directory is
  searched when the module is not importable otherwise, so a loss in the user's checkout needs no install.

A spec's *label* (series in tables and the dashboard) is the spec itself: the entry-point name (short, chosen by the
plugin's author) or the full ``package.module:Class`` (unambiguous: two packages may both call their loss ``Loss``).

The class is either a :class:`~._common.Regularizer` subclass, used as it is, or a plain ``torch.nn.Module`` whose
``forward(z1, z2, ...)`` returns a 0-dim loss or ``(loss, terms)``; the latter is wrapped in an adapter
(:func:`adapter_class`) that returns :class:`~._common.RegularizerOutput` and whose ``state_dict`` has the wrapped
module's own keys. Either way the hyper-parameters are the names of the class's ``__init__`` signature, validated
like a built-in's. A plugin that fails to import raises :class:`RegularizerSpecError`, one line naming it, its
source and the error; it never hides the built-ins or the other plugins.

Nothing here imports anything else of ``sslbench``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from ._common import Regularizer, RegularizerOutput

__all__ = ["ENTRY_POINT_GROUP", "RegularizerSpecError", "entry_points", "is_module_spec", "load_class",
           "adapter_class", "source_of", "git_state", "label"]

#: the class attributes of Regularizer that a plain module may declare too (the adapter copies them)
DECLARED = ("needs_predictor", "lambd_one_over_dim", "default_lr", "eigendecomposes", "asv_accuracy")
#: the entry-point group a package declares its regularizers in
ENTRY_POINT_GROUP = "sslbench.regularizers"


class RegularizerSpecError(ValueError):
    """A spec that names no regularizer, or names one that cannot be imported; the message is one line."""


def is_module_spec(spec: str) -> bool:
    """``package.module:Class`` rather than a registered name."""
    return isinstance(spec, str) and ":" in spec


def label(spec: str) -> str:
    """The name a spec is shown under: the spec itself (an entry-point name is short; ``module:Class`` is
    unambiguous)."""
    return str(spec)


# --------------------------------------------------------------------------------------------------------------
# Entry points (read without importing them)
# --------------------------------------------------------------------------------------------------------------
def entry_points() -> dict[str, md.EntryPoint]:
    """The entry points of the group ``sslbench.regularizers`` on today's ``sys.path``, by name (the first one
    found wins, as importlib.metadata orders distributions by ``sys.path``). Reads metadata only: nothing is
    imported. Scanning every distribution takes tens of milliseconds, so the answer is kept per ``sys.path``."""
    return dict(_entry_points(tuple(sys.path)))


@functools.lru_cache(maxsize=8)
def _entry_points(path: tuple) -> dict[str, md.EntryPoint]:
    found: dict[str, md.EntryPoint] = {}
    try:
        eps = md.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # noqa: BLE001 - a broken metadata folder must not hide the built-ins
        return found
    for ep in eps:
        found.setdefault(ep.name, ep)
    return found


def _dist_of(ep: md.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    try:
        return dist.metadata["Name"], dist.version
    except Exception:  # noqa: BLE001 - metadata without a name or version
        return None, None


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------
def _import(module: str):
    """``importlib.import_module``, then once more with the working directory on ``sys.path`` (as ``python -m``
    has it) when the top-level package was not found; the working directory then also goes on ``PYTHONPATH``
    for the child processes."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        top = module.split(".")[0]
        if exc.name != top or any(os.path.abspath(p or ".") == cwd for p in sys.path):
            raise
        sys.path.append(cwd)
        # the processes sslbench starts (a sweep's training runs, in folders of their own) find it too
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), cwd) if p)
        return importlib.import_module(module)


def _resolve(value: str):
    module, _, attr = value.partition(":")
    if not module or not attr:
        raise RegularizerSpecError(f"{value!r} is not a package.module:Class spec")
    obj = _import(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_class(spec: str, ep: md.EntryPoint | None = None) -> type[Regularizer]:
    """The regularizer class of a plugin spec (``module:Class``, or the entry point ``ep`` of that name): a
    :class:`Regularizer` subclass as it is, a plain ``torch.nn.Module`` wrapped by :func:`adapter_class`.

    Raises :class:`RegularizerSpecError` (one line naming the spec, its source and the error)."""
    def where() -> str:  # only on failure: reading a distribution's metadata takes milliseconds
        if ep is None:
            return spec
        dist, version = _dist_of(ep)
        return f"{spec} (entry point {ep.value}" + (f" of {dist} {version})" if dist else ")")

    value = spec if ep is None else ep.value
    try:
        obj = _resolve(value)
    except RegularizerSpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin's import is one line, never a traceback
        raise RegularizerSpecError(f"regularizer plugin {where()} failed to import: {_one_line(exc)}") from None
    if not (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)):
        raise RegularizerSpecError(f"regularizer plugin {where()}: {value} is a {type(obj).__name__}, not a "
                                   f"torch.nn.Module subclass (a Regularizer, or a module whose forward(z1, z2) "
                                   f"returns a 0-dim loss)")
    return obj if issubclass(obj, Regularizer) else adapter_class(obj)


# --------------------------------------------------------------------------------------------------------------
# Plain torch.nn.Module losses
# --------------------------------------------------------------------------------------------------------------
class ModuleRegularizer(Regularizer):
    """The adapter of a plain ``torch.nn.Module`` loss: ``forward(*views)`` calls the wrapped module's
    ``forward(z1, z2, ...)`` (a (V, N, D) tensor is split into its V views) and turns its 0-dim loss, or
    ``(loss, terms)``, into a :class:`RegularizerOutput`.

    The wrapped module is the attribute ``module``; ``state_dict`` and ``load_state_dict`` use its own keys (no
    ``module.`` prefix), so a checkpoint of the adapter is a checkpoint of the plain module. The inputs are passed
    as given (dtype, device): the module's own dtype policy applies.
    """

    #: the plain module class this adapter wraps (set on each generated subclass)
    wrapped: type[torch.nn.Module] = torch.nn.Module

    def __init__(self, **hparams):
        torch.nn.Module.__init__(self)
        self.multiview, self.check_finite = "pairs", False
        self.module = self.wrapped(**hparams)
        self._register_state_dict_hook(_strip_prefix)
        self.register_load_state_dict_pre_hook(_add_prefix)

    def forward(self, *views: torch.Tensor) -> RegularizerOutput:
        if len(views) == 1 and isinstance(views[0], torch.Tensor) and views[0].dim() == 3:
            views = tuple(views[0].unbind(0))
        elif len(views) == 1 and isinstance(views[0], (list, tuple)):
            views = tuple(views[0])
        return as_output(self.module(*views), self.wrapped.__name__)


def as_output(result: Any, who: str) -> RegularizerOutput:
    """A plain module's result (``loss`` or ``(loss, terms)``, or already a RegularizerOutput) as a
    :class:`RegularizerOutput`; anything else is a ``TypeError`` naming the module."""
    if isinstance(result, RegularizerOutput):
        return result
    terms: dict = {}
    if isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[1], dict):
        result, terms = result
    if not (isinstance(result, torch.Tensor) and result.dim() == 0):
        got = f"a tensor of shape {tuple(result.shape)}" if isinstance(result, torch.Tensor) else type(result).__name__
        raise TypeError(f"{who}.forward returned {got}; a regularizer returns a 0-dim loss tensor or "
                        f"(loss, {{name: 0-dim tensor}})")
    return RegularizerOutput(result, dict(terms))


def _strip_prefix(module, state_dict, prefix, local_metadata):
    inner = prefix + "module."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)
    return state_dict


def _add_prefix(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    inner = prefix + "module."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)


@functools.lru_cache(maxsize=None)
def adapter_class(cls: type[torch.nn.Module]) -> type[ModuleRegularizer]:
    """The :class:`ModuleRegularizer` subclass of ``cls`` (one per class): its ``__init__`` has ``cls``'s signature
    (the hyper-parameters); ``symmetric`` and the attributes :data:`DECLARED` are ``cls``'s when it sets them."""

    def __init__(self, *args, **hparams):
        if args:
            raise TypeError(f"{cls.__name__}: pass hyper-parameters by name")
        ModuleRegularizer.__init__(self, **hparams)

    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        sig = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    __init__.__signature__ = sig
    attrs = {"wrapped": cls, "__init__": __init__, "__module__": cls.__module__, "__qualname__": cls.__qualname__,
             "__doc__": cls.__doc__, "symmetric": bool(getattr(cls, "symmetric", True))}
    for name in DECLARED:
        if hasattr(cls, name):
            attrs[name] = getattr(cls, name)
    return type(cls.__name__, (ModuleRegularizer,), attrs)


# --------------------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def git_state(path: str) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree holding ``path`` (a folder), or (None, None) outside one. ``dirty``:
    tracked files under ``path`` differ from the commit."""
    try:
        top = subprocess.run(["git", "-C", path, "rev-parse", "--show-toplevel", "HEAD"], capture_output=True,
                             text=True, timeout=10, stdin=subprocess.DEVNULL)
        if top.returncode != 0:
            return None, None
        commit = top.stdout.split()[-1]
        status = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no", "--", "."],
                                capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        return commit, (bool(status.stdout.strip()) if status.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def _source_tree(module_name: str) -> str | None:
    """The folder of ``module_name``'s top-level package (or of the module itself)."""
    mod = sys.modules.get(module_name)
    top = sys.modules.get(module_name.split(".")[0]) or mod
    for m in (top, mod):
        f = getattr(m, "__file__", None)
        if f:
            p = Path(f).resolve().parent
            return str(p)
    return None


@functools.lru_cache(maxsize=8)
def _packages_distributions(path: tuple) -> dict:
    try:
        return md.packages_distributions()  # reads every distribution's file list: once per sys.path
    except Exception:  # noqa: BLE001 - broken metadata: no distribution named
        return {}


def _dist_of_module(module_name: str) -> tuple[str | None, str | None]:
    """The installed distribution providing ``module_name``'s top-level package (the distribution named like the
    package is tried first, which spares reading every distribution's file list)."""
    top = module_name.split(".")[0]
    try:
        dist = md.distribution(top)
        if top in (dist.read_text("top_level.txt") or top).split() or dist.metadata["Name"] == top:
            return dist.metadata["Name"], dist.version
    except Exception:  # noqa: BLE001 - not installed under that name, or metadata without a name
        pass
    names = _packages_distributions(tuple(sys.path)).get(top) or []
    for name in names:
        try:
            return name, md.version(name)
        except md.PackageNotFoundError:
            continue
    return None, None


def source_of(spec: str, cls: type, kind: str, ep: md.EntryPoint | None = None, *, git: bool = True) -> dict:
    """Where ``spec``'s class came from: ``{spec, label, kind ("builtin", "entry_point", "module"), class
    ("module:Class"), adapted (a plain nn.Module wrapped), distribution, version, git_commit, git_dirty}``.
    ``git_commit`` is the commit of the work tree holding the class's package when it is in one (the commits of
    the user's own repository, to compare results across them)."""
    wrapped = getattr(cls, "wrapped", None) if issubclass(cls, ModuleRegularizer) else None
    target = wrapped or cls
    out: dict[str, Any] = {"spec": spec, "label": label(spec), "kind": kind,
                           "class": f"{target.__module__}:{target.__qualname__}", "adapted": wrapped is not None}
    dist, version = _dist_of(ep) if ep is not None else (None, None)
    if dist is None:
        dist, version = _dist_of_module(target.__module__)
    out["distribution"], out["version"] = dist, version
    commit = dirty = None
    if git:
        tree = _source_tree(target.__module__)
        if tree:
            commit, dirty = git_state(tree)
    out["git_commit"], out["git_dirty"] = commit, dirty
    return out
