"""Distributed helpers of ``sslbench train``: joining the process group (torchrun's env:// rendezvous or one the
caller started), the device of this rank, reductions over ranks, and batch normalisation with global-batch
statistics (``torch.nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` on the CPU, where ``SyncBatchNorm``
refuses to run)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sslbench.devices import resolve_device as resolve_name
from sslbench.regularizers._common import all_reduce_sum, is_distributed

__all__ = ["GlobalBatchNorm", "convert_sync_batchnorm", "setup_distributed", "resolve_device", "is_distributed",
           "mean_over_ranks", "any_rank", "from_rank0"]


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation with statistics over the global batch of all ranks, for any device.

    ``torch.nn.SyncBatchNorm`` only runs on accelerators; this is the same computation through the autograd-aware
    collective :func:`sslbench.regularizers._common.all_reduce_sum` (two all-reduces per call: the sum, then the
    centred sum of squares). Outside ``torch.distributed`` and in eval mode it is ``F.batch_norm``. Local batches
    must have equal sizes. Running statistics: momentum average of the global mean and the unbiased global
    variance, as ``BatchNorm``.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1] * dist.get_world_size()
        mean = all_reduce_sum(x.sum(dims)) / n
        xc = x - mean.view(shape)
        var = all_reduce_sum(xc.square().sum(dims)) / n
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        return y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every batch-norm layer of ``module`` with global-batch statistics: ``torch.nn.SyncBatchNorm`` on CUDA,
    :class:`GlobalBatchNorm` elsewhere. Parameters and buffers are kept (state-dict keys are unchanged)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _to_global_bn(module)


def _to_global_bn(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, **_first_tensor_kind(module))
        with torch.no_grad():
            if module.affine:
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
            if module.track_running_stats:
                out.running_mean.copy_(module.running_mean)
                out.running_var.copy_(module.running_var)
                out.num_batches_tracked.copy_(module.num_batches_tracked)
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _to_global_bn(child))
    return out


def _first_tensor_kind(module: nn.Module) -> dict:
    for t in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
        return {"device": t.device, "dtype": t.dtype}
    return {}


# ==============================================================================================================
# Process group, device, reductions over ranks
# ==============================================================================================================
def setup_distributed(device_name: str) -> tuple[int, int, int, bool]:
    """(rank, world_size, local_rank, created): joins a process group started by torchrun (env:// rendezvous)
    or uses one already initialised by the caller."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0, False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = resolve_name(device_name).startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank, True


def resolve_device(name: str, local_rank: int) -> torch.device:
    """The device of this rank: ``name`` by :func:`sslbench.devices.resolve_device`'s rules (``auto`` is CUDA when
    available; a name this machine lacks is a ``ValueError``), and ``cuda`` without an index is the local rank's
    GPU."""
    device = torch.device(resolve_name(name))
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over the ranks (the values themselves outside ``torch.distributed``)."""
    if not is_distributed() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / dist.get_world_size()).tolist()))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on at least one rank."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def from_rank0(obj):
    """Rank 0's ``obj`` on every rank (a picklable object; itself outside ``torch.distributed``)."""
    if not is_distributed():
        return obj
    shared = [obj]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]
