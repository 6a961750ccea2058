"""Primal (D×D) and dual (N×N Gram) kernels for the squared Frobenius norms (and diagonals) of
cross-correlation matrices.

Barlow Twins and VICReg need ‖C‖_F² for C = AᵀB (Barlow Twins, A and B the two standardised views) or
C = XᵀX (VICReg's covariance of a centred view), where A, B, X are (N, D) and N is the *global* batch. Both are
sums of squares of a product of tall matrices, and have two exact forms:

    primal ("cross_correlation"):   ‖AᵀB‖_F²                       O(N·D²) time, O(D²) memory
    dual   ("gram"):                ⟨A Aᵀ, B Bᵀ⟩ = Σ_ij (AAᵀ)_ij (BBᵀ)_ij   O(N²·D) time, O(N² + N·D) memory

(tr(AᵀB BᵀA) = tr(AAᵀ BBᵀ), and both Gram matrices are symmetric.) Both losses also need the diagonal of C
(Barlow Twins' on-diagonal term; VICReg's variances), so :func:`correlation_stats` returns (‖C‖_F², diag C) for
a list of views and a list of pairs ``(a, b)`` of view indices (``a == b`` gives XᵀX, with
‖XᵀX‖_F² = ‖XXᵀ‖_F²); the diagonal is free in the primal form and O(N·D) in the dual one, and its gradient is
folded into the kernel's backward (no extra N×D gradient buffers). All pairs share the work that can be
shared: each view's Gram matrix is formed once however many pairs it enters (``multiview="pairs"`` with V views
costs V Gram matrices, not V·(V−1)). :func:`frobenius_sq` is the first output alone.

Gradients (written by hand: one matmul per operand, no autograd bookkeeping of the D×D or N×N intermediates)

    ∂‖AᵀB‖²/∂A = 2·B Cᵀ,  ∂‖AᵀB‖²/∂B = 2·A C,  ∂‖XᵀX‖²/∂X = 4·X C            (primal, C = AᵀB or XᵀX)
    ∂⟨AAᵀ, BBᵀ⟩/∂A = 2·(BBᵀ) A,  ∂/∂B = 2·(AAᵀ) B,  ∂‖XXᵀ‖²/∂X = 4·(XXᵀ) X    (dual)

so a forward + backward costs 3·N·D² (cross pair) or 2·N·D² (self pair) multiply-adds in the primal form and
2·N²·D per view in the dual form. The backward reuses the forward's C or Gram matrices and scales in place;
under ``create_graph=True`` it rebuilds them with autograd instead, so second derivatives (gradient penalties,
``gradgradcheck``) are exact too. Autocast is off inside forward and backward.

Distributed (``torch.distributed`` initialised): A, B, X hold the local rows; the result is the global-batch
value on every rank. The primal form all-reduces the local partial C_r = A_rᵀB_r (one D×D all-reduce per pair);
the dual form all-gathers the rows of each view and every rank forms its block of rows of the Gram matrices
(local rows × all rows), the partial sums being all-reduced (P scalars and P·D diagonal entries). In the
backward the incoming gradients (P scalars, P·D diagonal entries) are summed over ranks and each rank returns
the gradient w.r.t. its own rows only, which is exactly the contract of ``_common``: rank r's gradient w.r.t.
its rows is Σ_r' ∂L_r'/∂(rows of r), i.e. ``world_size`` × the single-process gradient of the mean loss. No
D×D or N×D tensor travels in the backward.
All ranks must call forward and backward alike (as with any collective).

Choosing the cheaper form: :func:`choose_algorithm` compares the multiply-add counts above with a measured
factor for the different efficiency of the two matmul shapes (module constant ``GRAM_COST_FACTOR``):
``"gram"`` when  cost_primal > GRAM_COST_FACTOR · cost_gram.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ._common import all_reduce_sum, gather_rows, global_batch_size, is_distributed

__all__ = [
    "ALGORITHMS",
    "GRAM_COST_FACTOR",
    "choose_algorithm",
    "correlation_stats",
    "frobenius_sq",
    "primal_cost",
    "gram_cost",
]

#: the ``algorithm`` values of Barlow Twins and VICReg
ALGORITHMS = ("auto", "cross_correlation", "gram")

#: measured ratio (seconds per multiply-add) of the Gram form's matmuls to the primal form's, for forward +
#: backward of the Barlow Twins and VICReg kernels (see :func:`choose_algorithm`)
GRAM_COST_FACTOR = 1.0


def primal_cost(n: int, d: int, pairs: Sequence[tuple[int, int]]) -> float:
    """Multiply-adds of forward + backward of the primal form: 3·N·D² per cross pair, 2·N·D² per self pair."""
    return float(n) * d * d * sum(2 if a == b else 3 for a, b in pairs)


def gram_cost(n: int, d: int, pairs: Sequence[tuple[int, int]]) -> float:
    """Multiply-adds of forward + backward of the dual form: 2·N²·D per distinct view."""
    views = {v for p in pairs for v in p}
    return 2.0 * n * n * d * len(views)


def choose_algorithm(n: int, d: int, pairs: Sequence[tuple[int, int]] = ((0, 1),)) -> str:
    """``"gram"`` or ``"cross_correlation"``, whichever is cheaper for global batch ``n``, ``d`` features and the
    pairs to evaluate: ``"gram"`` iff primal_cost > GRAM_COST_FACTOR · gram_cost.

    For two views this is ``"gram"`` iff D > (4/3)·GRAM_COST_FACTOR·N (Barlow Twins) and D > GRAM_COST_FACTOR·N
    (VICReg's covariance and the ``multiview="mean"`` Barlow Twins); with V views in ``multiview="pairs"``
    Barlow Twins, iff D > 4·GRAM_COST_FACTOR·N / (3·(V − 1)) (the Gram matrices are shared by the pairs).

    Measured on a 2-core CPU (forward + backward, float32, the minimum of repeated runs): Barlow Twins two views
    crosses over at D ≈ 350 for N = 256 (model: 341) and D ≈ 680 for N = 512 (model: 683); VICReg at D ≈ 256
    for N = 256 and D ≈ 512 for N = 512 (model: D = N); Barlow Twins with V = 4 pairs near D ≈ 180 at N = 256
    (model: 114; the costs differ by less than 25 % in between). Hence ``GRAM_COST_FACTOR = 1``.
    """
    return "gram" if primal_cost(n, d, pairs) > GRAM_COST_FACTOR * gram_cost(n, d, pairs) else "cross_correlation"


# --------------------------------------------------------------------------------------------------------------
# plain (non-autograd) collectives, used inside the custom autograd functions
# --------------------------------------------------------------------------------------------------------------
def _all_reduce_(x: Tensor) -> Tensor:
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def _all_gather(x: Tensor) -> Tensor:
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def _no_autocast(t: Tensor):
    """Autocast off for ``t``'s device (a no-op context, and no cost, when it is not on)."""
    device_type = t.device.type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _reduce_grad(grad_out: Tensor, differentiable: bool) -> Tensor:
    """The incoming gradients summed over ranks (autograd-aware under create_graph=True)."""
    if differentiable:
        return all_reduce_sum(grad_out)
    return _all_reduce_(grad_out.clone()) if is_distributed() else grad_out


def _dot(x: Tensor, y: Tensor) -> Tensor:
    return torch.dot(x.reshape(-1), y.reshape(-1))


def _check_pairs(views: Sequence[Tensor], pairs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    pairs = tuple((int(a), int(b)) for a, b in pairs)
    if not pairs:
        raise ValueError("correlation_stats needs at least one pair (a, b) of view indices")
    for a, b in pairs:
        if not (0 <= a < len(views) and 0 <= b < len(views)):
            raise ValueError(f"pair ({a}, {b}) is out of range for {len(views)} views")
    return pairs


# --------------------------------------------------------------------------------------------------------------
# autograd functions
# --------------------------------------------------------------------------------------------------------------
class _PrimalStats(torch.autograd.Function):
    """For p = (a, b) in ``pairs``, with C_p = Σ_ranks A_aᵀ A_b: (‖C_p‖_F², diag(C_p))."""

    @staticmethod
    def forward(ctx, pairs, *views):
        with _no_autocast(views[0]):
            cs = []
            for a, b in pairs:
                c = torch.mm(views[a].T, views[b])
                _all_reduce_(c)
                cs.append(c)
            frob = torch.stack([_dot(c, c) for c in cs])
            diags = torch.stack([torch.diagonal(c) for c in cs])  # a copy: (P, D)
            ctx.pairs = pairs
            ctx.save_for_backward(*views, *cs)
            return frob, diags

    @staticmethod
    def backward(ctx, grad_frob, grad_diag):
        pairs = ctx.pairs
        saved = ctx.saved_tensors
        nv = len(saved) - len(pairs)
        views, cs = saved[:nv], list(saved[nv:])
        # create_graph=True: rebuild C with autograd (and autograd-aware collectives) so that the gradient is
        # itself differentiable; otherwise reuse the forward's C and work in place
        differentiable = torch.is_grad_enabled()
        with _no_autocast(views[0]):
            g2 = _reduce_grad(grad_frob, differentiable) * 2
            gd = _reduce_grad(grad_diag, differentiable)
            if differentiable:
                cs = [all_reduce_sum(torch.mm(views[a].T, views[b])) for a, b in pairs]
            grads: list[Tensor | None] = [None] * nv
            need = ctx.needs_input_grad[1:]

            def add(v: int, mm: Tensor, s: Tensor, other: Tensor, w: Tensor) -> None:
                # grads[v] += s·mm + other·diag(w)
                if differentiable:
                    t = mm * s + other * w
                    grads[v] = t if grads[v] is None else grads[v] + t
                else:
                    t = mm.mul_(s).addcmul_(other, w)
                    grads[v] = t if grads[v] is None else grads[v].add_(t)

            for p, (a, b) in enumerate(pairs):
                c = cs[p]
                if a == b:  # ∂‖XᵀX‖²/∂X = 4·X C, ∂diag(XᵀX)/∂X = 2·X
                    if need[a]:
                        add(a, torch.mm(views[a], c), 2 * g2[p], views[a], 2 * gd[p])
                    continue
                if need[a]:
                    add(a, torch.mm(views[b], c.T), g2[p], views[b], gd[p])
                if need[b]:
                    add(b, torch.mm(views[a], c), g2[p], views[a], gd[p])
            return (None, *grads)


class _GramStats(torch.autograd.Function):
    """For p = (a, b) in ``pairs``: (⟨A_a A_aᵀ, A_b A_bᵀ⟩, Σ_i A_a,i ⊙ A_b,i) over the global batch."""

    @staticmethod
    def forward(ctx, pairs, *views):
        with _no_autocast(views[0]):
            used = sorted({v for p in pairs for v in p})
            full = {v: _all_gather(views[v]) for v in used}  # (N, D): all ranks' rows
            grams = {v: torch.mm(views[v], full[v].T) for v in used}  # (N_local, N): local rows of the Gram matrix
            frob = torch.stack([_dot(grams[a], grams[b]) for a, b in pairs])
            diags = torch.stack([torch.linalg.vecdot(views[a], views[b], dim=0) for a, b in pairs])
            _all_reduce_(frob)
            _all_reduce_(diags)
            ctx.pairs, ctx.used = pairs, used
            ctx.save_for_backward(*views, *[full[v] for v in used], *[grams[v] for v in used])
            return frob, diags

    @staticmethod
    def backward(ctx, grad_frob, grad_diag):
        pairs, used = ctx.pairs, ctx.used
        saved = ctx.saved_tensors
        nv = len(saved) - 2 * len(used)
        views = saved[:nv]
        full = dict(zip(used, saved[nv:nv + len(used)]))
        grams = dict(zip(used, saved[nv + len(used):]))
        differentiable = torch.is_grad_enabled()  # create_graph=True: rebuild the Gram matrices with autograd
        with _no_autocast(views[0]):
            g2 = _reduce_grad(grad_frob, differentiable) * 2
            gd = _reduce_grad(grad_diag, differentiable)
            if differentiable:
                full = {v: gather_rows(views[v]) for v in used}
                grams = {v: torch.mm(views[v], full[v].T) for v in used}
            # 2·M_v with M_v = Σ_p ∂frob_p/∂G_v (local rows); the frob part of view v's gradient is 2·M_v @ (all
            # rows of v); the diagonal part adds (partner view's local rows) ⊙ grad_diag_p
            m: dict[int, Tensor] = {}
            w: dict[int, list[tuple[Tensor, Tensor]]] = {}
            for p, (a, b) in enumerate(pairs):
                for v, other in ((a, b), (b, a)):
                    t = grams[other] * g2[p]
                    m[v] = t if v not in m else (m[v] + t if differentiable else m[v].add_(t))
                    w.setdefault(v, []).append((views[other], gd[p]))
            need = ctx.needs_input_grad[1:]
            grads = [None] * nv
            for v in used:
                if need[v]:
                    grad = torch.mm(m[v], full[v])
                    for other, gdp in w[v]:
                        grad = grad + other * gdp if differentiable else grad.addcmul_(other, gdp)
                    grads[v] = grad
            return (None, *grads)


def correlation_stats(
    views: Sequence[Tensor], pairs: Sequence[tuple[int, int]], algorithm: str
) -> tuple[Tensor, Tensor]:
    """For every pair (a, b) of view indices, over the global batch: ‖C_p‖_F² (shape (P,)) and diag(C_p)
    (shape (P, D)) of C_p = A_aᵀ A_b (unnormalised), differentiable.

    ``views``: tensors of shape (N_local, D) (same shape, dtype and device); ``algorithm``: ``"cross_correlation"``,
    ``"gram"`` or ``"auto"`` (:func:`choose_algorithm` with the global N). Same values in both forms up to
    rounding. The diagonal is free in the primal form (the diagonal of C) and O(N·D) in the dual form; its
    gradient is folded into the kernel's backward (no extra N×D buffers).
    """
    views = list(views)
    pairs = _check_pairs(views, pairs)
    if algorithm == "auto":
        n, d = views[0].shape
        algorithm = choose_algorithm(global_batch_size(n), d, pairs)
    if algorithm == "cross_correlation":
        return _PrimalStats.apply(pairs, *views)
    if algorithm == "gram":
        return _GramStats.apply(pairs, *views)
    raise ValueError(f"algorithm={algorithm!r} is not allowed; choose one of {', '.join(map(repr, ALGORITHMS))}")


def frobenius_sq(views: Sequence[Tensor], pairs: Sequence[tuple[int, int]], algorithm: str) -> Tensor:
    """The vector (one entry per pair (a, b)) of ‖A_aᵀ A_b‖_F² over the global batch (:func:`correlation_stats`)."""
    return correlation_stats(views, pairs, algorithm)[0]
