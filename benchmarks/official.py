"""The official formulations of Barlow Twins and VICReg, as the papers' reference code computes them, for
side-by-side figures. Written here from what that code does (facebookresearch/barlowtwins ``main.py``,
facebookresearch/vicreg ``main_vicreg.py``), step for step, so that the comparison measures the same work:

Barlow Twins: ``BatchNorm1d(D, affine=False)`` on each view, ``c = bn(z1).T @ bn(z2)``, ``c.div_(N)``, the
diagonal term ``(diag(c) - 1)^2`` summed, the off-diagonal entries gathered into a new (D-1)·(D+1) tensor by the
flatten/view trick and squared, ``loss = on + lambd * off`` (then multiplied by ``scale``, 1 in the paper).

VICReg: ``mse(x, y)``; each view centred; ``std = sqrt(var(unbiased) + 1e-4)``; the hinge mean of both views
over 2; ``cov = x.T @ x / (N - 1)`` per view, the off-diagonal entries gathered (same trick), squared, summed,
divided by D; ``25·inv + 25·std + 1·cov``.

Not part of the package: benchmarks only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _off_diagonal_copy(m: torch.Tensor) -> torch.Tensor:
    # the official helper's view trick: every entry but the diagonal, as a new flat tensor
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


class OfficialBarlowTwins(torch.nn.Module):
    def __init__(self, dim: int, lambd: float = 0.0051, scale: float = 1.0):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(dim, affine=False)
        self.lambd = lambd
        self.scale = scale

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        c = self.bn(z1).T @ self.bn(z2)
        c.div_(z1.shape[0])
        on_diag = torch.diagonal(c).add_(-1).pow_(2).sum()
        off_diag = _off_diagonal_copy(c).pow_(2).sum()
        return self.scale * (on_diag + self.lambd * off_diag)


class OfficialVICReg(torch.nn.Module):
    def __init__(self, dim: int, sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0):
        super().__init__()
        self.dim = dim
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        repr_loss = F.mse_loss(x, y)
        x = x - x.mean(dim=0)
        y = y - y.mean(dim=0)
        std_x = torch.sqrt(x.var(dim=0) + 0.0001)
        std_y = torch.sqrt(y.var(dim=0) + 0.0001)
        std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
        cov_x = (x.T @ x) / (n - 1)
        cov_y = (y.T @ y) / (n - 1)
        cov_loss = _off_diagonal_copy(cov_x).pow_(2).sum().div(self.dim) + _off_diagonal_copy(cov_y).pow_(
            2
        ).sum().div(self.dim)
        return self.sim_coeff * repr_loss + self.std_coeff * std_loss + self.cov_coeff * cov_loss


OFFICIAL = {"official_barlow_twins": OfficialBarlowTwins, "official_vicreg": OfficialVICReg}
