"""Every regularizer sslbench implements, behind one registry.

>>> from sslbench import regularizers
>>> regularizers.available()                                  # doctest: +ELLIPSIS
['barlow_twins', ...]
>>> reg = regularizers.create("barlow_twins", lambd=1 / 128)
>>> out = reg(z1, z2)                                          # doctest: +SKIP
>>> out.loss, out.terms["off_diagonal"]                        # doctest: +SKIP

A new regularizer is one new module plus one line in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib
import inspect

from ._common import Regularizer, RegularizerOutput

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


def hparam_names(name: str) -> list[str]:
    """The keyword arguments ``create(name, ...)`` accepts."""
    sig = inspect.signature(get_class(name).__init__)
    return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY or
            (p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self")]


def hparam_defaults(name: str) -> dict:
    """The default value of every hyper-parameter of ``name``."""
    sig = inspect.signature(get_class(name).__init__)
    return {p.name: p.default for p in sig.parameters.values() if p.name in hparam_names(name)}


def create(name: str, **hparams) -> Regularizer:
    """Build the regularizer ``name`` with the spec's hyper-parameter names (``../shared/regularizers.md``).

    Unknown names raise ``ValueError`` listing the accepted ones; out-of-range values raise ``ValueError``
    naming the parameter and what it allows.
    """
    cls = get_class(name)
    accepted = hparam_names(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise ValueError(
            f"{name} got unknown hyper-parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )
    module = cls(**hparams)
    full = hparam_defaults(name)
    full.update(hparams)
    module._hparams = full
    return module
