"""Rank functions for tests/test_asymmetric.py (module level so that spawn can pickle them)."""

import torch

from sslbench import regularizers


def asymmetric_contract(rank, world_size, cases):
    """For each case (name, hparams, online (V, N, D), target (V, N, D)): one training-mode call on this rank's
    rows of every view, then backward. Returns the state, the loss and the gradient w.r.t. the local rows."""
    out = []
    for name, hparams, online_full, target_full in cases:
        n = online_full.shape[1] // world_size
        rows = slice(rank * n, (rank + 1) * n)
        online = online_full[:, rows].clone().requires_grad_(True)
        target = target_full[:, rows].clone()
        reg = regularizers.create(name, **hparams).to(torch.float64).train()
        res = reg(online, target)
        res.loss.backward()
        f = getattr(reg, "F", None)
        out.append({
            "loss": res.loss.detach(),
            "grad": online.grad,
            "F": None if f is None else f.clone(),
            "num_updates": getattr(reg, "num_updates", None),
        })
    return out
