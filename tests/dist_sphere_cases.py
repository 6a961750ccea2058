"""Rank functions for the distributed tests of sfrik / uniformity / simclr (module level so spawn can pickle them)."""

import torch

from sslbench.regularizers import create


def sphere_family_cases(rank, world_size, z_full, cases):
    """Run every (name, hparams) case on this rank's rows of ``z_full`` (V, N, D).

    Returns, per case, the rank's loss, its terms and the gradient w.r.t. its own rows (V, N_local, D).
    """
    n = z_full.shape[1] // world_size
    out = []
    for name, hparams in cases:
        z = z_full[:, rank * n:(rank + 1) * n].clone().requires_grad_(True)
        res = create(name, **hparams)(z)
        res.loss.backward()
        out.append({"loss": res.loss.detach(), "terms": {k: v.detach() for k, v in res.terms.items()},
                    "grad": z.grad})
    return out
