"""Rank functions for tests/test_barlow_twins.py and tests/test_vicreg.py (module level so that spawn can pickle
them)."""

import torch

from sslbench.regularizers import create


def regularizer_cases(rank, world_size, z_full, cases):
    """For each case ``(name, hparams, views)``: the loss, terms and gradient w.r.t. this rank's rows of the
    first ``views`` views of ``z_full`` (V, N, D), computed on the rank's slice of the batch."""
    n = z_full.shape[1] // world_size
    out = []
    for name, hparams, views in cases:
        reg = create(name, **hparams)
        z = z_full[:views, rank * n:(rank + 1) * n].clone().requires_grad_(True)
        res = reg(z)
        res.loss.backward()
        out.append({
            "loss": res.loss.detach(),
            "terms": {k: v.detach() for k, v in res.terms.items()},
            "grad": z.grad,
        })
    return out
