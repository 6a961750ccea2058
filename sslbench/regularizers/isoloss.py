"""IsoLoss — Halvagal, Laborieux, Zenke, "Implicit variance regularization in non-contrastive SSL",
NeurIPS 2023.

Formula
-------
The predictor and its state are DirectPred's (see ``directpred.py``): F ← τF + (1 − τ)[z]ᵀ[z]/N,
F = U diag(λ) Uᵀ, s = clamp(λ, 0)/max(λ) + eps, W_p = U diag(s^α) Uᵀ, p = z W_p, and
p_sqrt = z U diag(s^{α/2}) Uᵀ. Per sample, with [·] meaning detached:

    sim = ⟨z, [z_t]⟩ / [‖p‖·‖z_t‖]  −  ½·[⟨p, z_t⟩ / (‖p‖³·‖z_t‖)]·‖p_sqrt‖²
    L   = Σ_{i≠j} −2·mean_n sim(z_i,n, p_i,n, z_t_j,n)          (online view i, target view j)

Why: ∂‖p_sqrt‖²/∂z = 2·W_p z = 2p, so ∂sim/∂z = [z_t/(‖p‖‖z_t‖) − ⟨p, z_t⟩ p/(‖p‖³‖z_t‖)] = ∂cos(p, z_t)/∂p.
The gradient w.r.t. z is BYOL's gradient w.r.t. the *prediction*, without the factor W_p that BYOL/DirectPred's
chain rule applies (∂L_DP/∂z = W_p·∂L/∂p). With W_p's eigenvalues out of the update, every eigendirection
learns at the same rate: the paper's isotropic loss, robust where DirectPred/BYOL need tuning (e.g. no EMA).
The loss *value* is not a cosine (it can be negative; the official code adds no constant 2), so the output
also reports the BYOL cosine loss of the same predictions as a detached diagnostic term ``cosine``.

Verified against fmi-basel/implicit-var-reg ``solo/losses/isoloss.py`` (``isoloss_func(P[v2], psqrt[v2],
Z[v2], Z_momentum[v1])``: z and p_sqrt of the *online* view, z_t of the other view) and
``solo/methods/directpred.py`` (``iso: True``); defaults from ``scripts/pretrain/cifar/isoloss.yaml``
(α = 0.5, τ = 0.998, eps = 0, normalize).

Shapes
------
``reg(online, target)``: ``online`` = online projections z, ``target`` = target projections z_t; each a
sequence of V ≥ 2 tensors (N, D) or one (V, N, D) tensor. Returns
``RegularizerOutput(loss, {"isoloss": loss, "cosine": <detached BYOL loss of p vs z_t>})``.

State, schedule, distributed behaviour, precision and cost: as :class:`~.directpred.DirectPred` (F updated once
per view before that view's predictor, training mode only; ``eval()`` freezes it; global-batch F under
``torch.distributed``; eigh O(D³) per view and step).

Differences from the official code: DirectPred's (eigh, guarded max, global F, eval freezes), plus
‖p_sqrt‖² is computed as ⟨z, p⟩ = z W_p zᵀ, equal to ‖z W_p^{1/2}‖² (W_p is symmetric PSD) with the same
gradient 2p, which saves the second matrix product; norms in the detached factors are clamped below at 1e-8.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._asymmetric import NORM_EPS, cosine_loss, ordered_pairs
from ._common import RegularizerOutput
from .directpred import DirectPred

__all__ = ["IsoLoss", "isotropic_similarity"]


def isotropic_similarity(z: Tensor, p: Tensor, z_t: Tensor) -> Tensor:
    """Per-sample sim (N,) of the isotropic loss; ``p = z W_p`` must carry the gradient path z → p.

    sim = ⟨z, [z_t]⟩/[‖p‖‖z_t‖] − ½·[⟨p, z_t⟩/(‖p‖³‖z_t‖)]·⟨z, p⟩, with ⟨z, p⟩ = ‖p_sqrt‖².
    """
    z_t = z_t.detach()
    p_d = p.detach()
    p_norm = p_d.norm(dim=1).clamp_min(NORM_EPS)
    t_norm = z_t.norm(dim=1).clamp_min(NORM_EPS)
    coef = (p_d * z_t).sum(dim=1) / (p_norm.pow(3) * t_norm)
    p_sqrt_sq = (z * p).sum(dim=1)
    return (z * z_t).sum(dim=1) / (p_norm * t_norm) - 0.5 * coef * p_sqrt_sq


class IsoLoss(DirectPred):
    """DirectPred's eigen-predictor with the isotropic loss L = Σ_{i≠j} −2·mean_n sim(z_i, p_i, [z_t_j])."""

    #: the gradient is BYOL's w.r.t. the prediction, not the derivative of the loss value (the detached factors
    #: above): ``sslbench check`` skips its gradcheck row
    surrogate_gradient = True

    def __init__(
        self,
        *,
        dim: int | None = None,
        alpha: float = 0.5,
        tau: float = 0.998,
        eps: float = 0.0,
        normalize: bool = True,
        check_finite: bool = False,
    ):
        super().__init__(dim=dim, alpha=alpha, tau=tau, eps=eps, normalize=normalize, check_finite=check_finite)

    def loss(self, online: list[Tensor], predictions: list[Tensor], target: list[Tensor]) -> RegularizerOutput:
        pairs = ordered_pairs(len(online))
        loss = sum(-2.0 * isotropic_similarity(online[i], predictions[i], target[j]).mean() for i, j in pairs)
        with torch.no_grad():
            cosine = sum(cosine_loss(predictions[i], target[j]) for i, j in pairs)
        return RegularizerOutput(loss, {"isoloss": loss, "cosine": cosine})
