"""Rank functions of tests/test_common.py and tests/test_asymmetric.py (module level so
that spawn can pickle them)."""

import torch

from sslbench import regularizers
from sslbench.regularizers import _common as C


def standardize_and_gather(rank, world_size, z_full):
    n = z_full.shape[0] // world_size
    z = z_full[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    a = C.batch_standardize(z, 1e-5)
    g = C.gather_rows(a)
    loss = (g * torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape)).sum().sin()
    loss.backward()
    return {"a": a.detach(), "g": g.detach(), "loss": loss.detach(), "grad": z.grad}


def directpred_skip(rank, world_size, name, calls, bad_rank):
    """Training-mode calls of ``name`` in float64 on this rank's rows of each (online, target) in ``calls``; in the
    second call only ``bad_rank``'s rows hold a NaN. Returns the state after every call."""
    reg = regularizers.create(name, tau=0.6).double().train()
    states = []
    for c, (online, target) in enumerate(calls):
        n = online.shape[1] // world_size
        online = online[:, rank * n:(rank + 1) * n].clone()
        if c == 1 and rank == bad_rank:
            online[0, 0, 0] = float("nan")
        reg(online, target[:, rank * n:(rank + 1) * n])
        states.append({k: v.clone() for k, v in reg.state_dict().items()})
    return states
