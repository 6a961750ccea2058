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

    ``foreach=True`` (default) updates each group with a few ``torch._foreach_*`` kernels over all its tensors
    (norms, trust ratios, momentum and weights; no host synchronisation); ``foreach=False`` is the loop over the
    parameters of the official code, kept as the reference the tests compare with. The momentum buffers are the
    same (``state[p]["mu"]``), so checkpoints of either load into the other.
    """

    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 0.001,
                 foreach: bool = True):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, lars_adapt=True)
        super().__init__(params, defaults)
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            if self.foreach:
                self._group_foreach(g)
            else:
                self._group_loop(g)
        return loss

    def _group_foreach(self, g: dict) -> None:
        params = [p for p in g["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        d = torch._foreach_add(grads, params, alpha=g["weight_decay"]) if g["weight_decay"] != 0 else grads
        if g["lars_adapt"]:
            w_norm = torch.stack(torch._foreach_norm(params))
            d_norm = torch.stack(torch._foreach_norm(d))
            trust = torch.where((w_norm > 0) & (d_norm > 0), g["eta"] * w_norm / d_norm, torch.ones_like(w_norm))
            d = torch._foreach_mul(d, list(trust.unbind(0)))
        mus = []
        for p in params:
            state = self.state[p]
            if "mu" not in state:
                state["mu"] = torch.zeros_like(p)
            mus.append(state["mu"])
        torch._foreach_mul_(mus, g["momentum"])
        torch._foreach_add_(mus, d)
        torch._foreach_add_(params, mus, alpha=-g["lr"])

    def _group_loop(self, g: dict) -> None:
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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (≥ 2 dimensions) with weight decay and LARS adaptation, and biases / norm parameters
    (< 2 dimensions) with neither (the official Barlow Twins' ``exclude_bias_and_norm``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay, "lars_adapt": True},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lars_adapt": False},
    ]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9,
                    device: torch.device | str | None = None):
    """LARS, SGD (momentum) or AdamW over :func:`param_groups` (no decay for biases and norm parameters).

    The step is one multi-tensor update: LARS's ``torch._foreach_*`` form; SGD and AdamW ``fused=True`` on CUDA
    (one kernel per group), ``foreach=True`` elsewhere."""
    groups = param_groups(model, weight_decay)
    fast = {"fused": True} if torch.device(device or "cpu").type == "cuda" else {"foreach": True}
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, **fast)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fast)
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
