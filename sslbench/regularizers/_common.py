"""Pieces shared by every regularizer: the output record, input validation, hyper-parameter checks,
normalisations and autograd-aware collectives.

Nothing here imports anything else from ``sslbench``.

Dtype policy
------------
Every regularizer computes in ``float32`` or ``float64``: ``float64`` inputs stay ``float64``; ``float32``,
``float16`` and ``bfloat16`` inputs are computed (and the loss returned) in ``float32``. Autocast is switched
off inside the loss, so a loss called under ``torch.autocast`` still computes in full precision; gradients flow
back to the inputs in their own dtype.

Distributed policy
------------------
When ``torch.distributed`` is initialised, every regularizer computes the *global-batch* loss: batch statistics,
correlations, Gram matrices and MMD cover the rows of all ranks. Cross-rank dependencies go through the
autograd-aware collectives below, never through ``torch.distributed.all_reduce`` directly (whose gradient is
silently wrong, lightly issue 1977). The contract, tested with real processes:

* the mean over ranks of the losses equals the single-process loss on the concatenated batch;
* on each rank, the gradient of its own loss w.r.t. its own rows equals ``world_size`` × the single-process
  gradient for those rows, which is what DistributedDataParallel's gradient averaging needs.

All ranks must pass local batches of the same size (``DistributedSampler(..., drop_last=True)``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "RegularizerOutput",
    "Regularizer",
    "as_views",
    "check_choice",
    "check_positive",
    "check_nonnegative",
    "check_loss_finite",
    "check_int",
    "full_precision",
    "is_distributed",
    "world_size",
    "rank",
    "all_reduce_sum",
    "gather_rows",
    "global_batch_size",
    "global_amax",
    "overflow_guard",
    "batch_standardize",
    "center",
    "center_guarded",
    "sphere",
    "off_diagonal_sq_sum",
]

MULTIVIEW_MODES = ("pairs", "mean")


# --------------------------------------------------------------------------------------------------------------
# Output record
# --------------------------------------------------------------------------------------------------------------
@dataclass
class RegularizerOutput:
    """What every regularizer returns.

    ``loss`` is a 0-dim tensor (differentiable); ``terms`` maps the names of its parts (``invariance``,
    ``variance``, ``covariance``, ``on_diagonal``, ``off_diagonal``, ``mmd``, ...) to 0-dim tensors, before the
    coefficients are applied unless the regularizer's docstring says otherwise.
    """

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)

    def detached(self) -> dict[str, float]:
        """Plain floats of the loss and every term, for logging."""
        out = {"loss": float(self.loss.detach())}
        out.update({k: float(v.detach()) for k, v in self.terms.items()})
        return out


# --------------------------------------------------------------------------------------------------------------
# Hyper-parameter validation (ValueError naming the parameter and what is allowed)
# --------------------------------------------------------------------------------------------------------------
def check_choice(name: str, value, choices: Iterable):
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(repr(c) for c in choices)}")
    return value


def _check_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite real number")
    return value


def check_positive(name: str, value) -> float:
    _check_real(name, value)
    if value <= 0:
        raise ValueError(f"{name}={value!r} must be > 0")
    return value


def check_nonnegative(name: str, value) -> float:
    _check_real(name, value)
    if value < 0:
        raise ValueError(f"{name}={value!r} must be >= 0")
    return value


def check_int(name: str, value, *, minimum: int | None = None, allow_none: bool = False):
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an integer" + (" or None" if allow_none else ""))
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    return value


# --------------------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------------------
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def as_views(
    views: Sequence[Tensor] | Tensor,
    *,
    min_views: int = 2,
    check_finite: bool = False,
    what: str = "views",
) -> list[Tensor]:
    """Validate and normalise the embeddings passed to a regularizer.

    Accepts a sequence of V tensors of shape (N, D) or one tensor of shape (V, N, D). Returns a list of V
    tensors of shape (N, D) in the compute dtype (float32, or float64 for float64 inputs).

    Raises ``TypeError`` for non-tensors and non-floating dtypes and ``ValueError`` for fewer than
    ``min_views`` views, wrong ranks, mismatched shapes or devices, N < 2, D < 2 and (with ``check_finite``)
    NaN/Inf entries.
    """
    if isinstance(views, Tensor):
        if views.dim() != 3:
            raise ValueError(
                f"{what}: a single tensor must have shape (V, N, D); got shape {tuple(views.shape)}. "
                "Pass V tensors of shape (N, D) or stack them with torch.stack(views)."
            )
        views = list(views.unbind(0))
    else:
        views = list(views)
    if len(views) < min_views:
        raise ValueError(f"{what}: need at least {min_views} views, got {len(views)}")
    for v, z in enumerate(views):
        if not isinstance(z, Tensor):
            raise TypeError(f"{what}[{v}] must be a torch.Tensor, got {type(z).__name__}")
        if not z.is_floating_point():
            raise TypeError(
                f"{what}[{v}] has dtype {z.dtype}; embeddings must be floating point (cast with .float())"
            )
        if z.dim() != 2:
            raise ValueError(f"{what}[{v}] must have shape (N, D); got shape {tuple(z.shape)}")
    shape, device = views[0].shape, views[0].device
    for v, z in enumerate(views[1:], start=1):
        if z.shape != shape:
            raise ValueError(
                f"{what}: all views must have the same shape (N, D); {what}[0] is {tuple(shape)} "
                f"but {what}[{v}] is {tuple(z.shape)}"
            )
        if z.device != device:
            raise ValueError(f"{what}: all views must be on one device; got {device} and {z.device}")
    n, d = shape
    if n < 2:
        raise ValueError(f"{what}: need N >= 2 samples per view to form batch statistics, got N={n}")
    if d < 2:
        raise ValueError(f"{what}: need D >= 2 features, got D={d}")
    if check_finite:
        for v, z in enumerate(views):
            if not bool(torch.isfinite(z).all()):
                raise ValueError(
                    f"{what}[{v}] contains NaN or Inf; check the network's output (learning rate, mixed "
                    "precision overflow) or pass check_finite=False to skip this check"
                )
    dtype = _compute_dtype(views[0].dtype)
    return [z if z.dtype == dtype else z.to(dtype) for z in views]


@contextlib.contextmanager
def full_precision(t: Tensor):
    """Switch autocast off for the device of ``t`` (the loss is computed in float32/float64)."""
    device_type = t.device.type
    if device_type in ("cuda", "cpu", "xpu", "mps") and torch.amp.is_autocast_available(device_type):
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    else:
        yield


# --------------------------------------------------------------------------------------------------------------
# Autograd-aware collectives (identity in a single process)
# --------------------------------------------------------------------------------------------------------------
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum ``x`` over ranks. Its backward sums the gradients over ranks (``torch.distributed.nn``)."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x, op=dist.ReduceOp.SUM)


def gather_rows(x: Tensor) -> Tensor:
    """Concatenate ``x`` (N_local, ...) from all ranks along dim 0, in rank order; differentiable.

    The backward sums, over ranks, the gradients flowing into each rank's block (reduce-scatter).
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def global_batch_size(n_local: int) -> int:
    """N over all ranks (local batches must have equal size)."""
    return n_local * world_size()


