"""SFRIK: spherical invariance plus an MMD to the uniform distribution with a rotation-invariant kernel.

Zheng, Puy, Riccietti, Pérez, Gribonval, *Self-supervised learning with rotation-invariant kernels* (2022),
arXiv:2208.00789. Official code: ``valeoai/sfrik`` (``src/sfrik/ssl.py``, class ``SFRIK``).

Formula
-------
With E_v = sphere(Z_v) (rows divided by their L2 norm; N rows, D features):

    inv    = F.mse_loss(E_a, E_b)                         (mean over the N·D entries)
    mmd(E) = mean_{i,j} ψ(⟨E_i, E_j⟩)                     (all N² pairs, i = j included: a V-statistic)
    ψ(t)   = Σ_{k=1..L} w_k P_k(t)
    loss   = sim_coeff · inv + mmd_coeff · (mmd(E_a) + mmd(E_b)) / 2

P_k is the Legendre (Gegenbauer) polynomial of degree k *for dimension D*, normalised to P_k(1) = 1, computed
for any degree with the three-term recurrence

    P_0 = 1,  P_1(t) = t,  P_{k+1}(t) = ((2k + D − 2)·t·P_k(t) − k·P_{k−1}(t)) / (k + D − 2),

which gives P_2 = (D t² − 1)/(D − 1), P_3 = ((D + 2) t³ − 3t)/(D − 1) (the paper's L = 3 truncation), the
official file's P_4, the Chebyshev polynomials cos(kθ) for D = 2 and the classical Legendre polynomials for
D = 3. The P_k are orthogonal on [−1, 1] for the weight (1 − t²)^{(D−3)/2}, so for non-negative weights ψ is a
positive-definite kernel on S^{D−1} whose mean embedding of the uniform distribution is the constant ψ-average
0: mmd(E) is the squared MMD between the empirical distribution of the rows and the uniform distribution,
≥ 0, with expectation Σ_k w_k / N for uniform rows (the diagonal terms).

Degree-2 truncation: ``weights=(0.0, w2)`` gives mmd(E) = w2·(D·‖EᵀE/N‖_F² − 1)/(D − 1), a penalty on the
second moment matrix of the embeddings towards I/D (the covariance / information-maximisation penalty the
paper shows the family covers).

Shapes: every view (N, D), V ≥ 2 views. Cost O(N²·D) time (the Gram matrix) and O(L·N²) memory for the
degree-L polynomial with autograd (O(N²) for the default L = 3).

Defaults: ``sim_coeff=4000, mmd_coeff=1, weights=(1, 40, 40)`` (the official ResNet-18 scripts; the ImageNet
ResNet-50 run uses sim_coeff 40000 with D = 32768).

Distributed: the MMD covers the global batch: each rank forms its local rows × all gathered rows block of the
Gram matrix (``gather_rows``), sums ψ over it and the partial sums are added with ``all_reduce_sum``; the
invariance is the local mean squared error (as the official code). Both satisfy the contract of ``_common``.

Multiple views
--------------
``multiview="pairs"`` (default): the two-view loss averaged over the V·(V−1)/2 pairs (each view's MMD then
enters with equal weight, as the official SwAV-style multi-crop forward). ``multiview="mean"``: with the
consensus Ê = sphere(mean_v E_v),

    inv = mean_v F.mse_loss(E_v, Ê),   mmd = mean_v mmd(E_v).

The mean is *re-normalised to the sphere*: Ê is the point u of S^{D−1} minimising Σ_v ‖E_v − u‖² (the
extrinsic mean), so the invariance stays a chordal distance on the sphere where the MMD lives. Without the
re-normalisation the term would be algebraically the pairs invariance times (V − 1)/(2V)
(mean_v ‖E_v − Ē‖² = (1/V²)·Σ_{v<w} ‖E_v − E_w‖²), i.e. nothing new. The gradient flows through Ê (no
stop-gradient). For nearby views the mean-mode invariance is ≈ (V − 1)/(2V) times the pairs one (1/4 at
V = 2): scale ``sim_coeff`` accordingly when comparing the two modes.

Deliberate differences from the official code: any number of weights (official: exactly 3, degree ≤ 4
implemented); the polynomials come from the recurrence rather than per-degree closed forms; the global MMD is
computed blockwise (local × global rows) instead of the full N² matrix on every rank (same value).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    Regularizer,
    RegularizerOutput,
    all_reduce_sum,
    check_nonnegative,
    gather_rows,
    global_batch_size,
    sphere,
)

__all__ = ["SFRIK", "legendre", "sphere_kernel", "mmd_uniform", "mean_view_invariance", "parse_weights"]


def legendre(t: Tensor, degree: int, dim: int) -> Tensor:
    """P_degree(t) for dimension ``dim`` (Gegenbauer polynomial normalised to P(1) = 1), elementwise."""
    if degree < 0 or dim < 2:
        raise ValueError(f"legendre needs degree >= 0 and dim >= 2; got degree={degree}, dim={dim}")
    prev, cur = torch.ones_like(t), t
    if degree == 0:
        return prev
    for k in range(1, degree):
        prev, cur = cur, ((2 * k + dim - 2) * t * cur - k * prev) / (k + dim - 2)
    return cur


def sphere_kernel(t: Tensor, weights: Sequence[float], dim: int) -> Tensor:
    """ψ(t) = Σ_{k=1..L} weights[k−1]·P_k(t) elementwise, by the three-term recurrence (one pass over k)."""
    out = weights[0] * t
    prev, cur = torch.ones_like(t), t
    for k in range(1, len(weights)):
        prev, cur = cur, ((2 * k + dim - 2) * t * cur - k * prev) / (k + dim - 2)
        if weights[k] != 0:
            out = out + weights[k] * cur
    return out


def mmd_uniform(e: Tensor, weights: Sequence[float]) -> Tensor:
    """mean_{i,j} ψ(⟨e_i, e_j⟩) over all N² pairs of the global batch (rows of ``e`` on the sphere)."""
    n = global_batch_size(e.shape[0])
    gram = e @ gather_rows(e).T  # (N_local, N)
    return all_reduce_sum(sphere_kernel(gram, weights, e.shape[1]).sum()) / (n * n)


def mean_view_invariance(es: list[Tensor]) -> Tensor:
    """mean_v F.mse_loss(E_v, sphere(mean_v E_v)): each view against the re-normalised consensus."""
    consensus = sphere(torch.stack(es).mean(dim=0))
    return sum(F.mse_loss(e, consensus) for e in es) / len(es)


def parse_weights(weights) -> tuple[float, ...]:
    """Validate the kernel weights: a non-empty sequence of finite non-negative numbers (w_1, ..., w_L).

    The official command-line form ``"1-40-40"`` is accepted too.
    """
    raw = weights
    if isinstance(weights, str):
        try:
            weights = [float(w) for w in weights.split("-")]
        except ValueError:
            raise ValueError(
                f"weights={raw!r}: write non-negative numbers separated by commas, such as 1,40,40 "
                "(or by '-', as in the official '1-40-40')"
            ) from None
    elif isinstance(weights, Tensor):
        weights = weights.tolist() if weights.dim() == 1 else None
    try:
        weights = tuple(weights)
    except TypeError:
        raise ValueError(
            f"weights={raw!r} must be a non-empty sequence of non-negative numbers (w_1, ..., w_L), "
            "e.g. (1.0, 40.0, 40.0)"
        ) from None
    if not weights:
        raise ValueError("weights=() must hold at least one weight (w_1 for the degree-1 polynomial)")
    weights = tuple(float(w) if isinstance(w, numbers.Real) and not isinstance(w, bool) else w for w in weights)
    for k, w in enumerate(weights, start=1):
        try:
            check_nonnegative(f"weights[{k - 1}] (degree {k})", w)
        except ValueError as exc:
            raise ValueError(
                f"weights={raw!r}: {exc}; negative weights make ψ indefinite, so the MMD could go below 0"
            ) from None
    return tuple(float(w) for w in weights)


class SFRIK(Regularizer):
    """SFRIK loss (see the module docstring): ``SFRIK()(z1, z2).loss``; terms ``invariance`` and ``mmd``.

    Args:
        sim_coeff: weight of the invariance (mean squared error between the spherical embeddings).
        mmd_coeff: weight of the MMD term.
        weights: w_1..w_L of the kernel ψ = Σ_k w_k P_k (non-negative; any length L ≥ 1; ``(0, w2)`` is the
            degree-2 covariance penalty).
        multiview: ``"pairs"`` or ``"mean"`` (module docstring).
        check_finite: raise ``ValueError`` on NaN/Inf inputs.
    """

    asv_accuracy = True

    def __init__(
        self,
        *,
        sim_coeff: float = 4000.0,
        mmd_coeff: float = 1.0,
        weights: Sequence[float] = (1.0, 40.0, 40.0),
        multiview: str = "pairs",
        check_finite: bool = False,
    ):
        super().__init__(multiview=multiview, check_finite=check_finite)
        self.sim_coeff = float(check_nonnegative("sim_coeff", sim_coeff))
        self.mmd_coeff = float(check_nonnegative("mmd_coeff", mmd_coeff))
        self.weights = parse_weights(weights)

    def mmd(self, e: Tensor) -> Tensor:
        """The MMD term of one view of spherical embeddings (global batch)."""
        return mmd_uniform(e, self.weights)

    def _combine(self, inv: Tensor, mmd: Tensor) -> RegularizerOutput:
        loss = self.sim_coeff * inv + self.mmd_coeff * mmd
        return RegularizerOutput(loss, {"invariance": inv, "mmd": mmd})

    def pair(self, za: Tensor, zb: Tensor) -> RegularizerOutput:
        ea, eb = sphere(za), sphere(zb)
        return self._combine(F.mse_loss(ea, eb), (self.mmd(ea) + self.mmd(eb)) / 2)

    def mean_views(self, zs: list[Tensor]) -> RegularizerOutput:
        es = [sphere(z) for z in zs]
        return self._combine(mean_view_invariance(es), sum(self.mmd(e) for e in es) / len(es))

