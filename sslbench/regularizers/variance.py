"""VICReg's variance term as an add-on to any other regularizer.

Bardes, Ponce, LeCun, *VICReg*, ICLR 2022, arXiv:2105.04906, section 4.5: the variance term added to other
methods (BYOL, SimSiam) "stabilises" them and prevents their collapse when their own mechanism (predictor,
stop-gradient) is weakened. docs/regularizers.md §7 asks for it as an add-on to every
regularizer.

Formula
-------
For each view X (N × D, N the global batch) of the embeddings the wrapped regularizer receives:

    std_k(X) = sqrt(var_unbiased_k(X) + eps)
    v(X)     = mean_k relu(1 − std_k(X))                          (VICReg's hinge, target std γ = 1)
    term ``variance_addon`` = mean over the V views of v(X_v)
    loss = base loss + variance_coeff · variance_addon

exactly the ``variance`` term of :mod:`sslbench.regularizers.vicreg` (same eps default, 1e-4), applied to

* the views of a symmetric regularizer (``reg(z1, z2, ...)`` or ``reg(Z)``);
* the **online** branch of an asymmetric one (``reg(online, target)``): the predictor outputs p for ``byol``, the
  projections z for ``directpred`` and ``isoloss``. The target is detached in those losses, so a hinge on it
  would have no gradient. For ``byol`` a per-feature std of p ≥ 1 rules out a constant z as well (p = q(z)).

Use: ``regularizers.create("byol", variance_coeff=1.0)`` (any registered name but ``vicreg``/``vicreg_fft``,
which have the term already as ``std_coeff``). ``variance_coeff=0`` (the default) returns the plain regularizer,
not a wrapper. The wrapper forwards attribute access to the wrapped module (``reg.symmetric``,
``reg.predictor()``, ...); its buffers live under ``base.`` in ``state_dict``.

Distributed: the means and variances are over the global batch (``_common.center`` and ``all_reduce_sum``),
so the ``_common`` contract holds (the hinge is the same number on every rank; each rank's gradient w.r.t. its
rows is ``world_size`` × the single-process one, as DDP's averaging needs).

Cost: O(V·N·D) time, O(D) extra memory, one all-reduce per view under ``torch.distributed``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    Regularizer,
    RegularizerOutput,
    all_reduce_sum,
    as_views,
    center,
    check_positive,
    full_precision,
    global_batch_size,
)

__all__ = ["VarianceAddOn", "variance_hinge", "ADD_ON_DEFAULTS", "EXCLUDED"]

#: the add-on's hyper-parameters, accepted by ``create`` for every regularizer but :data:`EXCLUDED`
ADD_ON_DEFAULTS = {"variance_coeff": 0.0, "variance_eps": 1e-4}
#: regularizers that already have the term (``std_coeff``)
EXCLUDED = ("vicreg", "vicreg_fft")


def variance_hinge(z: Tensor, eps: float = 1e-4) -> Tensor:
    """mean_k relu(1 − sqrt(var_unbiased_k(z) + eps)) over the global batch; z (N_local, D) → 0-dim."""
    n = global_batch_size(z.shape[0])
    var = all_reduce_sum(center(z).square().sum(dim=0)) / (n - 1)
    return F.relu(1.0 - (var + eps).sqrt()).mean()


class VarianceAddOn(torch.nn.Module):
    """``base`` plus ``coeff`` × VICReg's variance hinge on its (online) views; see the module docstring.

    Args:
        base: the regularizer to stabilise (a :class:`~sslbench.regularizers.Regularizer`).
        coeff: weight of the hinge (> 0; use the plain regularizer for 0).
        eps: added to the variance under the square root (> 0).
    """

    def __init__(self, base: Regularizer, *, coeff: float, eps: float = 1e-4):
        super().__init__()
        if not isinstance(base, Regularizer):
            raise TypeError(f"base must be a sslbench Regularizer, got {type(base).__name__}")
        self.base = base
        self.coeff = float(check_positive("variance_coeff", coeff))
        self.eps = float(check_positive("variance_eps", eps))

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if "base" not in modules:
                raise
            return getattr(modules["base"], name)

    def forward(self, *args, **kwargs) -> RegularizerOutput:
        out = self.base(*args, **kwargs)
        if self.base.symmetric:
            views = args[0] if len(args) == 1 else args
        else:
            views = args[0] if args else kwargs["online"]
        zs = as_views(views, what="online" if not self.base.symmetric else "views")
        with full_precision(zs[0]):
            term = torch.stack([variance_hinge(z, self.eps) for z in zs]).mean()
        terms = dict(out.terms)
        terms["variance_addon"] = term
        return RegularizerOutput(out.loss + self.coeff * term.to(out.loss.dtype), terms)

    def hparams(self) -> dict:
        return dict(getattr(self, "_hparams", {}))

    def extra_repr(self) -> str:
        return f"coeff={self.coeff!r}, eps={self.eps!r}"
