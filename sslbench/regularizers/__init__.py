"""Every regularizer sslbench implements, behind one registry.

>>> from sslbench import regularizers
>>> regularizers.available()                                  # doctest: +ELLIPSIS
['barlow_twins', ...]
>>> reg = regularizers.create("barlow_twins", lambd=1 / 128)
>>> out = reg(z1, z2)                                          # doctest: +SKIP
>>> out.loss, out.terms["off_diagonal"]                        # doctest: +SKIP

A new regularizer is one new module plus one line in ``_REGISTRY``.

Every regularizer but ``vicreg``/``vicreg_fft`` also accepts VICReg's variance term as an add-on
(``variance_coeff``, ``variance_eps``; :mod:`sslbench.regularizers.variance`):

>>> reg = regularizers.create("byol", variance_coeff=1.0)      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect

from ._common import Regularizer, RegularizerOutput, check_nonnegative, check_positive
from .variance import ADD_ON_DEFAULTS, EXCLUDED, VarianceAddOn

__all__ = ["available", "create", "get_class", "Regularizer", "RegularizerOutput"]

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


def available() -> list[str]:
    """The registered regularizer names."""
    return list(_REGISTRY)


def get_class(name: str) -> type[Regularizer]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown regularizer {name!r}; available: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def _own_hparams(name: str) -> dict:
    sig = inspect.signature(get_class(name).__init__)
    return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY or
            (p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self")}


def _add_on_defaults(name: str) -> dict:
    return {} if name in EXCLUDED else dict(ADD_ON_DEFAULTS)


def hparam_names(name: str) -> list[str]:
    """The keyword arguments ``create(name, ...)`` accepts (the class's own, then the variance add-on's)."""
    return list(_own_hparams(name)) + list(_add_on_defaults(name))


def hparam_defaults(name: str) -> dict:
    """The default value of every hyper-parameter of ``name``."""
    return {**_own_hparams(name), **_add_on_defaults(name)}


def create(name: str, **hparams) -> Regularizer:
    """Build the regularizer ``name`` with the spec's hyper-parameter names (the sslbench regularizer spec,
    regularizers.md).

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
    add_on = {k: hparams.pop(k) for k in list(hparams) if k in ADD_ON_DEFAULTS}
    coeff = check_nonnegative("variance_coeff", add_on.get("variance_coeff", ADD_ON_DEFAULTS["variance_coeff"]))
    eps = check_positive("variance_eps", add_on.get("variance_eps", ADD_ON_DEFAULTS["variance_eps"]))
    module = cls(**hparams)
    full = _own_hparams(name)
    full.update(hparams)
    if coeff > 0:
        module._hparams = dict(full)
        module = VarianceAddOn(module, coeff=coeff, eps=eps)
        full.update({**ADD_ON_DEFAULTS, **add_on})
    module._hparams = full
    return module
