"""Alignment and uniformity on the hypersphere (the SFRIK paper's ``AUH`` baseline).

Wang & Isola, *Understanding contrastive representation learning through alignment and uniformity on the
hypersphere*, ICML 2020 (arXiv:2005.10242); re-implemented as ``AUH`` in the SFRIK official code
(``valeoai/sfrik``, ``src/sfrik/ssl.py``), whose form and defaults this module follows. Zheng et al. 2022 show it
is the Gaussian-kernel member of the rotation-invariant-kernel family of :mod:`.sfrik`.

Formula
-------
With E_v = sphere(Z_v) (N rows, D features) and ⟨E_i, E_j⟩ = 1 − ‖E_i − E_j‖²/2:

    inv        = F.mse_loss(E_a, E_b)                                       (mean over N·D entries)
    unif(E)    = log mean_{i≠j} exp(−2t·(1 − ⟨E_i, E_j⟩))  = log mean_{i≠j} exp(−t·‖E_i − E_j‖²)
    uniformity = ½ (unif(E_a) + unif(E_b))
    loss       = sim_coeff · inv + unif_coeff · uniformity

The mean runs over the N(N − 1) ordered pairs i ≠ j of the (global) batch and is computed with a
log-sum-exp, so large ``t`` cannot underflow to log 0. Note that ``inv`` is F.mse_loss, i.e. Wang & Isola's
alignment ‖E_a − E_b‖² (α = 2) divided by D, as in the official AUH code.

Shapes: every view (N, D), V ≥ 2. Cost O(N²·D) time, O(N²) memory.

Defaults: ``sim_coeff=3000, unif_coeff=1, t=2.5`` (the SFRIK repository's AUH settings; Wang & Isola use t = 2).

Distributed: each rank forms its local rows × all gathered rows block of the Gram matrix, takes its
log-sum-exp over the off-diagonal entries, and the ranks' partial log-sum-exps are combined by a
log-sum-exp over their gathered values (``gather_rows``), so the uniformity is the global-batch value on every
rank; the invariance is local (as the official code). Both satisfy the contract of ``_common``.

Multiple views
--------------
``"pairs"`` (default): the two-view loss averaged over the V·(V−1)/2 pairs. ``"mean"``: inv = mean_v
F.mse_loss(E_v, sphere(mean_v E_v)) (each view against the re-normalised consensus; see :mod:`.sfrik` for why
it is re-normalised and how its scale compares) and uniformity = mean_v unif(E_v).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import Regularizer, RegularizerOutput, check_nonnegative, check_positive, gather_rows, rank, sphere
from .sfrik import mean_view_invariance

__all__ = ["Uniformity", "log_uniformity"]


def log_uniformity(e: Tensor, t: float) -> Tensor:
    """log mean_{i≠j} exp(−2t(1 − ⟨e_i, e_j⟩)) over the global batch (rows of ``e`` on the sphere)."""
    n_local = e.shape[0]
    keys = gather_rows(e)
    n = keys.shape[0]
    logits = (-2.0 * t) * (1.0 - e @ keys.T)  # (N_local, N)
    offset = rank() * n_local
    rows = torch.arange(n_local, device=e.device)
    self_pair = torch.zeros_like(logits, dtype=torch.bool)
    self_pair[rows, rows + offset] = True
    local = torch.logsumexp(logits.masked_fill(self_pair, float("-inf")).flatten(), dim=0)
    return torch.logsumexp(gather_rows(local.reshape(1)), dim=0) - math.log(n * (n - 1))


class Uniformity(Regularizer):
    """Alignment + uniformity loss (see the module docstring); terms ``invariance`` and ``uniformity``.

    Args:
        sim_coeff: weight of the invariance (mean squared error between the spherical embeddings).
        unif_coeff: weight of the uniformity term.
        t: the Gaussian kernel's scale (exp(−t·‖E_i − E_j‖²)), > 0.
        multiview: ``"pairs"`` or ``"mean"``.
        check_finite: raise ``ValueError`` on NaN/Inf inputs.
    """

    def __init__(
        self,
        *,
        sim_coeff: float = 3000.0,
        unif_coeff: float = 1.0,
        t: float = 2.5,
        multiview: str = "pairs",
        check_finite: bool = False,
    ):
        super().__init__(multiview=multiview, check_finite=check_finite)
        self.sim_coeff = float(check_nonnegative("sim_coeff", sim_coeff))
        self.unif_coeff = float(check_nonnegative("unif_coeff", unif_coeff))
        self.t = float(check_positive("t", t))

    def _combine(self, inv: Tensor, unif: Tensor) -> RegularizerOutput:
        loss = self.sim_coeff * inv + self.unif_coeff * unif
        return RegularizerOutput(loss, {"invariance": inv, "uniformity": unif})

    def pair(self, za: Tensor, zb: Tensor) -> RegularizerOutput:
        ea, eb = sphere(za), sphere(zb)
        unif = (log_uniformity(ea, self.t) + log_uniformity(eb, self.t)) / 2
        return self._combine(F.mse_loss(ea, eb), unif)

    def mean_views(self, zs: list[Tensor]) -> RegularizerOutput:
        es = [sphere(z) for z in zs]
        return self._combine(mean_view_invariance(es), sum(log_uniformity(e, self.t) for e in es) / len(es))
