"""The optimisers and the learning-rate schedule of ``sslbench train``: LARS in the form of the official Barlow
Twins / VICReg code, the two parameter groups (no weight decay nor adaptation for biases and norm parameters), and
linear warm-up followed by a cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn

from sslbench.training.config import OPTIMIZERS

__all__ = ["LARS", "param_groups", "build_optimizer", "lr_at"]


class LARS(torch.optim.Optimizer):
    """LARS (You, Gitman, Ginsburg 2017) in the form of the official Barlow Twins / VICReg code.

    For each parameter w with gradient g, in groups with ``lars_adapt=True``::

        d = g + weight_decay · w
        d ← d · η‖w‖/‖d‖        (when ‖w‖ > 0 and ‖d‖ > 0; η = ``eta`` = 0.001)
        μ ← momentum · μ + d
        w ← w − lr · μ

    Groups with ``lars_adapt=False`` skip the adaptation (and :func:`param_groups` gives them no weight decay):
    the biases and batch-norm parameters.
    """

    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 0.001):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, lars_adapt=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if g["weight_decay"] != 0:
                    d = d.add(p, alpha=g["weight_decay"])
                if g["lars_adapt"]:
                    w_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    trust = torch.where((w_norm > 0) & (d_norm > 0), g["eta"] * w_norm / d_norm,
                                        torch.ones_like(w_norm))
                    d = d.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(g["momentum"]).add_(d)
                p.add_(mu, alpha=-g["lr"])
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (≥ 2 dimensions) with weight decay and LARS adaptation, and biases / norm parameters
    (< 2 dimensions) with neither (the official Barlow Twins' ``exclude_bias_and_norm``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay, "lars_adapt": True},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lars_adapt": False},
    ]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9):
    """LARS, SGD (momentum) or AdamW over :func:`param_groups` (no decay for biases and norm parameters)."""
    groups = param_groups(model, weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"optimizer={name!r} is not allowed; choose one of {', '.join(OPTIMIZERS)}")


def lr_at(step: int, *, base: float, total_steps: int, warmup_steps: int, final_ratio: float = 0.001) -> float:
    """The learning rate of step ``step`` (0-based) of ``total_steps``.

    Linear warm-up ``base·(step + 1)/warmup_steps`` for ``step < warmup_steps`` (the last warm-up step is at
    ``base``), then a cosine from ``base`` at ``step = warmup_steps`` to ``final_ratio·base`` at the last step
    ``total_steps − 1`` (a schedule with no room for the cosine stays at ``base``).
    """
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    final = base * final_ratio
    span = total_steps - 1 - warmup_steps
    t = 0.0 if span <= 0 else min(1.0, (step - warmup_steps) / span)
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * t))
