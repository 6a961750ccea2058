"""BYOL's loss — Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020.

Formula
-------
With p_i = q(z_i) the online *predictor* output of view i and z_t_j the target (EMA network) projection of
view j, stop-gradient written [·]:

    L = Σ_{i≠j} mean_n ( 2 − 2·cos(p_i,n, [z_t_j,n]) )

which equals Σ_{i≠j} mean_n ‖p̂ − ẑ_t‖² with ̂· the L2-normalised vectors. For V = 2 this is BYOL's symmetrised
loss ℓ(p_1, z_t_2) + ℓ(p_2, z_t_1).

Official code: google-deepmind/deepmind-research ``byol``; the form used here follows
fmi-basel/implicit-var-reg ``solo/losses/byol.py`` (``2 − 2·F.cosine_similarity(p, z.detach()).mean()``, summed
over ordered view pairs in ``solo/methods/directpred.py``).

Shapes
------
``reg(online, target)``: ``online`` = predictor outputs p, ``target`` = target projections z_t; each a sequence of
V ≥ 2 tensors (N, D) or one (V, N, D) tensor. Returns ``RegularizerOutput(loss, {"cosine": loss})``.

State: none. The predictor network q and the EMA target live in the model (``sslbench.training.models.Predictor`` and
``EMATarget``), not here.

Distributed: the loss is a per-sample mean with no batch statistics, so each rank computes it on its own rows;
the mean of the ranks' losses is the global-batch loss and DDP's gradient averaging gives the global gradient.

Differences: cosine norms are clamped below at 1e-8 (as ``F.cosine_similarity``).
"""

from __future__ import annotations

from torch import Tensor

from ._asymmetric import AsymmetricRegularizer, cosine_loss, ordered_pairs
from ._common import RegularizerOutput

__all__ = ["BYOL"]


class BYOL(AsymmetricRegularizer):
    """L = Σ_{i≠j} mean_n (2 − 2·cos(p_i, [z_t_j])); ``reg(predictions, target_projections)``."""

    needs_predictor = True

    def __init__(self, *, check_finite: bool = False):
        super().__init__(check_finite=check_finite)

    def compute(self, online: list[Tensor], target: list[Tensor]) -> RegularizerOutput:
        loss = sum(cosine_loss(online[i], target[j]) for i, j in ordered_pairs(len(online)))
        return RegularizerOutput(loss, {"cosine": loss})
