"""Helpers of the FFT-relaxed decorrelation losses (``barlow_twins_fft``, ``vicreg_fft``).

Shigeto, Shimbo, Yoshikawa, Takeuchi, *Learning Decorrelated Representations Efficiently Using Fast Fourier
Transform*, CVPR 2023 (arXiv:2301.01569). Official code: ``yutaro-s/scalable-decorrelation-ssl``
(``src/main/losses/util.py`` and the two losses).

The relaxation
--------------
For embeddings X, Y of shape (N, D) the exact losses penalise every off-diagonal entry of the D×D matrix
C = XᵀY. The relaxed losses penalise only the sums of C along its *wrapped diagonals*, which are circular
cross-correlations and cost O(N·D·log D) through the FFT:

1. **permutation** (optional): the D feature columns of both views are permuted by one random permutation π,
   drawn afresh on every call (:func:`draw_permutation`);
2. **grouping** (:func:`group_features`): the permuted features are split into G = ceil(D/b) consecutive blocks
   of width b, the last one zero-padded to width b, giving an (N, G, b) tensor;
3. **block correlation** (:func:`block_correlation`): for every ordered pair of blocks (g, h)

       r^{gh}_s = Σ_i Σ_k X^g_{i,k} · Y^h_{i,(k+s) mod b}          s = 0 … b−1
                = Σ_k M^{gh}_{k,(k+s) mod b},   M^{gh} = (X^g)ᵀ Y^h  (b×b)
                = irfft( Σ_i conj(rfft(X^g_i)) ⊙ rfft(Y^h_i) )_s,

   i.e. r^{gh}_0 is the trace of M^{gh} and r^{gh}_s the sum of its s-th wrapped diagonal. The padded columns
   are zero, so they add nothing to any sum; they only shorten the wrap of the last block (as the official code).

The helpers return *unnormalised local* sums (Σ over this rank's rows); the losses all-reduce them over ranks
(:func:`all_reduce_sum_many`, autograd-aware) and divide by N or N − 1.

Cost: two rffts of (N, G, b) tensors, O(N·D·log b); one batched complex matmul for the G² cross-spectra,
O(N·G·D); one irfft of (G, G, b), O(G·D·log b). No D×D matrix is formed. For G = 1 (the default
``block_size=None``) the cross-spectrum is an elementwise product summed over the batch.

Precision: callers run under :func:`_common.full_precision`, so the FFTs are float32 (or float64 for float64
inputs) even inside ``torch.autocast`` (cuFFT's half precision needs power-of-two sizes and loses accuracy).

Distributed: the circular correlation is linear in the batch sum, so Σ_ranks irfft(S_rank) = irfft(Σ_ranks
S_rank). The losses therefore all-reduce the *real* correlation r (together with the other batch sums, in one
collective) rather than the complex spectrum S: same numbers, and no complex tensor goes through gloo/NCCL.
The permutation is drawn on rank 0 and broadcast, so every rank uses the same one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    Regularizer,
    RegularizerOutput,
    _mean_outputs,
    all_reduce_sum,
    check_choice,
    check_int,
    is_distributed,
)

__all__ = [
    "resolve_block_size",
    "num_blocks",
    "draw_permutation",
    "group_features",
    "block_correlation",
    "lag_penalty",
    "barlow_relaxed_off",
    "vicreg_relaxed_off",
    "all_reduce_sum_many",
    "FFTRelaxedRegularizer",
]

POWERS = (1, 2)


def resolve_block_size(block_size: int | None, d: int) -> int:
    """The block width b for D features: ``None`` means D; larger than D is an error."""
    if block_size is None:
        return d
    if block_size > d:
        raise ValueError(
            f"block_size={block_size} is larger than the embedding dimension D={d}; use block_size <= {d} "
            "or block_size=None (one block of width D)"
        )
    return block_size


def num_blocks(d: int, block_size: int) -> int:
    """G = ceil(D / b)."""
    return -(-d // block_size)


def draw_permutation(d: int, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """A random permutation of ``range(d)`` (int64) drawn on the CPU with ``generator`` and moved to ``device``.

    Under ``torch.distributed`` every rank draws (so the ranks' generators stay in step) and rank 0's draw is
    broadcast, so all ranks permute identically. The broadcast runs on ``device`` (NCCL needs CUDA tensors).
    """
    perm = torch.randperm(d, generator=generator, dtype=torch.int64)
    if device is not None and torch.device(device).type != "cpu":
        if torch.device(device).type == "cuda":
            # pinned + non_blocking: the copy is queued on the stream instead of waiting for the GPU to drain
            # (the caching host allocator keeps the pinned buffer alive until the copy has run)
            perm = perm.pin_memory().to(device, non_blocking=True)
        else:
            perm = perm.to(device)
    if is_distributed():
        dist.broadcast(perm, src=0)
    return perm


def group_features(x: Tensor, block_size: int, perm: Tensor | None = None) -> Tensor:
    """Permute the last dim of ``x`` (..., D) by ``perm``, zero-pad it to G·b and split it: (..., G, b)."""
    d = x.shape[-1]
    if perm is not None:
        x = x.index_select(-1, perm)
    g = num_blocks(d, block_size)
    pad = g * block_size - d
    if pad:
        x = F.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], g, block_size)


def block_correlation(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Grouped circular cross-correlation, summed over the batch (local rows only, not normalised).

    ``x``, ``y``: (..., N, G, b) grouped features (:func:`group_features`); ``y=None`` means ``y = x``
    (auto-correlation, one FFT fewer). Returns r of shape (..., G, G, b) with
    r[..., g, h, s] = Σ_i Σ_k x[..., i, g, k] · y[..., i, h, (k + s) mod b].
    """
    b, g = x.shape[-1], x.shape[-2]
    fx = torch.fft.rfft(x, dim=-1)                                     # (..., N, G, F)
    if y is None:
        if g == 1:
            # |X_f|² written through the real and imaginary parts (abs() has no gradient at 0)
            spec = torch.view_as_real(fx).square().sum(-1).sum(-3)    # (..., 1, F) real
            spec = spec.unsqueeze(-2)                                  # (..., 1, 1, F)
        else:
            spec = torch.einsum("...ngf,...nhf->...ghf", fx.conj(), fx)
    else:
        if y.shape != x.shape:
            raise ValueError(f"block_correlation: x and y must have the same shape, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")
        fy = torch.fft.rfft(y, dim=-1)
        if g == 1:
            spec = (fx.conj() * fy).sum(-3).unsqueeze(-2)             # (..., 1, 1, F)
        else:
            spec = torch.einsum("...ngf,...nhf->...ghf", fx.conj(), fy)
    return torch.fft.irfft(spec, n=b, dim=-1)


def lag_penalty(r: Tensor, power: int) -> Tensor:
    """|r|^q elementwise for q ∈ {1, 2} (q = 1 uses abs, as the official code)."""
    return r.square() if power == 2 else r.abs()


def _off_block_mask(g: int, like: Tensor) -> Tensor:
    """(G, G) float mask: 1 off the diagonal, 0 on it."""
    return 1.0 - torch.eye(g, dtype=like.dtype, device=like.device)


def barlow_relaxed_off(r: Tensor, power: int) -> Tensor:
    """Σ_g Σ_{s≥1} |r^{gg}_s|^q + Σ_{g≠h} Σ_{s≥0} |r^{gh}_s|^q for r of shape (..., G, G, b) → (...).

    The excluded zero lags of the diagonal blocks (the block traces, large) are masked, never subtracted, so
    no cancellation error enters the (small) off-diagonal sum.
    """
    p = lag_penalty(r, power)
    out = p[..., 1:].sum((-3, -2, -1))
    g = r.shape[-2]
    if g > 1:
        out = out + (p[..., 0] * _off_block_mask(g, p)).sum((-2, -1))
    return out


def vicreg_relaxed_off(r: Tensor, power: int, block_size: int, last_width: int) -> Tensor:
    """The official relaxed VICReg covariance for r of shape (..., G, G, b) → (...).

    Each block pair's correlation is divided by its width w_{gh} (b, or the last block's true width when g or
    h is the last block) before the power, then

        off = mean_g Σ_{s≥1} |r^{gg}_s / w_{gg}|^q + 2 · mean_{g<h} Σ_{s≥0} |r^{gh}_s / w_{gh}|^q.

    For an auto-correlation r^{hg}_s = r^{gh}_{−s}, so Σ_{g<h} = ½ Σ_{g≠h}; the sum over ordered pairs is used.
    """
    g = r.shape[-2]
    widths = torch.full((g,), float(block_size), dtype=r.dtype, device=r.device)
    widths[-1] = float(last_width)
    w = torch.minimum(widths[:, None], widths[None, :])              # (G, G)
    p = lag_penalty(r / w[..., None], power)
    lagged = p[..., 1:].sum(-1)                                        # (..., G, G), s ≥ 1
    out = torch.diagonal(lagged, dim1=-2, dim2=-1).sum(-1) / g
    if g > 1:
        off_blocks = ((lagged + p[..., 0]) * _off_block_mask(g, p)).sum((-2, -1))
        out = out + off_blocks * (2.0 / (g * (g - 1)))
    return out


def all_reduce_sum_many(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Sum several tensors over ranks in one autograd-aware collective (identity in a single process)."""
    if not is_distributed():
        return tensors
    flat = all_reduce_sum(torch.cat([t.reshape(-1) for t in tensors]))
    out, start = [], 0
    for t in tensors:
        out.append(flat[start:start + t.numel()].view(t.shape))
        start += t.numel()
    return tuple(out)


class FFTRelaxedRegularizer(Regularizer):
    """Shared front of :class:`BarlowTwinsFFT` and :class:`VICRegFFT`: the relaxation's hyper-parameters and
    one permutation per call.

    ``forward`` validates the views (as the base class), draws **one** permutation (when ``permute``) and uses
    it for both views of every pair and for ``multiview="mean"``. Subclasses implement
    ``_pair(za, zb, perm)`` and ``_mean_views(zs, perm)``. The public ``pair``/``mean_views`` draw a fresh
    permutation per call.
    """

    def __init__(self, *, block_size: int | None, power: int, permute: bool,
                 generator: torch.Generator | None, multiview: str, check_finite: bool):
        super().__init__(multiview=multiview, check_finite=check_finite)
        self.block_size = check_int("block_size", block_size, minimum=1, allow_none=True)
        if isinstance(power, bool):
            raise ValueError(f"power={power!r} is not allowed; choose one of 1, 2")
        self.power = check_choice("power", power, POWERS)
        if not isinstance(permute, bool):
            raise ValueError(f"permute={permute!r} must be True or False")
        self.permute = permute
        if generator is not None:
            if not isinstance(generator, torch.Generator):
                raise ValueError(
                    f"generator must be a torch.Generator or None, got {type(generator).__name__}"
                )
            if torch.device(generator.device).type != "cpu":
                raise ValueError(
                    f"generator is on {generator.device}; the permutation is drawn on the CPU, pass "
                    "torch.Generator() (device 'cpu')"
                )
        self.generator = generator

    # -- permutation -------------------------------------------------------------------------------------
    def _draw(self, d: int, device: torch.device) -> Tensor | None:
        return draw_permutation(d, self.generator, device) if self.permute else None

    def _block(self, d: int) -> int:
        return resolve_block_size(self.block_size, d)

    # -- entry points --------------------------------------------------------------------------------------
    def views_loss(self, zs: list[Tensor]) -> RegularizerOutput:
        self._block(zs[0].shape[1])  # fail before drawing
        perm = self._draw(zs[0].shape[1], zs[0].device)
        if self.multiview == "mean":
            return self._mean_views(zs, perm)
        pairs = [(a, b) for a in range(len(zs)) for b in range(a + 1, len(zs))]
        if len(pairs) == 1:
            return self._pair(zs[0], zs[1], perm)
        return _mean_outputs([self._pair(zs[a], zs[b], perm) for a, b in pairs])

    def pair(self, za: Tensor, zb: Tensor) -> RegularizerOutput:
        self._block(za.shape[1])
        return self._pair(za, zb, self._draw(za.shape[1], za.device))

    def mean_views(self, zs: list[Tensor]) -> RegularizerOutput:
        self._block(zs[0].shape[1])
        return self._mean_views(zs, self._draw(zs[0].shape[1], zs[0].device))

    def _pair(self, za: Tensor, zb: Tensor, perm: Tensor | None) -> RegularizerOutput:  # pragma: no cover
        raise NotImplementedError

    def _mean_views(self, zs: list[Tensor], perm: Tensor | None) -> RegularizerOutput:  # pragma: no cover
        raise NotImplementedError

    def extra_repr(self) -> str:
        if self.hparams():
            return super().extra_repr()
        return (f"block_size={self.block_size!r}, power={self.power!r}, permute={self.permute!r}, "
                f"multiview={self.multiview!r}")