@torch.no_grad()
def global_amax(x: Tensor, dim: int | None = None, *, across_ranks: bool = True) -> Tensor:
    """max |x| over ``dim`` (all entries when None) and, unless ``across_ranks=False``, over all ranks; detached,
    no host synchronisation."""
    x = x.detach()
    m = torch.maximum(x.amax(), x.amin().neg()) if dim is None else torch.maximum(x.amax(dim), x.amin(dim).neg())
    if across_ranks and is_distributed():
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
    return m


# --------------------------------------------------------------------------------------------------------------
# Normalisations with global statistics
# --------------------------------------------------------------------------------------------------------------
def overflow_guard(x: Tensor, dim: int | None = None, *, max_exponent: int, across_ranks: bool = True) -> Tensor:
    """A detached power of two s ≥ 1 with |x / s| < 2**max_exponent: s = 2^max(0, e − max_exponent), e the binary
    exponent of max |x| (over ``dim``, or all entries, and over all ranks). Dividing by s is exact (it only
    shifts exponents), and s = 1, so x / s == x bitwise, unless x is that large: the guard costs one reduction
    and one division, no host synchronisation."""
    return _power_of_two_above(global_amax(x, dim, across_ranks=across_ranks), max_exponent)


def _power_of_two_above(m: Tensor, max_exponent: int) -> Tensor:
    return torch.ldexp(torch.ones_like(m), (torch.frexp(m).exponent - max_exponent).clamp_min_(0))


