"""DirectPred — Tian, Chen, Ganguli, "Understanding self-supervised learning dynamics without contrastive
pairs", ICML 2021; in the form used by Halvagal, Laborieux, Zenke, "Implicit variance regularization in
non-contrastive SSL", NeurIPS 2023.

Formula
-------
No learned predictor: the linear predictor W_p is set from an EMA estimate F of the correlation matrix of the
online projections z (N×D, N the global batch, [·] = detached):

    F ← τ·F + (1 − τ)·[z]ᵀ[z] / N                         (training mode only)
    F = U diag(λ) Uᵀ                                     (eigh of ½(F + Fᵀ))
    s = clamp(λ, 0) / max(λ) + eps                       (normalize=True; else s = clamp(λ, 0, 1e6))
    W_p = U diag(s^α) Uᵀ,      p = z W_p                 (no gradient through W_p)
    L = Σ_{i≠j} mean_n ( 2 − 2·cos(p_i,n, [z_t_j,n]) )    (BYOL's loss, ordered view pairs)

Defaults (official CIFAR configs ``scripts/pretrain/cifar/directpred.yaml``): α = 0.5, τ = 0.998, eps = 0,
normalize. **DirectCopy** (Wang et al. 2022) is ``alpha=1, eps=0.25``: W_p = F/λ_max + 0.25·I.

Official code: fmi-basel/implicit-var-reg ``solo/methods/directpred.py`` (with ``iso: False``) and
``solo/losses/byol.py``; facebookresearch/luckmatters ``ssl`` for the original DirectPred.

Shapes
------
``reg(online, target)``: ``online`` = online projections z (*not* predictor outputs: W_p lives here),
``target`` = target projections z_t; each a sequence of V ≥ 2 tensors (N, D) or one (V, N, D) tensor.
Returns ``RegularizerOutput(loss, {"cosine": loss})``. :meth:`DirectPred.predictor` gives the current W_p and
the eigenvalues of F for diagnostics.

State and schedule
------------------
Buffers ``F`` (D, D), ``num_updates`` (number of EMA updates so far) and ``skipped_updates`` (number of training
calls whose update was skipped, see below). ``F`` is created at the first call
when ``dim`` is None (in the compute dtype of that call: float32, or float64 for float64 inputs, on the
inputs' device), or at construction as float32 zeros when ``dim`` is given (move it with ``.to(device)``,
change its dtype with ``.double()``). As in the official code, where the model's ``forward`` runs once per
view, F is updated **once per view, before the predictor of that view is computed**: view 1 uses F updated
with z_1, view 2 uses F further updated with z_2, and so on (V EMA updates and V eighs per training call).
The updates happen only in ``self.training`` mode; **``eval()`` freezes F** (the loss then uses the current
W_p; calling an untrained module in eval mode raises). Under ``torch.distributed`` the sums [z]ᵀ[z] are
all-reduced (no autograd, one collective per call) and divided by the global N, so every rank holds the same
F; the loss itself is a per-sample mean on the local rows (mean over ranks = global-batch loss).

One bad batch does not poison the state: if a call's EMA updates would leave F non-finite (NaN or Inf
embeddings, or [z]ᵀ[z] overflowing F's dtype for huge ones), the whole call's update is skipped: F keeps its
value from before the call (the views of that call use the last finite F), ``num_updates`` does not move and
``skipped_updates`` counts the call. The decision is taken on the device (``torch.where``, no host
synchronisation) after the all-reduce, so all ranks decide alike. The loss of such a batch is whatever its
embeddings give (NaN for NaN inputs, which a training loop reports as divergence); the next good batch
continues from the kept F. ``check_finite=True`` instead rejects NaN/Inf embeddings before any update.

Precision and cost: F and its eigendecomposition stay in F's dtype (float32 unless created from float64
inputs or converted); W_p is cast to the compute dtype. ``eigh`` costs O(D³) per view and step and syncs
the host on CUDA; it becomes the dominant cost of a step at large D (docs/regularizers.md, "Side by side", gives the
measured time per step, from ``python benchmarks/side_by_side.py``).

Differences from the official code
----------------------------------
* ``torch.linalg.eigh`` on the symmetrised F instead of ``torch.linalg.eig`` + real parts (same values for a
  symmetric F; orthonormal eigenvectors also in the degenerate (rank-deficient, N < D) subspace).
* The division by max(λ) is guarded (an all-zero F gives s = eps instead of NaN).
* The EMA is in F's dtype with the global batch (the official code keeps a per-rank F in float32).
* The official model also updates F when ``forward`` runs outside training; here ``eval()`` freezes it.
* A non-finite update of F is skipped and counted (the official code's F, and every later eigh, is then NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._asymmetric import AsymmetricRegularizer, EigenPredictor, check_tau, cosine_loss, eigen_predictor, \
    ema_update_, ordered_pairs
from ._common import RegularizerOutput, all_reduce_sum, check_int, check_nonnegative, global_batch_size

__all__ = ["DirectPred"]


class DirectPred(AsymmetricRegularizer):
    """BYOL's loss with the closed-form predictor W_p = U diag(s^α) Uᵀ from the EMA correlation matrix F."""

    eigendecomposes = True

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
        super().__init__(check_finite=check_finite)
        self.dim = check_int("dim", dim, minimum=2, allow_none=True)
        self.alpha = float(check_nonnegative("alpha", alpha))
        self.tau = check_tau(tau)
        self.eps = float(check_nonnegative("eps", eps))
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize={normalize!r} must be True or False")
        self.normalize = normalize
        self.register_buffer("F", None if dim is None else torch.zeros(dim, dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("skipped_updates", torch.zeros((), dtype=torch.long))

    # ---------------------------------------------------------------------------------------------------------
    # State
    # ---------------------------------------------------------------------------------------------------------
    def _state(self, z: Tensor) -> Tensor:
        """The buffer F, created here when ``dim`` was None; checks D and the device."""
        d = z.shape[1]
        if self.F is None:
            self.F = torch.zeros(d, d, dtype=z.dtype, device=z.device)
            self.num_updates = self.num_updates.to(z.device)
            self.skipped_updates = self.skipped_updates.to(z.device)
        if self.F.shape[0] != d:
            raise ValueError(
                f"{type(self).__name__} holds a {self.F.shape[0]}x{self.F.shape[0]} correlation matrix but got "
                f"D={d} features; use one instance per projector output size (dim={self.F.shape[0]})"
            )
        if self.F.device != z.device:
            raise ValueError(
                f"{type(self).__name__}'s correlation matrix is on {self.F.device} but the embeddings on "
                f"{z.device}; move the regularizer with reg.to(device)"
            )
        return self.F

    @torch.no_grad()
    def _batch_correlations(self, online: list[Tensor]) -> Tensor:
        """[z_v]ᵀ[z_v] / N for every view v, (V, D, D) in F's dtype, over the global batch."""
        zs = [z.detach().to(self.F.dtype) for z in online]
        sums = torch.stack([z.mT @ z for z in zs])
        return all_reduce_sum(sums) / global_batch_size(online[0].shape[0])

    def _current(self) -> EigenPredictor:
        return eigen_predictor(self.F, alpha=self.alpha, eps=self.eps, normalize=self.normalize)

    def predictor(self) -> EigenPredictor:
        """The current predictor from F (no update): ``weight`` W_p (D, D), ``eigenvalues`` of F (ascending) and
        ``spectrum`` (the eigenvalues of W_p, same order)."""
        if self.F is None:
            raise RuntimeError(
                f"{type(self).__name__} has no correlation matrix yet: call it in training mode first, pass "
                "dim=D, or load a state dict"
            )
        return self._current()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a lazily created F is absent (None) until the first call: materialise it so checkpoints load
        key = prefix + "F"
        if self.F is None and key in state_dict:
            self.F = torch.empty_like(state_dict[key], device=self.num_updates.device)
        # checkpoints written before skipped_updates existed load with the count at 0
        state_dict.setdefault(prefix + "skipped_updates", torch.zeros((), dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---------------------------------------------------------------------------------------------------------
    # Loss
    # ---------------------------------------------------------------------------------------------------------
    def predictors(self, online: list[Tensor]) -> list[Tensor]:
        """W_p for every view, in the compute dtype; updates F first (per view) in training mode."""
        self._state(online[0])
        if self.training:
            weights = self._update(self._batch_correlations(online))
        else:
            if int(self.num_updates) == 0:
                raise RuntimeError(
                    f"{type(self).__name__} is in eval mode but its correlation matrix was never updated; "
                    "call it in training mode first (reg.train()) or load a trained state dict"
                )
            weights = [self._current().weight] * len(online)
        return [w.to(online[0].dtype) for w in weights]

    @torch.no_grad()
    def _update(self, stats: Tensor) -> list[Tensor]:
        """One EMA update of F per view, then W_p for that view; a call whose updates would make F non-finite is
        skipped as a whole (F kept, ``skipped_updates`` + 1), decided on the device (no host synchronisation)."""
        start = self.F.clone()
        ok = torch.ones((), dtype=torch.bool, device=start.device)
        weights = []
        for stat in stats:
            candidate = ema_update_(self.F.clone(), stat, self.tau)
            ok &= torch.isfinite(candidate).all()
            self.F.copy_(torch.where(ok, candidate, start))  # once one update is bad, F stays as it was
            weights.append(self._current().weight)
        self.num_updates += ok.long() * len(stats)
        self.skipped_updates += (~ok).long()
        return weights

    def compute(self, online: list[Tensor], target: list[Tensor]) -> RegularizerOutput:
        weights = self.predictors(online)
        return self.loss(online, [z @ w for z, w in zip(online, weights)], target)

    def loss(self, online: list[Tensor], predictions: list[Tensor], target: list[Tensor]) -> RegularizerOutput:
        """BYOL's loss of the predictions p_i = z_i W_p against the detached targets."""
        loss = sum(cosine_loss(predictions[i], target[j]) for i, j in ordered_pairs(len(online)))
        return RegularizerOutput(loss, {"cosine": loss})
