"""Every regularizer sslbench implements, behind one registry.

>>> from sslbench import regularizers
>>> regularizers.available()                                  # doctest: +ELLIPSIS
['barlow_twins', ...]
>>> reg = regularizers.create("barlow_twins", lambd=1 / 128)
>>> out = reg(z1, z2)                                          # doctest: +SKIP
>>> out.loss, out.terms["off_diagonal"]                        # doctest: +SKIP

A new regularizer is one new module plus one line in ``_REGISTRY``. A regularizer of another package needs no line
here: an entry point of the group ``sslbench.regularizers`` or a ``package.module:Class`` spec
(:mod:`sslbench.regularizers._plugins`; docs/plugins.md):

>>> reg = regularizers.create("mypkg.losses:MyLoss", temperature=0.1)  # doctest: +SKIP

Every regularizer but ``vicreg``/``vicreg_fft`` also accepts VICReg's variance term as an add-on
(``variance_coeff``, ``variance_eps``; :mod:`sslbench.regularizers.variance`):

>>> reg = regularizers.create("byol", variance_coeff=1.0)      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib
import inspect

from . import _plugins
from ._common import Regularizer, RegularizerOutput, check_nonnegative, check_positive
from ._plugins import ENTRY_POINT_GROUP, RegularizerSpecError
from .variance import ADD_ON_DEFAULTS, EXCLUDED, VarianceAddOn

__all__ = ["available", "create", "get_class", "hparam_names", "hparam_defaults", "provenance", "plugins",
           "check_spec", "is_builtin", "where", "source_record", "Regularizer", "RegularizerOutput", "RegularizerSpecError",
           "ENTRY_POINT_GROUP"]

# name -> "module:Class" (imported lazily, so one broken module cannot hide the others)
_REGISTRY: dict[str, str] = {
    "barlow_twins": "barlow_twins:BarlowTwins",
    "vicreg": "vicreg:VICReg",
    "barlow_twins_fft": "barlow_twins_fft:BarlowTwinsFFT",
    "vicreg_fft": "vicreg_fft:VICRegFFT",
    "sfrik": "sfrik:SFRIK",
    "uniformity": "uniformity:Uniformity",
    "simclr": "simclr:SimCLR",
    "byol": "byol:BYOL",
    "directpred": "directpred:DirectPred",
    "isoloss": "isoloss:IsoLoss",
}


def available(plugins: bool = False) -> list[str]:
    """The built-in regularizer names; with ``plugins``, then the entry-point names found (read from metadata,
    nothing imported; one shadowed by a built-in is left out). Any ``package.module:Class`` spec is accepted too."""
    names = list(_REGISTRY)
    if plugins:
        names += [n for n in _plugins.entry_points() if n not in _REGISTRY]
    return names


def _unknown(spec) -> ValueError:
    eps = [n for n in _plugins.entry_points() if n not in _REGISTRY]
    more = f"; plugins: {', '.join(eps)}" if eps else ""
    return RegularizerSpecError(f"unknown regularizer {spec!r}; available: {', '.join(_REGISTRY)}{more} "
                                f"(or a plugin spec package.module:Class; `sslbench regularizers` lists them)")


def _locate(spec: str):
    """(kind, entry point or None) of a spec: "builtin", "entry_point" or "module"; unknown names raise."""
    if not isinstance(spec, str) or not spec:
        raise _unknown(spec)
    if spec in _REGISTRY:
        return "builtin", None
    if _plugins.is_module_spec(spec):
        return "module", None
    ep = _plugins.entry_points().get(spec)
    if ep is None:
        raise _unknown(spec)
    return "entry_point", ep


def get_class(name: str) -> type[Regularizer]:
    """The class of a spec: a built-in name, an entry-point name of the group ``sslbench.regularizers`` or
    ``package.module:Class`` (a plain ``torch.nn.Module`` comes wrapped in its adapter, a ``Regularizer``
    subclass). Unknown names and plugins that fail to import raise :class:`RegularizerSpecError` (a
    ``ValueError``, one line); a built-in whose module is broken raises its ``ImportError``."""
    kind, ep = _locate(name)
    if kind == "builtin":
        module, cls = _REGISTRY[name].split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return _plugins.load_class(name, ep)


def where(attribute: str) -> list[str]:
    """The built-in names whose class sets ``attribute`` true (``needs_predictor``, ``lambd_one_over_dim``,
    ``eigendecomposes``, ``asv_accuracy``, ... of :class:`Regularizer`), in registry order: the lists the rest of
    sslbench derives from the registry rather than writing out (a module that fails to import is left out)."""
    out = []
    for name in _REGISTRY:
        try:
            if getattr(get_class(name), attribute, False):
                out.append(name)
        except ImportError:
            continue
    return out


def is_builtin(name: str) -> bool:
    return name in _REGISTRY


def check_spec(spec: str) -> str:
    """``spec`` if it names an importable regularizer; else :class:`RegularizerSpecError` (one line)."""
    get_class(spec)
    return spec


@functools.lru_cache(maxsize=None)
def _source(spec: str) -> dict:
    kind, ep = _locate(spec)
    return _plugins.source_of(spec, get_class(spec), kind, ep, git=kind != "builtin")


def provenance(spec: str) -> dict:
    """Where a spec's class came from, for the records: ``{spec, label, kind, class, adapted, distribution,
    version, git_commit, git_dirty}`` (the git commit of the plugin's source tree when it sits in a git work
    tree, so that results from the commits of the user's repository can be compared; None for built-ins, whose
    commit is the record's ``env``)."""
    return dict(_source(spec))


def source_record(spec: str) -> dict:
    """:func:`provenance` for a record: never raises (a spec that does not load gives ``{spec, error}``)."""
    try:
        return provenance(spec)
    except Exception as exc:  # noqa: BLE001 - a record of a failing case is still written
        return {"spec": spec, "error": f"{type(exc).__name__}: {exc}"}


def plugins() -> list[dict]:
    """Every entry point of the group, loaded: ``{name, value, distribution, version, error}`` plus, when it
    loads, its :func:`provenance` (``error`` is the one line of a plugin that fails; the others still load)."""
    rows = []
    for name, ep in _plugins.entry_points().items():
        dist, version = _plugins._dist_of(ep)
        row = {"name": name, "value": ep.value, "distribution": dist, "version": version, "error": None,
               "shadowed": name in _REGISTRY}
        if not row["shadowed"]:
            try:
                row.update({k: v for k, v in provenance(name).items() if k not in row or row[k] is None})
            except (RegularizerSpecError, ImportError) as exc:
                row["error"] = str(exc)
        rows.append(row)
    return rows


def _own_hparams(name: str) -> dict:
    """The class's ``__init__`` keyword names and defaults (a required one, which has no default, is left out
    here and named by :func:`hparam_names`)."""
    sig = inspect.signature(get_class(name).__init__)
    return {p.name: p.default for p in _hparam_params(sig) if p.default is not p.empty}


def _hparam_params(sig: inspect.Signature) -> list[inspect.Parameter]:
    return [p for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY or
            (p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self")]


def _required(name: str) -> list[str]:
    return [p.name for p in _hparam_params(inspect.signature(get_class(name).__init__)) if p.default is p.empty]


def _add_on_defaults(name: str) -> dict:
    """VICReg's variance add-on for the built-ins (not for plugins: their names are their own)."""
    return {} if name in EXCLUDED or name not in _REGISTRY else dict(ADD_ON_DEFAULTS)


def hparam_names(name: str) -> list[str]:
    """The keyword arguments ``create(name, ...)`` accepts (the class's own, then the variance add-on's)."""
    sig = inspect.signature(get_class(name).__init__)
    return [p.name for p in _hparam_params(sig)] + list(_add_on_defaults(name))


def hparam_defaults(name: str) -> dict:
    """The default value of every hyper-parameter of ``name`` (a plugin's required ones have none: left out)."""
    return {**_own_hparams(name), **_add_on_defaults(name)}


def create(name: str, **hparams) -> Regularizer:
    """Build the regularizer ``name`` (any spec: a built-in, an entry-point name, ``package.module:Class``) with
    its hyper-parameter names (for the built-ins, the sslbench regularizer spec, regularizers.md; for a plugin, the
    names of its class's ``__init__``).

    Unknown names raise ``ValueError`` listing the accepted ones; out-of-range values raise ``ValueError``
    naming the parameter and what it allows.

    ``variance_coeff > 0`` wraps the module in :class:`~sslbench.regularizers.variance.VarianceAddOn`; its
    hyper-parameters then appear in ``hparams()`` (they are left out while the add-on is off, so records of the
    plain regularizer look the same as before the add-on existed).
    """
    cls = get_class(name)
    accepted = hparam_names(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        hint = ""
        if name in EXCLUDED and set(unknown) & set(ADD_ON_DEFAULTS):
            hint = f" ({name} has VICReg's variance term already: set std_coeff)"
        raise ValueError(
            f"{name} got unknown hyper-parameter(s) {', '.join(unknown)}{hint}; accepted: {', '.join(accepted)}"
        )
    add_on = {k: hparams.pop(k) for k in list(hparams) if k in ADD_ON_DEFAULTS} if name in _REGISTRY else {}
    coeff = check_nonnegative("variance_coeff", add_on.get("variance_coeff", ADD_ON_DEFAULTS["variance_coeff"]))
    eps = check_positive("variance_eps", add_on.get("variance_eps", ADD_ON_DEFAULTS["variance_eps"]))
    missing = [k for k in _required(name) if k not in hparams]
    if missing:
        raise ValueError(f"{name} needs hyper-parameter(s) {', '.join(missing)} (no default); pass them "
                         f"(--hparam {missing[0]}=...)")
    module = cls(**hparams)
    full = _own_hparams(name)
    full.update(hparams)
    if coeff > 0:
        module._hparams = dict(full)
        module = VarianceAddOn(module, coeff=coeff, eps=eps)
        full.update({**ADD_ON_DEFAULTS, **add_on})
    module._hparams = full
    return module
