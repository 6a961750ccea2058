"""Rank functions for tests/test_models.py (module level so that spawn can pickle them)."""

import math

import torch
from torch import nn

from sslbench.training.models import EMATarget


def ema_under_ddp(rank, world_size):
    torch.manual_seed(0)  # the same initial model on every rank
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    ddp = nn.parallel.DistributedDataParallel(net)
    ema = EMATarget(ddp, tau_base=0.9)
    initial = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
    torch.manual_seed(100 + rank)  # different data on every rank
    ddp(torch.randn(8, 4)).square().mean().backward()
    opt.step()
    tau = ema.update(2, 10)
    expected_tau = 1 - (1 - 0.9) * (math.cos(math.pi * 2 / 10) + 1) / 2
    online = net.state_dict()
    target = ema.target.state_dict()
    max_err = abs(tau - expected_tau)
    for k, v in online.items():
        if v.is_floating_point():
            max_err = max(max_err, float((target[k] - (tau * initial[k] + (1 - tau) * v)).abs().max()))
        elif not torch.equal(target[k], v):
            max_err = float("inf")
    return {
        "keys_ok": set(ema.state_dict()) == {f"target.{k}" for k in online},
        "max_err": max_err,
        "target": [p.detach().clone() for p in ema.target.parameters()],
    }
