"""Rank functions for tests/test_common.py (module level so that spawn can pickle them)."""

import torch

from sslbench.regularizers import _common as C


def standardize_and_gather(rank, world_size, z_full):
    n = z_full.shape[0] // world_size
    z = z_full[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    a = C.batch_standardize(z, 1e-5)
    g = C.gather_rows(a)
    loss = (g * torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape)).sum().sin()
    loss.backward()
    return {"a": a.detach(), "g": g.detach(), "loss": loss.detach(), "grad": z.grad}
