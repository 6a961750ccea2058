"""VICReg with the FFT-relaxed covariance penalty.

Shigeto, Shimbo, Yoshikawa, Takeuchi, *Learning Decorrelated Representations Efficiently Using Fast Fourier
Transform*, CVPR 2023, arXiv:2301.01569. Official code: ``yutaro-s/scalable-decorrelation-ssl``
(``src/main/losses/svicreg.py``, ``src/main/losses/util.py``).

Formula
-------
Two views Z_a, Z_b of shape (N, D).

    inv = mean over the N·D entries of (Z_a − Z_b)²                       (F.mse_loss)

For each view X: Xc = center(X) (global batch mean); std_k = sqrt(Σ_i Xc_ik² / (N − 1) + eps);

    var(X) = mean_k relu(1 − std_k)                                         (exactly VICReg)

The features of Xc are permuted by one random permutation π (``permute=True``, the same for both views), split
into G = ceil(D/b) blocks of width b = ``block_size`` (the last zero-padded to b, true width w_last) and for
every ordered block pair (g, h)

    r^{gh}_s = Σ_k (Xc^gᵀ Xc^h / (N − 1))_{k, (k+s) mod b} / w_{gh}

with w_{gh} = b, or w_last when g or h is the last block (the official normalisation). With q = ``power``:

    off(X) = mean_g Σ_{s≥1} |r^{gg}_s|^q + 2 · mean_{g<h} Σ_{s≥0} |r^{gh}_s|^q
    L      = sim_coeff · inv + std_coeff · (var(Z_a) + var(Z_b)) + cov_coeff · (off(Z_a) + off(Z_b))

Note: the official relaxed VICReg **sums** the two variance terms (VICReg averages them), and divides the
correlations by the block width *before* the power (so at G = 1, q = 2 the scale is 1/D², not VICReg's 1/D).
With ``block_size=1``: off(X) = 2/(D − 1) · VICReg's cov(X) (for q = 2).

Terms (before the coefficients): ``invariance`` = inv, ``variance`` = var(Z_a) + var(Z_b) (summed, no /2),
``covariance`` = off(Z_a) + off(Z_b).

Shapes and cost: views (N, D), V ≥ 2; O(N·D·log b + N·D·G) time, O(N·D + G·D) memory; no D×D matrix.
Returned dtype: float32 (float64 for float64 inputs); the FFTs run in float32 under ``torch.autocast``.

Multiple views
--------------
``multiview="pairs"`` (default): the two-view loss averaged over the V·(V−1)/2 pairs (one permutation per call).
``multiview="mean"`` (the VICReg analogue of the mean form of Agrawal et al.): with Z̄ = mean_v Z_v,

    invariance = mean_v F.mse_loss(Z_v, Z̄)
    variance   = 2 · mean_v var(Z_v),   covariance = 2 · mean_v off(Z_v)

The factor 2 keeps the variance and covariance terms *equal* to the pairs mode's for every V (the pairs
average of var(Z_a) + var(Z_b) is 2·mean_v var(Z_v)), so only the invariance differs: mean_v ‖Z_v − Z̄‖² is
(V − 1)/(2V) times the pairs invariance (1/4 at V = 2); scale ``sim_coeff`` accordingly when comparing modes.

Distributed
-----------
The invariance is computed on the local batch (as the official VICReg); centring, the variance and the block
correlations use the global batch: the local Σ_i Xc_ik² and the local correlations are summed over ranks in
one autograd-aware ``all_reduce_sum`` (the real correlation, not the complex spectrum; the irfft is linear).
The permutation is drawn on every rank and rank 0's is broadcast.

Deliberate differences from the official code
---------------------------------------------
* defaults: official ``group_size=2048``; sslbench ``block_size=None`` (one block of width D); the official
  ``scale_loss`` (1.0) is not a parameter (scale the coefficients instead);
* ``block_size > D`` raises (the official code pads the single block up to the group size);
* the official code centres on the local batch and permutes with each process's global RNG; here the
  statistics are global, the permutation is shared by all ranks and a ``generator`` may be given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    RegularizerOutput,
    center,
    check_nonnegative,
    check_positive,
    global_batch_size,
)
from ._fft import (
    FFTRelaxedRegularizer,
    all_reduce_sum_many,
    block_correlation,
    group_features,
    vicreg_relaxed_off,
)

__all__ = ["VICRegFFT"]


class VICRegFFT(FFTRelaxedRegularizer):
    """VICReg whose covariance penalty is relaxed to sums over wrapped diagonals, computed by FFT.

    Args:
        sim_coeff, std_coeff, cov_coeff: weights of the invariance, variance and covariance terms.
        eps: added to the variance before the square root.
        block_size: block width b (``None``: D, one block). Must be ≤ D (checked at call time).
        power: q ∈ {1, 2}, the penalty |r|^q.
        permute: draw a fresh random feature permutation on every call (shared by all views).
        generator: CPU ``torch.Generator`` for the permutation (``None``: the global CPU RNG).
        multiview: ``"pairs"`` or ``"mean"`` (see the module docstring).
        check_finite: raise on NaN/Inf inputs.
    """

    default_lr = {"sgd": 0.03, "adamw": 1e-3}  # as VICReg's

    def __init__(
        self,
        *,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        eps: float = 1e-4,
        block_size: int | None = None,
        power: int = 2,
        permute: bool = True,
        generator: torch.Generator | None = None,
        multiview: str = "pairs",
        check_finite: bool = False,
    ):
        super().__init__(block_size=block_size, power=power, permute=permute, generator=generator,
                         multiview=multiview, check_finite=check_finite)
        self.sim_coeff = check_nonnegative("sim_coeff", sim_coeff)
        self.std_coeff = check_nonnegative("std_coeff", std_coeff)
        self.cov_coeff = check_nonnegative("cov_coeff", cov_coeff)
        self.eps = check_positive("eps", eps)

    def view_terms(self, zs: list[Tensor], perm: Tensor | None) -> tuple[Tensor, Tensor]:
        """var(Z_v) and off(Z_v) for every view: two tensors of shape (V,)."""
        n_local, d = zs[0].shape
        n = global_batch_size(n_local)
        b = self._block(d)
        xcs = [center(z) for z in zs]
        sq = torch.stack([xc.square().sum(0) for xc in xcs])                    # (V, D) local
        r = torch.stack([block_correlation(group_features(xc, b, perm)) for xc in xcs])  # (V, G, G, b)
        sq, r = all_reduce_sum_many(sq, r)
        std = torch.sqrt(sq / (n - 1) + self.eps)
        var = torch.relu(1.0 - std).mean(-1)
        last_width = d - (r.shape[-2] - 1) * b
        off = vicreg_relaxed_off(r / (n - 1), self.power, b, last_width)
        return var, off

    def _combine(self, inv: Tensor, variance: Tensor, covariance: Tensor) -> RegularizerOutput:
        loss = self.sim_coeff * inv + self.std_coeff * variance + self.cov_coeff * covariance
        return RegularizerOutput(loss, {"invariance": inv, "variance": variance, "covariance": covariance})

    def _pair(self, za: Tensor, zb: Tensor, perm: Tensor | None) -> RegularizerOutput:
        inv = F.mse_loss(za, zb)
        var, off = self.view_terms([za, zb], perm)
        return self._combine(inv, var.sum(), off.sum())

    def _mean_views(self, zs: list[Tensor], perm: Tensor | None) -> RegularizerOutput:
        mean = torch.stack(zs).mean(dim=0)
        inv = sum(F.mse_loss(z, mean) for z in zs) / len(zs)
        var, off = self.view_terms(zs, perm)
        return self._combine(inv, 2.0 * var.mean(), 2.0 * off.mean())
