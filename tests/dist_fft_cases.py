"""Rank functions for tests/test_fft.py (module level so that spawn can pickle them)."""

import torch

from sslbench import regularizers


def fft_losses(rank, world_size, cases):
    """Run every case on this rank's rows; return each case's loss, terms and gradient w.r.t. its own rows.

    A case is ``(name, hparams, seeds, views)``: ``views`` (V, N_global, D) float64, ``seeds[rank]`` seeds this
    rank's permutation generator (ranks may be given different seeds: rank 0's draw must win).
    """
    out = []
    for name, hparams, seeds, views in cases:
        n = views.shape[1] // world_size
        local = views[:, rank * n:(rank + 1) * n].clone().requires_grad_(True)
        reg = regularizers.create(name, generator=torch.Generator().manual_seed(seeds[rank]), **hparams)
        res = reg(*local.unbind(0))
        res.loss.backward()
        out.append({"loss": res.loss.detach(), "terms": {k: v.detach() for k, v in res.terms.items()},
                    "grad": local.grad})
    return out
