"""Barlow Twins: make the cross-correlation of two views' standardised embeddings the identity.

Zbontar, Jing, Misra, LeCun, Deny, *Barlow Twins: Self-Supervised Learning via Redundancy Reduction*,
ICML 2021, arXiv:2103.03230. Official code: ``facebookresearch/barlowtwins`` (``main.py``, ``BarlowTwins``).

Formula
-------
Views Z_a, Z_b of shape (N, D) (N the global batch). With A = bn(Z_a), B = bn(Z_b), where bn is
``BatchNorm1d(D, affine=False)`` in training mode ((Z − mean_i Z) / sqrt(var_biased(Z) + eps), global batch
statistics under ``torch.distributed``, as the official SyncBatchNorm):

    C    = AᵀB / N                                  (D × D cross-correlation)
    on   = Σ_k (1 − C_kk)²                          term ``on_diagonal``
    off  = Σ_{k≠l} C_kl²                            term ``off_diagonal`` (unweighted)
    loss = scale · (on + lambd · off)

Defaults ``lambd=0.0051, scale=1.0, eps=1e-5`` (the paper's; the authors' rule of thumb is lambd ≈ 1/D).

Algorithms (same values up to rounding; ``sslbench.regularizers._gram``)
-----------------------------------------------------------------------
off = ‖C‖_F² − Σ_k C_kk²: no D×D off-diagonal copy is ever made. ‖C‖_F² = ‖AᵀB‖_F² / N² and the diagonal
C_kk come from one kernel (``correlation_stats``):

* ``"cross_correlation"`` (primal): AᵀB and its diagonal, O(N·D²) time and O(D²) memory;
* ``"gram"`` (exact dual): ‖AᵀB‖_F² = Σ_ij (AAᵀ)_ij (BBᵀ)_ij with the N×N Gram matrices and
  C_kk = mean_i A_ik B_ik from the rows, O(N²·D) time and O(N² + N·D) memory;
* ``"auto"`` (default): the cheaper of the two for the global N, D and number of views
  (:func:`sslbench.regularizers._gram.choose_algorithm`): for two views ``"gram"`` iff D > (4/3)·f·N, with
  f = ``GRAM_COST_FACTOR`` measured on CPU (the crossover sits near D ≈ 1.3·N, e.g. D ≈ 340 at N = 256);
  for ``multiview="mean"`` iff D > f·N; for V views in ``multiview="pairs"`` iff D > 4·f·N / (3·(V − 1))
  (the pairs share the V Gram matrices). ``BarlowTwins.algorithm_for(n, d, views)`` says which one runs.

Both kernels have hand-written backward passes (one matmul per operand), twice differentiable.
Speed and peak memory against the official formulation (``benchmarks/official.py``) are measured, not quoted
here: see docs/regularizers.md, "Side by side with the official formulations", and ``results/side_by_side/``,
produced by ``python benchmarks/side_by_side.py`` (``make bench``) on the CPU and the GPU.

Shapes and dtypes
-----------------
``BarlowTwins()(z1, z2, ...)`` or ``(Z)`` with Z of shape (V, N, D), V ≥ 2. The loss and terms are 0-dim
tensors in float32 (float16, bfloat16 and float32 inputs, also under ``torch.autocast``) or float64
(float64 inputs); gradients reach the inputs in their own dtype.

Extreme scales and constant features (the default, no option needed)
--------------------------------------------------------------------
bn centres each feature exactly, then divides any centred feature larger than 2**50 by a power of two before it is
squared (``batch_standardize``). Standardisation makes the loss scale-invariant, and so is the computed one:
float32 embeddings of any magnitude up to about 1e36 give the float64 loss rounded to float32 (unguarded, the
variance of 1e20-scale float32 embeddings overflows, every feature standardises to 0 and the loss is D; a constant
1e20 view gave NaN). A constant feature (zero variance) standardises to 0, as ``BatchNorm1d`` does: it adds 1 to
the on-diagonal term, nothing to the off-diagonal one, and gets a finite gradient; constant views give scale·D.
Centring and guard cost three column reductions and one fused pass per view (and one elementwise pass in the
backward) and no host synchronisation. ``check_finite=True`` additionally raises on NaN/Inf embeddings.

Distributed
-----------
bn uses global statistics (``batch_standardize``; in a single process the fused ``F.batch_norm``); the primal
kernel all-reduces the local partial AᵀB, the dual kernel all-gathers the rows and all-reduces its partial
sums. The mean over ranks of the losses equals the single-process loss on the concatenated batch and each
rank's gradient w.r.t. its rows is ``world_size`` × the single-process one (the contract of ``_common``), so
DDP's gradient averaging gives the single-process gradient.

Multiple views (Agrawal, Ghosh, Oberman, Richards; official ``kumarkrishna/fastssl``)
--------------------------------------------------------------------------------------
``multiview="pairs"`` (default): the two-view loss (and each term) averaged over the V·(V−1)/2 pairs; every
view is standardised once and, with ``"gram"``, every view's Gram matrix is formed once.
``multiview="mean"``: with A_v = bn(Z_v) and Z̄ = mean_v A_v,

    on   = mean_v Σ_k (1 − mean_i A_v,ik Z̄_ik)²
    off  = Σ_{k≠l} (Z̄ᵀZ̄ / N)_kl²
    loss = scale · (on + lambd · off)

Deliberate differences from fastssl's mean form: each view is standardised separately with the biased
variance and eps, exactly as bn above (fastssl standardises all views jointly with the unbiased std and no
eps); global statistics under ``torch.distributed``.

Deliberate differences from the official code: the off-diagonal term is ‖C‖_F² − Σ_k C_kk² (the official code
copies the D² − D off-diagonal entries), with the optional exact Gram form; the loss is
computed in float32 even for half-precision inputs; ``scale`` multiplies the whole loss (1.0 gives the paper's
loss; several re-implementations expose it as ``scale_loss``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    Regularizer,
    RegularizerOutput,
    all_reduce_sum,
    batch_standardize,
    check_choice,
    check_nonnegative,
    check_positive,
    global_batch_size,
)
from ._gram import ALGORITHMS, choose_algorithm, correlation_stats

__all__ = ["BarlowTwins", "standardize"]


def standardize(z: Tensor, eps: float) -> Tensor:
    """bn(z): ``BatchNorm1d(D, affine=False)`` in training mode, global statistics under ``torch.distributed``
    (``batch_standardize``: the fused ``F.batch_norm`` in a single process, all-reduced statistics as
    SyncBatchNorm under ``torch.distributed``; overflow-safe at any embedding scale)."""
    return batch_standardize(z, eps)


class BarlowTwins(Regularizer):
    """Barlow Twins loss (see the module docstring): ``BarlowTwins()(z1, z2).loss``; terms ``on_diagonal``
    and ``off_diagonal`` (before ``scale`` and ``lambd``).

    Args:
        lambd: weight of the off-diagonal term (≥ 0; ≈ 1/D works across D).
        scale: factor of the whole loss (> 0).
        eps: added to the variance in the batch standardisation (> 0).
        algorithm: ``"auto"``, ``"cross_correlation"`` (D×D primal) or ``"gram"`` (N×N dual); same values.
        multiview: ``"pairs"`` or ``"mean"`` (module docstring).
        check_finite: raise ``ValueError`` on NaN/Inf inputs.
    """

    lambd_one_over_dim = True  # the authors' 0.0051 was tuned for D = 8192
    asv_accuracy = True

    def __init__(
        self,
        *,
        lambd: float = 0.0051,
        scale: float = 1.0,
        eps: float = 1e-5,
        algorithm: str = "auto",
        multiview: str = "pairs",
        check_finite: bool = False,
    ):
        super().__init__(multiview=multiview, check_finite=check_finite)
        self.lambd = float(check_nonnegative("lambd", lambd))
        self.scale = float(check_positive("scale", scale))
        self.eps = float(check_positive("eps", eps))
        self.algorithm = check_choice("algorithm", algorithm, ALGORITHMS)

    # ----------------------------------------------------------------------------------------------------------
    def algorithm_for(self, n: int, d: int, views: int = 2) -> str:
        """The kernel used for global batch ``n``, ``d`` features and ``views`` views in this multiview mode."""
        if self.algorithm != "auto":
            return self.algorithm
        return choose_algorithm(n, d, self._kernel_pairs(views))

    def _kernel_pairs(self, views: int) -> list[tuple[int, int]]:
        if self.multiview == "mean":
            return [(0, 0)]
        return [(a, b) for a in range(views) for b in range(a + 1, views)]

    def _combine(self, on: Tensor, off: Tensor) -> RegularizerOutput:
        loss = self.scale * (on + self.lambd * off)
        return RegularizerOutput(loss, {"on_diagonal": on, "off_diagonal": off})

    # ----------------------------------------------------------------------------------------------------------
    def views_loss(self, zs: list[Tensor]) -> RegularizerOutput:
        return super().views_loss(zs) if self.multiview == "mean" else self._pairs(zs)

    def pair(self, za: Tensor, zb: Tensor) -> RegularizerOutput:
        return self._pairs([za, zb])

    def _pairs(self, zs: list[Tensor]) -> RegularizerOutput:
        """The two-view loss averaged over all pairs, sharing the standardisation and Gram matrices."""
        n, d = global_batch_size(zs[0].shape[0]), zs[0].shape[1]
        xs = [standardize(z, self.eps) for z in zs]
        pairs = self._kernel_pairs(len(zs))
        frob, diags = correlation_stats(xs, pairs, self.algorithm_for(n, d, len(zs)))
        frob, diags = frob / (n * n), diags / n  # ‖C_p‖_F² (P,) and the diagonals C_kk (P, D) of every pair
        on = (1 - diags).square().sum(dim=1)
        off = frob - diags.square().sum(dim=1)
        return self._combine(on.mean(), off.mean())

    def mean_views(self, zs: list[Tensor]) -> RegularizerOutput:
        n, d = global_batch_size(zs[0].shape[0]), zs[0].shape[1]
        xs = [standardize(z, self.eps) for z in zs]
        stacked = torch.stack(xs)  # (V, N_local, D)
        zbar = stacked.mean(dim=0)
        # (V, D): mean_i A_v,ik Z̄_ik, and (D,): the diagonal of Z̄ᵀZ̄ / N
        diags = all_reduce_sum((stacked * zbar).sum(dim=1)) / n
        on = (1 - diags).square().sum(dim=1).mean()
        frob, gram_diag = correlation_stats([zbar], [(0, 0)], self.algorithm_for(n, d, len(zs)))
        off = frob[0] / (n * n) - (gram_diag[0] / n).square().sum()
        return self._combine(on, off)