def _centred_and_guarded(z: Tensor) -> Tensor:
    """(z − mean_i z) / s_k with the global mean and s_k = :func:`overflow_guard` of the centred feature (2**50)
    detached: one fused pass (``addcmul``), no centred copy kept for the backward. Standardisation is invariant
    to the shift and (up to eps) to the scale, so detaching them changes neither the value nor the gradient."""
    with torch.no_grad():
        mean = all_reduce_sum(z.sum(dim=0)) / global_batch_size(z.shape[0])
        m = torch.maximum(z.amax(dim=0) - mean, mean - z.amin(dim=0))
        if is_distributed():
            dist.all_reduce(m, op=dist.ReduceOp.MAX)
        inv = _power_of_two_above(m, 50).reciprocal_()
        bias = mean.mul_(inv).neg_()
    return torch.addcmul(bias, z, inv)


def batch_standardize(z: Tensor, eps: float) -> Tensor:
    """``BatchNorm1d(D, affine=False)`` in training mode, statistics over the global batch.

    (z − mean_i z) / sqrt(var_biased(z) + eps). Matches SyncBatchNorm under ``torch.distributed``; in a single
    process the fused ``F.batch_norm`` does the rest once z is centred here.

    Exact at any scale: z is centred first, so a constant feature (zero variance) is exactly 0 and standardises
    to 0 with a finite gradient, as ``BatchNorm1d`` in exact arithmetic does (the fused CPU kernel alone gives 8.7
    for a constant 1e6 and garbage beyond). A centred feature whose magnitude exceeds 2**50 (about 1e15) is
    divided by a power of two s_k (:func:`overflow_guard`), so its variance cannot overflow; this computes
    (z − mean)/sqrt(var + eps·s_k²), where the eps shift is below float32 resolution of the variance, so float32
    embeddings up to |z| ≈ 1e36 (where the column sums overflow) give the float64 result rounded. Below 2**50,
    s_k = 1 and the division changes nothing. Centring and guard are detached (:func:`_centred_and_guarded`).
    """
    zc = _centred_and_guarded(z)
    if not is_distributed():
        return torch.nn.functional.batch_norm(zc, None, None, training=True, momentum=0.0, eps=eps)
    n = global_batch_size(z.shape[0])
    zc = zc - all_reduce_sum(zc.sum(dim=0)) / n  # ≈ 0, but it carries the gradient through the mean
    var = all_reduce_sum(zc.square().sum(dim=0)) / n
    return zc * torch.rsqrt(var + eps)


def center(z: Tensor) -> Tensor:
    """z − mean_i z with the mean over the global batch."""
    n = global_batch_size(z.shape[0])
    return z - all_reduce_sum(z.sum(dim=0)) / n


def center_guarded(z: Tensor, max_exponent: int) -> tuple[Tensor, Tensor]:
    """(Xc / s, s): z centred over the global batch (the mean differentiable) and divided by the detached power of
    two s ≥ 1 that brings max |Xc| below 2**max_exponent (:func:`overflow_guard`; s = 1 and the result is
    ``center(z)`` bitwise below that), in one fused pass."""
    mean = all_reduce_sum(z.sum(dim=0)) / global_batch_size(z.shape[0])
    with torch.no_grad():
        m = torch.maximum((z.amax(dim=0) - mean).amax(), (mean - z.amin(dim=0)).amax())
        if is_distributed():
            dist.all_reduce(m, op=dist.ReduceOp.MAX)
        s = _power_of_two_above(m, max_exponent)
    return torch.addcmul(mean * -s.reciprocal(), z, s.reciprocal()), s


def sphere(z: Tensor, eps: float = 1e-12) -> Tensor:
    """Each row divided by its L2 norm (``F.normalize``).

    Overflow-safe: a row larger than 2**60 is first divided by a power of two (:func:`overflow_guard`, per row,
    exact), so its norm cannot overflow (unguarded, float32 rows at 1e20 have an infinite norm and map to 0)."""
    return torch.nn.functional.normalize(z / overflow_guard(z, -1, max_exponent=60, across_ranks=False).unsqueeze(-1),
                                         dim=-1, eps=eps)


def off_diagonal_sq_sum(c: Tensor) -> Tensor:
    """Σ_{k≠l} c_kl² of a square matrix without materialising the off-diagonal copy."""
    return c.square().sum() - torch.diagonal(c).square().sum()


