"""VICReg: variance-invariance-covariance regularisation.

Bardes, Ponce, LeCun, *VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning*,
ICLR 2022, arXiv:2105.04906. Official code: ``facebookresearch/vicreg`` (``main_vicreg.py``, ``VICReg.forward``).

Formula
-------
Views Z_a, Z_b of shape (N, D) (N the global batch):

    inv    = mean over the N·D entries of (Z_a − Z_b)²                    (F.mse_loss)       term ``invariance``
    for each view X:  Xc = X − mean_i X,   std_k = sqrt(var_unbiased_k(X) + eps)
    var(X) = mean_k relu(1 − std_k)
    cov(X) = Σ_{k≠l} (Xcᵀ Xc / (N − 1))_kl² / D
    variance   = (var(Z_a) + var(Z_b)) / 2                                                    term ``variance``
    covariance = cov(Z_a) + cov(Z_b)                                                          term ``covariance``
    loss = sim_coeff · inv + std_coeff · variance + cov_coeff · covariance

Defaults ``sim_coeff=25, std_coeff=25, cov_coeff=1, eps=1e-4`` (the paper's).

Algorithms (same values up to rounding; ``sslbench.regularizers._gram``)
-----------------------------------------------------------------------
The diagonal of Xcᵀ Xc / (N − 1) is the unbiased variance needed for ``var``, so
cov(X) = (‖Xcᵀ Xc‖_F² / (N − 1)² − Σ_k var_k²) / D, with no D×D off-diagonal copy. ‖Xcᵀ Xc‖_F² and the
diagonal (the variances) of every view come from one kernel call (``correlation_stats``):

* ``"cross_correlation"`` (primal): Xcᵀ Xc, O(N·D²) time and O(D²) memory;
* ``"gram"`` (exact dual): ‖Xcᵀ Xc‖_F² = ‖Xc Xcᵀ‖_F² and Σ_i Xc_ik², O(N²·D) time and O(N² + N·D) memory;
* ``"auto"`` (default): the cheaper one for the global N and D (:func:`sslbench.regularizers._gram.choose_algorithm`):
  ``"gram"`` iff D > f·N with f = ``GRAM_COST_FACTOR`` measured on CPU (the crossover sits near D ≈ N).

Both kernels have hand-written backward passes (one matmul per view), twice differentiable.
Speed and peak memory against the official formulation (``benchmarks/official.py``) are measured, not quoted
here: see docs/regularizers.md, "Side by side with the official formulations", and ``results/side_by_side/``,
produced by ``python benchmarks/side_by_side.py`` (``make bench``) on the CPU and the GPU.

Shapes and dtypes
-----------------
``VICReg()(z1, z2, ...)`` or ``(Z)`` with Z of shape (V, N, D), V ≥ 2. The loss and terms are 0-dim tensors in
float32 (float16, bfloat16 and float32 inputs, also under ``torch.autocast``) or float64 (float64 inputs).

Extreme scales and constant views
---------------------------------
VICReg is not scale-invariant: its covariance grows as |z|⁴. Each centred view larger than 2**16 is divided by a
power of two before the products and the terms are rescaled afterwards, so the loss is the float64 one rounded to
float32 as long as it fits in float32 (unguarded, the products overflowed and gave NaN from about 1e9-scale
embeddings on, where the loss itself, about 1e35, still fits). Beyond that range the covariance, and the loss, is
+inf (never NaN); with ``check_finite=True`` a loss that is not finite for finite embeddings raises ``ValueError``
naming the embeddings' magnitude (pass float64 embeddings or keep the projector's output bounded). The invariance
(F.mse_loss) overflows like the official code's beyond |z_a − z_b| ≈ 1e19. A constant view (zero variance) gives
the full hinge 1 − sqrt(eps) per feature and no covariance, with finite gradients, as the official code. The guard
is fused into the centring: two extra reductions per view and no host synchronisation.

Distributed
-----------
As the official code: the invariance on the local batch (the mean over ranks is the global mean squared error,
local batches having equal sizes), the centring, variance and covariance over the global batch (the global
mean through ``all_reduce_sum``; the variances and ‖Xcᵀ Xc‖_F² from the kernel, whose primal form all-reduces
the local Xcᵀ Xc and dual form all-gathers the rows; the overflow guard's scale is the maximum over all ranks).
The contract of ``_common`` holds: the mean over ranks of the losses is the single-process loss on the
concatenated batch, each rank's gradient w.r.t. its rows ``world_size`` × the single-process one.

Multiple views
--------------
``multiview="pairs"`` (default): the two-view loss averaged over the V·(V−1)/2 pairs; each view's variance and
covariance is computed once: variance = mean_v var(Z_v), covariance = (2/V)·Σ_v cov(Z_v) (every view enters
V − 1 of the pairs).
``multiview="mean"`` (sslbench's analogue of fastssl's mean form for Barlow Twins): with Z̄ = mean_v Z_v,

    invariance = mean_v F.mse_loss(Z_v, Z̄)
    variance   = mean_v var(Z_v)
    covariance = 2 · mean_v cov(Z_v)

The variance and covariance are averaged over the views and keep the two-view scale (at V = 2 they are exactly
the two-view terms, and they equal the ``"pairs"`` terms for every V), so ``std_coeff`` and ``cov_coeff`` carry
over between the modes. The invariance pulls each view to the consensus (gradient through Z̄, no
stop-gradient); algebraically mean_v ‖Z_v − Z̄‖² = (1/V²)·Σ_{v<w} ‖Z_v − Z_w‖², so it is (V − 1)/(2V) times the
``"pairs"`` invariance (1/4 at V = 2): scale ``sim_coeff`` accordingly when comparing the modes. Under
``torch.distributed`` Z̄ and the invariance are local, as in the two-view loss.

Deliberate differences from the official code: the covariance through ‖Xcᵀ Xc‖_F² − Σ_k var_k² (the official
code copies the off-diagonal entries), the optional Gram form, float32 computation for half-precision inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    Regularizer,
    RegularizerOutput,
    center_guarded,
    check_choice,
    check_nonnegative,
    check_positive,
    global_batch_size,
)
from ._gram import ALGORITHMS, choose_algorithm, correlation_stats

__all__ = ["VICReg"]

#: centred embeddings above 2**OVERFLOW_EXPONENT are rescaled before the products: ‖Xcᵀ Xc‖_F² ≤ (N·D)²·2**64
#: then stays below float32's 3.4e38 for N·D up to 4e9
OVERFLOW_EXPONENT = 16


class VICReg(Regularizer):
    """VICReg loss (see the module docstring): ``VICReg()(z1, z2).loss``; terms ``invariance``, ``variance``
    and ``covariance`` (before the coefficients).

    Args:
        sim_coeff: weight of the invariance (≥ 0).
        std_coeff: weight of the variance hinge (≥ 0).
        cov_coeff: weight of the covariance penalty (≥ 0).
        eps: added to the variance under the square root (> 0).
        algorithm: ``"auto"``, ``"cross_correlation"`` (D×D primal) or ``"gram"`` (N×N dual); same values.
        multiview: ``"pairs"`` or ``"mean"`` (module docstring).
        check_finite: raise ``ValueError`` on NaN/Inf inputs.
    """

    default_lr = {"sgd": 0.03, "adamw": 1e-3}  # see Regularizer.default_lr
    asv_accuracy = True

    def __init__(
        self,
        *,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        eps: float = 1e-4,
        algorithm: str = "auto",
        multiview: str = "pairs",
        check_finite: bool = False,
    ):
        super().__init__(multiview=multiview, check_finite=check_finite)
        self.sim_coeff = float(check_nonnegative("sim_coeff", sim_coeff))
        self.std_coeff = float(check_nonnegative("std_coeff", std_coeff))
        self.cov_coeff = float(check_nonnegative("cov_coeff", cov_coeff))
        self.eps = float(check_positive("eps", eps))
        self.algorithm = check_choice("algorithm", algorithm, ALGORITHMS)

    # ----------------------------------------------------------------------------------------------------------
    def algorithm_for(self, n: int, d: int, views: int = 2) -> str:
        """The kernel used for global batch ``n``, ``d`` features and ``views`` views."""
        if self.algorithm != "auto":
            return self.algorithm
        return choose_algorithm(n, d, [(v, v) for v in range(views)])

    def _var_cov(self, zs: list[Tensor]) -> tuple[Tensor, Tensor]:
        """mean_v var(Z_v) and mean_v cov(Z_v) over the global batch, one kernel call for all views."""
        n, d = global_batch_size(zs[0].shape[0]), zs[0].shape[1]
        # overflow guard: a centred view larger than 2**16 is divided by a power of two s_v (exact; s_v = 1
        # otherwise), the terms rescaled by s_v² (variances) and s_v⁴ (covariance) at the end
        ys, s = zip(*[center_guarded(z, OVERFLOW_EXPONENT) for z in zs])
        s = torch.stack(s)  # (V,)
        frob, diags = correlation_stats(ys, [(v, v) for v in range(len(zs))], self.algorithm_for(n, d, len(zs)))
        var = diags / (n - 1)  # (V, D): unbiased variances of Xc_v / s_v, the diagonals of the covariances
        # (‖Xcᵀ Xc / (N − 1)‖_F² − Σ_k var_k²) / s_v⁴ per view
        covs = frob / ((n - 1) ** 2) - var.square().sum(dim=1)
        s = s.unsqueeze(1)
        hinges = F.relu(1 - s * (var + self.eps / s.square()).sqrt()).mean(dim=1)
        return hinges.mean(), (covs * s[:, 0].square().square()).mean() / d

    def _combine(self, inv: Tensor, variance: Tensor, covariance: Tensor) -> RegularizerOutput:
        loss = self.sim_coeff * inv + self.std_coeff * variance + self.cov_coeff * covariance
        return RegularizerOutput(loss, {"invariance": inv, "variance": variance, "covariance": covariance})

    # ----------------------------------------------------------------------------------------------------------
    def views_loss(self, zs: list[Tensor]) -> RegularizerOutput:
        return super().views_loss(zs) if self.multiview == "mean" else self._pairs(zs)

    def pair(self, za: Tensor, zb: Tensor) -> RegularizerOutput:
        return self._pairs([za, zb])

    def _pairs(self, zs: list[Tensor]) -> RegularizerOutput:
        pairs = [(a, b) for a in range(len(zs)) for b in range(a + 1, len(zs))]
        inv = F.mse_loss(zs[0], zs[1]) if len(zs) == 2 else torch.stack(
            [F.mse_loss(zs[a], zs[b]) for a, b in pairs]).mean()
        variance, mean_cov = self._var_cov(zs)
        return self._combine(inv, variance, 2 * mean_cov)

    def mean_views(self, zs: list[Tensor]) -> RegularizerOutput:
        stacked = torch.stack(zs)  # (V, N_local, D)
        inv = F.mse_loss(stacked, stacked.mean(dim=0).expand_as(stacked))  # mean_v of the per-view MSE
        variance, mean_cov = self._var_cov(zs)
        return self._combine(inv, variance, 2 * mean_cov)
