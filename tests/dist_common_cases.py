"""Helpers shared by tests/test_common.py and tests/test_conformance.py, and their rank functions (module level so
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


# --------------------------------------------------------------------------------------------------------------
# Conformance: one way to build and call any registered regularizer
# --------------------------------------------------------------------------------------------------------------
def build(name, hparams, seed=0):
    """``create(name, **hparams)``, with a seeded ``generator`` for the regularizers that draw random numbers."""
    if "generator" in regularizers.hparam_names(name):
        hparams = {**hparams, "generator": torch.Generator().manual_seed(seed)}
    return regularizers.create(name, **hparams)


def make_inputs(name, views, n, d, seed, dtype=torch.float64):
    """The arguments of one call: ``(Z,)`` with Z (V, N, D) for a symmetric regularizer, ``(online, target)`` (each
    (V, N, D)) for an asymmetric one. Correlated views with per-feature scales and offsets."""
    g = torch.Generator().manual_seed(seed)

    def stack():
        base = torch.randn(n, d, generator=g, dtype=torch.float64)
        scale = 1 + torch.rand(d, generator=g, dtype=torch.float64)
        offset = 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
        return torch.stack([(base + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)) * scale + offset
                            for _ in range(views)]).to(dtype)

    return (stack(),) if regularizers.get_class(name).symmetric else (stack(), stack())


def conformance_rank(rank, world_size, cases, gen_seeds):
    """Each case ``(name, hparams, views, seed, n, d, scale)``: one training-mode call in float64 on this rank's rows
    of every input (``make_inputs`` × ``scale``), then backward. The generator (FFT permutations) is seeded with
    ``gen_seeds[rank]``: ranks may be given different seeds, rank 0's draw must win. Returns the loss, terms,
    gradient w.r.t. the local rows of the first input and the state dict."""
    out = []
    for name, hparams, views, seed, n, d, scale in cases:
        full = [x * scale for x in make_inputs(name, views, n, d, seed)]
        rows = slice(rank * (n // world_size), (rank + 1) * (n // world_size))
        local = [x[:, rows].clone() for x in full]
        local[0].requires_grad_(True)
        reg = build(name, hparams, seed=gen_seeds[rank]).double().train()
        res = reg(*local)
        res.loss.backward()
        out.append({"loss": res.loss.detach(), "terms": {k: v.detach() for k, v in res.terms.items()},
                    "grad": local[0].grad, "state": {k: v.clone() for k, v in reg.state_dict().items()}})
    return out


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
