"""Shared pieces of the asymmetric regularizers ``byol``, ``directpred`` and ``isoloss``.

These methods compare an *online* branch with a *target* branch (an EMA copy of the network, or the online
network itself under stop-gradient), so they are called as ``reg(online, target)`` rather than on symmetric
views. This module holds

* :class:`AsymmetricRegularizer`, the base class: input validation for (online, target) pairs of V ≥ 2 views,
  full precision, and the ordered view pairs the loss sums over;
* the pure helpers of the eigen-predictor of DirectPred (Tian, Chen, Ganguli, ICML 2021) as used by IsoLoss
  (Halvagal, Laborieux, Zenke, NeurIPS 2023): the EMA of the correlation matrix, the eigenvalue scaling and the
  predictor matrix W_p = U diag(s^α) Uᵀ;
* :func:`cosine_loss`, BYOL's 2 − 2·cos(p, [z_t]) averaged over the batch.

Nothing here imports anything else from ``sslbench`` but ``_common``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ._common import Regularizer, RegularizerOutput, as_views, check_loss_finite, full_precision

__all__ = [
    "AsymmetricRegularizer",
    "EigenPredictor",
    "check_tau",
    "cosine_loss",
    "eigen_predictor",
    "ema_update_",
    "ordered_pairs",
    "scale_eigenvalues",
]

#: ``F.cosine_similarity``'s guard: each norm is clamped below at this value
NORM_EPS = 1e-8
#: upper clip of the eigenvalues when ``normalize=False`` (as the official code)
MAX_EIGENVALUE = 1e6


# --------------------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------------------
def check_tau(tau) -> float:
    """``tau`` must be a real number in [0, 1) (an EMA decay; 1 would never learn the statistics)."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (0.0 <= tau < 1.0):
        raise ValueError(f"tau={tau!r} must be a real number in [0, 1) (the EMA decay of the correlation matrix)")
    return float(tau)


def ordered_pairs(num_views: int) -> list[tuple[int, int]]:
    """All (online view i, target view j) with i ≠ j, in the order the losses are summed."""
    return [(i, j) for i in range(num_views) for j in range(num_views) if i != j]


def cosine_loss(p: Tensor, z_t: Tensor) -> Tensor:
    """mean_n (2 − 2·cos(p_n, [z_t]_n)); the target is detached (stop-gradient). Shapes (N, D) → 0-dim."""
    return 2.0 - 2.0 * torch.nn.functional.cosine_similarity(p, z_t.detach(), dim=1, eps=NORM_EPS).mean()


@torch.no_grad()
def ema_update_(f: Tensor, stat: Tensor, tau: float) -> Tensor:
    """In place: f ← τ·f + (1 − τ)·stat (``stat`` is cast to f's dtype). Returns f."""
    return f.mul_(tau).add_(stat.to(f.dtype), alpha=1.0 - tau)


def scale_eigenvalues(s: Tensor, *, alpha: float, eps: float, normalize: bool) -> Tensor:
    """The eigenvalues of W_p from those of F (any order is kept).

    ``normalize=True``: s ← clamp(s, 0) / max(s) + eps, then s^α. The division is guarded (max(s) is clamped
    below at the dtype's smallest normal number), so an all-zero F gives s = eps instead of NaN.
    ``normalize=False`` (official code): NaN → 0, s ← clamp(s, 0, 1e6), then s^α (``eps`` is not added).
    ``0^0 = 1``, so ``alpha=0`` gives W_p = I.
    """
    if normalize:
        top = s.max().clamp_min(torch.finfo(s.dtype).tiny)
        s = s.clamp_min(0) / top + eps
    else:
        s = torch.nan_to_num(s, nan=0.0).clamp(0, MAX_EIGENVALUE)
    return s.pow(alpha)


class EigenPredictor(NamedTuple):
    """The linear predictor computed from the correlation estimate F = U diag(λ) Uᵀ."""

    #: W_p = U diag(spectrum) Uᵀ, (D, D), symmetric positive semi-definite
    weight: Tensor
    #: λ, the eigenvalues of F in ascending order, (D,)
    eigenvalues: Tensor
    #: the eigenvalues of W_p (s^α after the scaling of :func:`scale_eigenvalues`), same order, (D,)
    spectrum: Tensor


@torch.no_grad()
def eigen_predictor(f: Tensor, *, alpha: float, eps: float, normalize: bool) -> EigenPredictor:
    """W_p = U diag(s^α) Uᵀ from F (D, D), computed without autograd in F's dtype.

    F is symmetrised (½(F + Fᵀ)) and decomposed with ``torch.linalg.eigh`` (O(D³); fine for D ≤ 4096).
    """
    lam, u = torch.linalg.eigh(0.5 * (f + f.mT))
    spectrum = scale_eigenvalues(lam, alpha=alpha, eps=eps, normalize=normalize)
    return EigenPredictor((u * spectrum) @ u.mT, lam, spectrum)


# --------------------------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------------------------
def _views(x, what: str, check_finite: bool) -> list[Tensor]:
    if isinstance(x, Tensor) and x.dim() == 2:
        raise ValueError(
            f"{what}: got one (N, D) tensor; asymmetric regularizers are called as reg(online, target) where "
            "each is a sequence of V >= 2 tensors (N, D) (one per view) or one (V, N, D) tensor"
        )
    return as_views(x, check_finite=check_finite, what=what)


class AsymmetricRegularizer(Regularizer):
    """Base class of the (online, target) regularizers: ``reg(online, target) -> RegularizerOutput``.

    ``online`` and ``target`` are each a sequence of V ≥ 2 tensors of shape (N, D) or one (V, N, D) tensor, with
    the same shapes; view v of both comes from the same augmented images. The loss sums, over ordered pairs
    (i, j) with i ≠ j, the loss of online view i against target view j; the target is always detached inside
    the loss (stop-gradient), so passing the target without ``torch.no_grad`` is harmless. Both are computed in
    float32 (float64 when ``online`` is float64) with autocast off; the target is cast to the online dtype.

    Subclasses implement :meth:`compute` on the validated lists.
    """

    symmetric = False

    def __init__(self, *, check_finite: bool = False):
        super().__init__(multiview="pairs", check_finite=check_finite)

    def forward(self, online: Sequence[Tensor] | Tensor, target: Sequence[Tensor] | Tensor) -> RegularizerOutput:
        zs = _views(online, "online", self.check_finite)
        zts = _views(target, "target", self.check_finite)
        if len(zs) != len(zts):
            raise ValueError(f"online has {len(zs)} views but target has {len(zts)}; pass one target per view")
        if zs[0].shape != zts[0].shape:
            raise ValueError(
                f"online views have shape {tuple(zs[0].shape)} but target views {tuple(zts[0].shape)}; both must "
                "be (N, D) with the same N and D (the projector and its EMA copy share their output size)"
            )
        if zs[0].device != zts[0].device:
            raise ValueError(f"online is on {zs[0].device} but target on {zts[0].device}; put both on one device")
        zts = [z.to(zs[0].dtype) for z in zts]
        with full_precision(zs[0]):
            out = self.compute(zs, zts)
        return check_loss_finite(out, zs + zts) if self.check_finite else out

    def compute(self, online: list[Tensor], target: list[Tensor]) -> RegularizerOutput:  # pragma: no cover
        raise NotImplementedError
