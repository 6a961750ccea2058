"""Barlow Twins with the FFT-relaxed off-diagonal penalty.

Shigeto, Shimbo, Yoshikawa, Takeuchi, *Learning Decorrelated Representations Efficiently Using Fast Fourier
Transform*, CVPR 2023, arXiv:2301.01569. Official code: ``yutaro-s/scalable-decorrelation-ssl``
(``src/main/losses/sbarlow.py``, ``src/main/losses/util.py``, ``src/main/methods/sbarlow_twins.py``).

Formula
-------
Two views Z_a, Z_b of shape (N, D); X = bn(Z_a), Y = bn(Z_b) (``BatchNorm1d(D, affine=False)`` in training
mode, eps = ``eps``, statistics over the global batch); C = XᵀY / N (never formed).

    on  = Σ_k (1 − C_kk)²                                               (exactly Barlow Twins)

The features of X and Y are permuted by one random permutation π (``permute=True``), split into G = ceil(D/b)
blocks of width b = ``block_size`` (the last zero-padded) and for every ordered block pair (g, h)

    r^{gh}_s = Σ_k (X^gᵀ Y^h / N)_{k, (k+s) mod b}  = irfft(Σ_i conj(rfft(X^g_i)) ⊙ rfft(Y^h_i))_s / N

(see :mod:`._fft`). With q = ``power`` ∈ {1, 2}:

    off = Σ_g Σ_{s≥1} |r^{gg}_s|^q + Σ_{g≠h} Σ_{s≥0} |r^{gh}_s|^q
    L   = scale · (on + lambd · off)

Special cases: ``block_size=1`` makes every block one feature, so off = Σ_{k≠l} |C_kl|^q — with q = 2 exactly
the Barlow Twins off-diagonal term (at O(N·D²) cost: use ``barlow_twins`` for that). With G = 1 (the default
``block_size=None``) off = Σ_{s=1}^{D−1} |Σ_k C_{π(k), π((k+s) mod D)}|^q.

Terms (before the coefficients): ``on_diagonal`` = on, ``off_diagonal`` = off (unweighted).

Shapes and cost: views (N, D), V ≥ 2; O(N·D·log b + N·D·G) time, O(N·D + G·D) memory; no D×D matrix.
Returned dtype: float32 (float64 for float64 inputs); half inputs and ``torch.autocast`` compute the FFTs in
float32 (cuFFT half precision needs power-of-two sizes).

Multiple views
--------------
``multiview="pairs"`` (default): the two-view loss averaged over the V·(V−1)/2 pairs, every pair with the same
permutation (one draw per call). ``multiview="mean"``: the Barlow Twins mean form of Agrawal et al.
(``fastssl``) relaxed the same way: with X_v = bn(Z_v) and X̄ = mean_v X_v,

    on  = mean_v Σ_k (1 − mean_i X_{v,ik} X̄_ik)²
    off = the relaxed off-diagonal above with X = Y = X̄ (auto-correlation of X̄ with itself, / N)

(fastssl standardises all views jointly with an unbiased std and no eps; sslbench standardises each view as
BatchNorm does.) Note that the auto-correlation counts each off-diagonal block pair twice, as Σ_{k≠l} does.

Distributed
-----------
BN statistics are global (``batch_standardize``); the local diagonal sums Σ_i X_ik Y_ik and the local block
correlations are summed over ranks in one autograd-aware ``all_reduce_sum`` (the real correlation r is
reduced, not the complex spectrum: the irfft is linear, so the value is the same and gloo needs no complex
support). The permutation is drawn on every rank and rank 0's is broadcast. Contract of ``_common``: the mean of
the ranks' losses equals the single-process loss on the concatenated batch with the same generator seed.

Deliberate differences from the official code
---------------------------------------------
* defaults: official ``scale_loss=0.024``, ``group_size=2048``; sslbench ``scale=1.0``, ``block_size=None``
  (one block of width D), so that at block_size 1 the loss is on Barlow Twins' scale;
* ``block_size > D`` raises (the official code pads the single block up to the group size);
* the official ``BatchNorm1d`` uses the local batch and ``torch.randperm`` on the global RNG of each process
  (different permutations per rank unless seeded alike); here both are global and a ``generator`` may be given;
* ``power`` other than 1 or 2 raises (the official code leaves the off-diagonal term undefined).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    RegularizerOutput,
    batch_standardize,
    check_nonnegative,
    check_positive,
    global_batch_size,
)
from ._fft import (
    FFTRelaxedRegularizer,
    all_reduce_sum_many,
    barlow_relaxed_off,
    block_correlation,
    group_features,
)

__all__ = ["BarlowTwinsFFT"]


class BarlowTwinsFFT(FFTRelaxedRegularizer):
    """Barlow Twins whose off-diagonal penalty is relaxed to sums over wrapped diagonals, computed by FFT.

    Args:
        lambd: weight of the off-diagonal term.
        scale: factor of the whole loss.
        eps: batch-norm epsilon.
        block_size: block width b (``None``: D, one block). Must be ≤ D (checked at call time).
        power: q ∈ {1, 2}, the penalty |r|^q.
        permute: draw a fresh random feature permutation on every call (shared by both views and all pairs).
        generator: CPU ``torch.Generator`` for the permutation (``None``: the global CPU RNG).
        multiview: ``"pairs"`` or ``"mean"`` (see the module docstring).
        check_finite: raise on NaN/Inf inputs.
    """

    asv_accuracy = True

    def __init__(
        self,
        *,
        lambd: float = 0.0051,
        scale: float = 1.0,
        eps: float = 1e-5,
        block_size: int | None = None,
        power: int = 2,
        permute: bool = True,
        generator: torch.Generator | None = None,
        multiview: str = "pairs",
        check_finite: bool = False,
    ):
        super().__init__(block_size=block_size, power=power, permute=permute, generator=generator,
                         multiview=multiview, check_finite=check_finite)
        self.lambd = check_nonnegative("lambd", lambd)
        self.scale = check_positive("scale", scale)
        self.eps = check_positive("eps", eps)

    def _combine(self, on: Tensor, off: Tensor) -> RegularizerOutput:
        loss = self.scale * (on + self.lambd * off)
        return RegularizerOutput(loss, {"on_diagonal": on, "off_diagonal": off})

    def _pair(self, za: Tensor, zb: Tensor, perm: Tensor | None) -> RegularizerOutput:
        n_local, d = za.shape
        n = global_batch_size(n_local)
        b = self._block(d)
        x = batch_standardize(za, self.eps)
        y = batch_standardize(zb, self.eps)
        diag = (x * y).sum(0)                                                 # (D,) local Σ_i X_ik Y_ik
        r = block_correlation(group_features(x, b, perm), group_features(y, b, perm))  # (G, G, b) local
        diag, r = all_reduce_sum_many(diag, r)
        on = (1.0 - diag / n).square().sum()
        off = barlow_relaxed_off(r / n, self.power)
        return self._combine(on, off)

    def _mean_views(self, zs: list[Tensor], perm: Tensor | None) -> RegularizerOutput:
        n_local, d = zs[0].shape
        n = global_batch_size(n_local)
        b = self._block(d)
        xs = batch_standardize(torch.cat(zs, dim=1), self.eps).view(n_local, len(zs), d)
        mean = xs.mean(dim=1)                                                 # X̄ (N, D)
        diag = (xs * mean.unsqueeze(1)).sum(0)                                # (V, D)
        r = block_correlation(group_features(mean, b, perm))                  # (G, G, b)
        diag, r = all_reduce_sum_many(diag, r)
        on = (1.0 - diag / n).square().sum(-1).mean()
        off = barlow_relaxed_off(r / n, self.power)
        return self._combine(on, off)
