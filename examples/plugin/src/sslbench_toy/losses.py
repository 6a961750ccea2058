"""A global-batch decorrelation loss written as a plain ``torch.nn.Module``, as a user outside sslbench would.

For views z_1 … z_V (N, D), each standardised over the *global* batch (all ranks' rows),

    C_ab = z̃_aᵀ z̃_b / N_global                         (D × D cross-correlation of views a and b)
    L_ab = Σ_k (1 − C_ab,kk)² + λ · Σ_{k≠l} C_ab,kl²     (Barlow Twins' objective)
    L    = mean over the V(V−1)/2 pairs a < b of L_ab

Under ``torch.distributed`` every rank gathers all rows and computes the same global L. The gather must be
autograd-aware (``torch.distributed.nn.functional.all_gather``): its backward sums the ranks' gradients into each
rank's rows, so each rank's gradient is world_size × the single-process one, which DDP's averaging turns back into
the single-process gradient. :class:`PlainGatherDecorrelation` gathers with the plain
``torch.distributed.all_gather`` instead (gradients of the other ranks' rows are lost): its gradient is
1/world_size of what DDP needs, and ``sslbench check`` says so.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist


class ToyDecorrelation(torch.nn.Module):
    """``ToyDecorrelation(lambd=0.005, eps=1e-5)(z1, z2, ...)`` → ``(loss, {"on_diagonal", "off_diagonal"})``."""

    def __init__(self, lambd: float = 0.005, eps: float = 1e-5):
        super().__init__()
        for name, value in (("lambd", lambd), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}={value!r} must be a finite real number")
        if lambd < 0 or eps <= 0:
            raise ValueError(f"lambd={lambd!r} must be >= 0 and eps={eps!r} > 0")
        self.lambd, self.eps = float(lambd), float(eps)

    @staticmethod
    def check(views) -> None:
        """ValueError for fewer than 2 views, shapes other than one (N, D) with N, D >= 2, or NaN/Inf."""
        if len(views) < 2:
            raise ValueError(f"need at least 2 views, got {len(views)}")
        shape = views[0].shape
        if any(z.shape != shape for z in views) or len(shape) != 2:
            raise ValueError(f"all views must have one shape (N, D); got {[tuple(z.shape) for z in views]}")
        if shape[0] < 2 or shape[1] < 2:
            raise ValueError(f"need N >= 2 samples and D >= 2 features, got (N, D) = {tuple(shape)}")
        if not all(bool(torch.isfinite(z).all()) for z in views):
            raise ValueError("the embeddings contain NaN or Inf")

    def gather(self, z: torch.Tensor) -> torch.Tensor:
        """All ranks' rows, in rank order; the backward returns each rank the gradient of its rows summed over
        ranks."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return z
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(z), dim=0)

    def forward(self, *views: torch.Tensor):
        self.check(views)
        dtype = torch.promote_types(views[0].dtype, torch.float32)  # half inputs compute in float32
        with torch.autocast(views[0].device.type, enabled=False):
            zs = []
            for z in views:
                z = self.gather(z.to(dtype))
                zs.append((z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + self.eps))
            n = zs[0].shape[0]
            on = off = zs[0].new_zeros(())
            pairs = [(a, b) for a in range(len(zs)) for b in range(a + 1, len(zs))]
            for a, b in pairs:
                c = zs[a].T @ zs[b] / n
                diag = torch.diagonal(c)
                on = on + (1 - diag).square().sum()
                off = off + c.square().sum() - diag.square().sum()
            on, off = on / len(pairs), off / len(pairs)
            return on + self.lambd * off, {"on_diagonal": on, "off_diagonal": off}


class PlainGatherDecorrelation(ToyDecorrelation):
    """The same loss gathered with the plain ``torch.distributed.all_gather`` (the bug of lightly #1977): the
    other ranks' rows are constants, so each rank's gradient misses their share and is 1/world_size of what DDP
    needs. Values are right; training under DDP is silently wrong."""

    def gather(self, z: torch.Tensor) -> torch.Tensor:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return z
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z.detach().contiguous())
        parts[dist.get_rank()] = z  # only the local rows keep their gradient
        return torch.cat(parts, dim=0)