# --------------------------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------------------------
def _mean_outputs(outputs: list[RegularizerOutput]) -> RegularizerOutput:
    k = len(outputs)
    loss = sum(o.loss for o in outputs) / k
    terms = {name: sum(o.terms[name] for o in outputs) / k for name in outputs[0].terms}
    return RegularizerOutput(loss, terms)


def check_loss_finite(out: RegularizerOutput, zs: list[Tensor]) -> RegularizerOutput:
    """``check_finite=True``, after the loss: finite embeddings whose loss is not finite (it overflowed the compute
    dtype) raise ``ValueError`` naming the embeddings' magnitude and the fix. Returns ``out`` otherwise."""
    if bool(torch.isfinite(out.loss)):
        return out
    top = max(float(global_amax(z)) for z in zs)
    raise ValueError(
        f"the loss is not finite ({float(out.loss)}) although the embeddings are (max |z| = {top:.3g}): it "
        f"overflows {out.loss.dtype}; pass float64 embeddings or keep the projector's output bounded "
        "(check_finite=False returns the non-finite loss instead)"
    )


class Regularizer(torch.nn.Module):
    """Base class of the symmetric regularizers: ``reg(z1, z2, ...)`` or ``reg(Z)`` with Z of shape (V, N, D).

    Subclasses implement :meth:`pair` (the two-view loss) and, where the paper defines one, :meth:`mean_views`
    (``multiview="mean"``), or override :meth:`views_loss`. ``multiview="pairs"`` averages :meth:`pair` over all
    V·(V−1)/2 unordered pairs, so V = 2 is exactly the two-view loss. With ``check_finite=True`` NaN/Inf
    embeddings and a loss that overflows for finite embeddings both raise ``ValueError``.
    """

    #: ``True`` for regularizers called on views; the asymmetric ones (byol, directpred, isoloss) set ``False``
    symmetric: bool = True
    # What the rest of sslbench derives its lists from (a new regularizer sets these in its own class, and the
    # training defaults, the side-by-side script and the asv suite pick it up; a plugin may set them too):
    #: the online branch ends in a learned predictor network (sslbench.training.models.Predictor): byol
    needs_predictor: bool = False
    #: ``lambd`` defaults to 1/dim in training when the hyper-parameters leave it out (barlow_twins)
    lambd_one_over_dim: bool = False
    #: the training learning rate per optimizer when the config leaves it None, where this loss needs its own
    #: (VICReg's coefficients 25/25/1 are at the edge of stability at SGD's 0.1); else the optimizer's default
    default_lr: dict = {}
    #: holds a D × D matrix it eigendecomposes each step (O(D³)): benchmarks skip it above a size on the CPU
    eigendecomposes: bool = False
    #: measured by the asv suite's DownstreamAccuracy (one short training run per commit: kept to a few)
    asv_accuracy: bool = False

    def __init__(self, *, multiview: str = "pairs", check_finite: bool = False):
        super().__init__()
        self.multiview = check_choice("multiview", multiview, MULTIVIEW_MODES)
        if not isinstance(check_finite, bool):
            raise ValueError(f"check_finite={check_finite!r} must be True or False")
        self.check_finite = check_finite

    def forward(self, *views: Tensor) -> RegularizerOutput:
        zs = as_views(views[0] if len(views) == 1 else views, check_finite=self.check_finite)
        with full_precision(zs[0]):
            out = self.views_loss(zs)
        return check_loss_finite(out, zs) if self.check_finite else out

    def views_loss(self, zs: list[Tensor]) -> RegularizerOutput:
        """The loss of validated views (called in full precision): :meth:`mean_views`, or :meth:`pair` averaged
        over all pairs."""
        if self.multiview == "mean":
            return self.mean_views(zs)
        pairs = [(a, b) for a in range(len(zs)) for b in range(a + 1, len(zs))]
        if len(pairs) == 1:
            return self.pair(zs[0], zs[1])
        return _mean_outputs([self.pair(zs[a], zs[b]) for a, b in pairs])

    def pair(self, za: Tensor, zb: Tensor) -> RegularizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def mean_views(self, zs: list[Tensor]) -> RegularizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define multiview='mean'")

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())

    def hparams(self) -> dict:
        """The hyper-parameters this instance was created with (set by :func:`create`)."""
        return dict(getattr(self, "_hparams", {}))
